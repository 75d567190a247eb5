"""The one scorer concept: an architecture in, a score out, whatever computes it.

A scorer is what a search maximises, what `nas correlate` sets against ground truth and what
trust re-draws: the trained supernet (`nas.scorers.supernet`), a training-free proxy
(`nas.scorers.proxies`), or a ground-truth table (`nas.scorers.table`). The setting that names
one (`--scorer supernet|proxy:NAME`, `--oracle TABLE`) is parsed once into a `ScorerSetting`,
and `build_scorer` is the one place that turns a setting into a scorer; no code outside this
room asks which kind it has, only what the setting needs (`trains_supernet`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from nas.errors import ConfigError
from search_spaces import Architecture

if TYPE_CHECKING:  # the problem and a trained supernet are built elsewhere, then handed in
    from nas.problem import SearchProblem
    from nas.training.supernet import TrainedSupernet


@runtime_checkable
class Scorer(Protocol):
    """Scores architectures of one problem; higher is better.

    A scorer's value for an architecture does not depend on which other architectures it
    scored, or in which order, so a resumed or parallel search sees the same values.
    """

    column: str  # the name of its scores in trials.csv and correlation tables

    def __call__(self, arch: Architecture) -> float:
        """The score of `arch`."""
        ...

    def identity(self) -> str:
        """What a shared study records of this scorer, so that a process bringing another is
        refused: its kind and what fixes its values (a checkpoint's or table's checksum)."""
        ...

    def redrawn(self) -> Scorer | None:
        """The same scorer over a second, independent draw of its random parts (trust's score
        noise), or None when its values have no random parts to draw again."""
        ...


Kind = Literal["supernet", "proxy", "oracle"]
_KINDS: tuple[Kind, ...] = ("supernet", "proxy", "oracle")


@dataclass(frozen=True)
class ScorerSetting:
    """`--scorer` parsed: `supernet`, `proxy:NAME` or `oracle:TABLE` (`--oracle TABLE`), and
    the table's column (None: the table's default)."""

    kind: Kind = "supernet"
    argument: str = ""          # the proxy's name, or the table's path
    column: str | None = None   # an oracle's accuracy column

    @classmethod
    def parse(cls, text: str, column: str | None = None) -> ScorerSetting:
        kind, _, argument = text.partition(":")
        is_valid = text == "supernet" or (kind in _KINDS and kind != "supernet" and argument)
        if not is_valid:
            raise ConfigError(f"unknown scorer {text!r}; choose supernet, proxy:NAME "
                              f"(e.g. proxy:naswot) or oracle:TABLE.csv")
        if column is not None and kind != "oracle":
            raise ConfigError("a table column is for an oracle search; give --oracle FILE too")
        return cls(kind, argument, column)

    def __str__(self) -> str:
        return self.kind if self.kind == "supernet" else f"{self.kind}:{self.argument}"

    @property
    def trains_supernet(self) -> bool:
        """Whether scoring needs a trained supernet (the others train nothing)."""
        return self.kind == "supernet"

    @property
    def label(self) -> str:
        """A short name for run directories: the proxy's name, `oracle`, `supernet`."""
        return self.argument if self.kind == "proxy" else self.kind

    def resolved(self, scorer: Scorer) -> ScorerSetting:
        """This setting as `scorer` resolved it, to record in the run: a table's default
        column named."""
        return ScorerSetting(self.kind, self.argument, scorer.column) if self.kind == "oracle" \
            else self

    def check(self) -> None:
        """Fail on a name that does not exist (an unknown proxy), before anything is built."""
        if self.kind == "proxy":
            from nas.scorers.proxies import PROXIES

            PROXIES.get(self.argument)


def build_scorer(setting: ScorerSetting, problem: SearchProblem, seed: int = 0,
                 trained: TrainedSupernet | None = None) -> Scorer:
    """The scorer `setting` names on `problem`: the supernet `trained` (which a supernet
    setting needs), a proxy on fresh models seeded by `seed`, or a table looked up."""
    if setting.kind == "supernet":
        if trained is None:
            raise ConfigError("the supernet scorer needs a trained supernet; train one first")
        from nas.scorers.supernet import SupernetScorer

        return SupernetScorer(trained)
    if setting.kind == "proxy":
        from nas.scorers.proxies import ProxyScorer

        return ProxyScorer(problem, setting.argument, seed)
    from nas.scorers.table import TableScorer

    return TableScorer(Path(setting.argument), problem.space, setting.column)
