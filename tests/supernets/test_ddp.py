"""Multi-process training (gloo, 2 CPU processes): a DDP step is the single-process step on the
same global batch and path, and a 2-process run killed and resumed ends as an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nas.data import DataConfig, load_data, make_splits
from nas.runs import load_checkpoint
from search_spaces import Skeleton, get_space
from supernets import METHODS, StepContext, StepMethod, TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
STEPS = 3


def _problem(method_name: str):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    method = METHODS.get(method_name)(space, seed=0)
    torch.manual_seed(0)
    return space, method.build_supernet(), method


def _global_batches():
    """STEPS global batches of 2 x 16 digits images (fixed: ranks and reference share them)."""
    splits = make_splits(load_data(None), DataConfig(batch_size=32), 0)
    return [batch for _, batch in zip(range(STEPS), splits.train.epoch(0))]


class _Fixed:
    """Batches protocol over a fixed list; `part` of `parts` of each batch (a rank's shard)."""

    def __init__(self, batches, part: int = 0, parts: int = 1) -> None:
        self.batches, self.part, self.parts = batches, part, parts
        self.indices = torch.cat([ids for *_, ids in batches]).unique()

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch, probabilities=None, start=0):
        for images, labels, ids in self.batches[start:]:
            size = len(labels) // self.parts
            cut = slice(self.part * size, (self.part + 1) * size)
            yield images[cut], labels[cut], ids[cut]


class _Halving:
    """A step context whose backward takes 1/parts of each loss (DDP averages over ranks)."""

    def __init__(self, context: StepContext, parts: int) -> None:
        self._context, self._parts = context, parts

    def backward(self, loss, inputs=None):
        self._context.backward(loss / self._parts, inputs)

    def __getattr__(self, name):
        return getattr(self._context, name)


class _ShardedReference(StepMethod):
    """One process: the method's step on each rank's shard in turn, same paths, gradients
    averaged: what DDP computes with each rank's BatchNorm statistics its own."""

    def __init__(self, method, parts: int) -> None:
        self.method, self.parts = method, parts

    def configure_optimizers(self, model, config, budget):
        return self.method.configure_optimizers(model, config, budget)

    def setup(self, model, optimizer, batches, context=None):
        self.method.setup(model, optimizer, batches, context)

    def backward_passes(self):
        return self.method.backward_passes() * self.parts

    def train_step(self, model, images, labels, ids, context=None):
        paths = self.method.sampler.state_dict()
        size = len(labels) // self.parts
        for part in range(self.parts):
            self.method.sampler.load_state_dict(paths)  # every rank draws the same paths
            cut = slice(part * size, (part + 1) * size)
            loss = self.method.train_step(model, images[cut], labels[cut], ids[cut],
                                          _Halving(context, self.parts))
        return loss

    def clip_gradients(self, parameters, max_norm):
        self.method.clip_gradients(parameters, max_norm)


CONFIG = TrainConfig(epochs=1, checkpoint_every_steps=0, lr=0.1)


def _rank_trains(rank: int, method_name: str, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=WORLD)
    try:
        from supernets.ddp import DistributedContext

        _, supernet, method = _problem(method_name)
        train(supernet, method, _Fixed(_global_batches(), rank, WORLD), CONFIG,
              context=DistributedContext())
        torch.save(supernet.state_dict(), f"{out}.rank{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method_name", ["spos", "alphanet"])
def test_a_ddp_step_equals_the_single_process_step_on_the_same_global_batch(method_name,
                                                                            tmp_path):
    out = str(tmp_path / "state")
    mp.spawn(_rank_trains, args=(method_name, str(tmp_path / "rendezvous"), out), nprocs=WORLD)
    ranks = [torch.load(f"{out}.rank{r}") for r in range(WORLD)]

    _, reference, method = _problem(method_name)
    initial = {k: v.clone() for k, v in reference.state_dict().items()}
    train(reference, _ShardedReference(method, WORLD), _Fixed(_global_batches()), CONFIG)
    moved = 0
    for name, expected in reference.state_dict().items():
        if not expected.is_floating_point() or "running" in name:
            continue  # BatchNorm running statistics are each rank's own (not synchronised)
        for rank in ranks:
            torch.testing.assert_close(rank[name], expected, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(expected, initial[name])
    assert moved > 0  # the steps trained something
    # Weights of paths never drawn stay untouched on every rank, as in one process.
    untouched = [n for n, v in reference.state_dict().items() if torch.equal(v, initial[n])]
    assert untouched and all(torch.equal(r[n], initial[n]) for r in ranks for n in untouched)


def _rank_reports(rank: int, rendezvous: str, out: str, action) -> None:
    """Run `action(rank, out)` as rank `rank` of a gloo group, as torchrun would start it;
    write the one-line error it raised (or "no error") to out/rank{rank}.txt."""
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=WORLD)
    from nas.errors import NasError

    try:
        action(rank, out)
        message = "no error"
    except NasError as error:
        message = str(error)
    finally:
        dist.destroy_process_group()
    Path(f"{out}/rank{rank}.txt").write_text(message)


def _train_with_own_settings(rank: int, out: str) -> None:
    from nas import api

    api.supernet(api.SpaceConfig("nb201", 4, 1), train_config=TrainConfig(steps=2 + rank),
                 out=f"{out}/run")


