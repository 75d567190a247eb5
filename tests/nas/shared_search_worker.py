"""One search worker on a shared study, for the distributed-search tests:

    python -m tests.nas.shared_search_worker URL STUDY TRIALS OUT [--hang MARKER]

scores architectures of a tiny NB201 space with a deterministic function; with --hang it writes
MARKER when it starts its first trial and then never finishes it (the test kills it there).
Heartbeats every second, stale after 3 s, so a killed worker's trial is retried quickly."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from nas.config import DataConfig, SearchConfig, SpaceConfig
from nas.search.shared_study import SharedStudy
from nas.runs import RunDir
from nas.search.loop import run_search
from nas.problem import build_problem


def main(argv: list[str]) -> None:
    url, study, trials, out = argv[:4]
    marker = Path(argv[5]) if len(argv) > 5 and argv[4] == "--hang" else None
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    run = RunDir(out)
    run.open({"kind": "test-worker"})

    def score(arch) -> float:
        if marker is not None:
            marker.write_text(str(arch))
            time.sleep(3600)
        time.sleep(0.02)
        return float(sum(map(ord, str(arch))) % 97)

    shared = SharedStudy(url, study, {"space": "nb201 tiny"}, ("maximize",), heartbeat_s=1,
                         grace_s=3)
    score.column = "score"  # a Scorer's name for its values
    score.parts = lambda arch: {}  # and what it was combined from: nothing
    run_search(run, problem, score, SearchConfig(searcher="random", trials=int(trials)),
               shared=shared, worker=int(Path(out).name[-1]), finish=False)


if __name__ == "__main__":
    main(sys.argv[1:])