def test_ranks_given_other_settings_fail_with_one_line_not_a_hang(tmp_path):
    mp.spawn(_rank_reports, args=(str(tmp_path / "rendezvous"), str(tmp_path),
                                  _train_with_own_settings), nprocs=WORLD)
    for rank in range(WORLD):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert "rank 1 was given other settings than rank 0 (train.steps)" in message
        assert "\n" not in message
    assert not (tmp_path / "run").exists()  # nothing written


def _torchrun(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                             str(WORLD), "-m", "nas", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


# PA&DA's image tables are gathered from both ranks and GM-NAS's split scores reduced over them:
# a resumed run must hold what both ranks recorded before the kill.
@pytest.mark.parametrize("method", [[], ["--method", "pada"],
                                    ["--method", "gmnas", "--method-opt", "split_at=0.2,0.5",
                                     "--method-opt", "score_batches=2"]],
                         ids=["spos", "pada", "gmnas"])
def test_a_two_process_run_killed_and_resumed_ends_as_an_uninterrupted_one(method, tmp_path):
    argv = ["supernet", "--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "6",
            "--batch-size", "32", "--checkpoint-every", "4", *method]
    straight = _torchrun(*argv, "--out", str(tmp_path / "straight"))
    killed_run = tmp_path / "killed"
    killed = _torchrun(*argv, "--out", str(killed_run))
    deadline = time.monotonic() + 120
    while not (killed_run / "supernet.pt").exists():
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read()
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # torchrun and both ranks
    killed.wait()
    partial = load_checkpoint(killed_run / "supernet.pt", "nas-supernet")
    assert (partial["epoch"], partial["step"]) < (6, 0)  # it really was cut short
    _wait(_torchrun(*argv, "--out", str(killed_run)))
    _wait(straight)
    a = load_checkpoint(tmp_path / "straight" / "supernet.pt", "nas-supernet")
    b = load_checkpoint(killed_run / "supernet.pt", "nas-supernet")
    assert a["finished"] and b["finished"] and a["steps_done"] == b["steps_done"]
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]) if torch.is_tensor(value) else value == b["model"][key], key


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA on a machine without one")
def test_torchrun_refuses_what_it_cannot_run_with_one_line_a_rank(tmp_path):
    for argv, expected in [(["train", "--space", "nb201", "--arch", "x"], "runs in one process"),
                           (["supernet", "--space", "nb201", "--device", "cuda"],
                            "no CUDA device")]:
        process = _torchrun(*argv, "--out", str(tmp_path / "run"))
        _, err = process.communicate(timeout=120)
        assert process.returncode == 1  # torchrun's code when a rank failed (each exited 2)
        assert "exitcode  : 2" in err
        # Each rank said one line; no Python traceback came from the ranks themselves (torchrun
        # prints its failure summary after them).
        lines = [line for line in err.splitlines()
                 if line.startswith("nas ") and "error:" in line]
        assert len(lines) == WORLD and all(expected in line for line in lines), err
        assert f'File "{REPO / "nas"}' not in err and f'File "{REPO / "supernets"}' not in err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_two_processes_is_not_resumed_by_one():
    from nas.errors import CheckpointError

    _, supernet, method = _problem("spos")
    saved = []
    train(supernet, method, _Fixed(_global_batches()), CONFIG, save_checkpoint=saved.append)
    assert saved[-1]["world_size"] == 1
    state = {**saved[0], "world_size": 2}
    _, again, method = _problem("spos")
    with pytest.raises(CheckpointError, match="trained by 2 process.*torchrun --nproc-per-node 2"):
        train(again, method, _Fixed(_global_batches()), CONFIG, resume_from=state)


def test_a_time_budget_and_the_validation_stream_under_two_processes(tmp_path):
    # Ranks measure their own speed; the run must still end on every rank at one step count
    # (the minimum they resolved), and GM-NAS scoring splits on each rank's shard of the
    # validation stream must still split alike (check_same at every checkpoint).
    run = tmp_path / "run"
    _wait(_torchrun("supernet", "--space", "nb201", "--width", "4", "--cells", "1",
                    "--batch-size", "32", "--epochs", "50", "--time-budget", "6s",
                    "--method", "gmnas", "--method-opt", "score_data=validation",
                    "--method-opt", "score_batches=2", "--method-opt", "split_at=0.2,0.5",
                    "--out", str(run)))
    state = load_checkpoint(run / "supernet.pt", "nas-supernet")
    assert state["finished"] and state["world_size"] == WORLD
    assert 20 <= state["steps_done"] == state["total_steps"] < 50 * 17  # resolved, not the bound
    assert state["model"]["_extra_state"]["levels_done"] >= 1  # it split


def _check_a_split(rank: int, out: str) -> None:
    from supernets.ddp import DistributedContext
    from supernets.loop import _structure

    _, supernet, _ = _problem("fewshot")
    if rank == 1:
        supernet.split(0, 0, [[0], [1, 2, 3, 4]])  # this rank alone splits its supernet
    DistributedContext().check_same("the splits", {"structure": _structure(supernet)})


def test_ranks_whose_supernets_split_apart_are_stopped(tmp_path):
    mp.spawn(_rank_reports, args=(str(tmp_path / "rendezvous"), str(tmp_path), _check_a_split),
             nprocs=WORLD)
    for rank in range(WORLD):
        assert "disagree on the splits" in (tmp_path / f"rank{rank}.txt").read_text()
