"""The one scorer concept: an architecture in, a score out, whatever computes it.

A scorer is what a search maximises, what `nas correlate` sets against ground truth and what
trust re-draws: the trained supernet (`nas.scorers.supernet`), a training-free proxy
(`nas.scorers.proxies`), or a ground-truth table (`nas.scorers.table`). The setting that names
one (`--scorer supernet|proxy:NAME`, `--oracle TABLE`) is parsed once into a `ScorerSetting`,
and `build_scorer` is the one place that turns a setting into a scorer; no code outside this
room asks which kind it has, only what the setting needs (`trains_supernet`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
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

    def parts(self, arch: Architecture) -> dict[str, float]:
        """What the score of `arch` was combined from, by column name (a combination's parts
        and their quantiles), so trials.csv shows why an architecture won; {} for a single
        scorer."""
        ...


Kind = Literal["supernet", "proxy", "oracle", "combined"]
AGGREGATIONS = ("log_rank", "mean")  # how a combination's parts are put together (combined.py)


@dataclass(frozen=True)
class ScorerSetting:
    """`--scorer` parsed: `supernet`, `proxy:NAME` (or the bare NAME), `oracle:TABLE`
    (`--oracle TABLE`, with the table's column; None: the table's default), or a combination
    of supernet and proxies, `supernet+naswot+params` (parts joined by log-rank aggregation,
    `mean:` before them for the mean of their quantiles) or a named one (`COMBINATIONS`)."""

    kind: Kind = "supernet"
    argument: str = ""          # the proxy's name, the table's path, or the parts joined by +
    column: str | None = None   # an oracle's accuracy column
    aggregation: str = "log_rank"  # a combination's (AGGREGATIONS)

    @classmethod
    def parse(cls, text: str, column: str | None = None) -> ScorerSetting:
        setting = cls._parsed(text.strip())
        if column is not None and setting.kind != "oracle":
            raise ConfigError("a table column is for an oracle search; give --oracle FILE too")
        return replace(setting, column=column) if column is not None else setting

    @classmethod
    def _parsed(cls, text: str) -> ScorerSetting:
        from nas.scorers.combined import COMBINATIONS
        from nas.scorers.proxies import PROXIES

        if text in COMBINATIONS:
            return cls._parsed(COMBINATIONS[text])
        aggregation, has_prefix, rest = text.partition(":")
        if has_prefix and aggregation in AGGREGATIONS:
            parts = tuple(cls._parsed(part) for part in rest.split("+")) if rest else ()
            if len(parts) < 2 or any(p.kind not in ("supernet", "proxy") for p in parts):
                raise _unknown(text)
            if len({str(p) for p in parts}) < len(parts):
                raise ConfigError(f"scorer {text!r} names a part twice; name each once")
            return cls("combined", "+".join(p.label for p in parts), aggregation=aggregation)
        if "+" in text:
            return cls._parsed(f"log_rank:{text}")
        if text == "supernet":
            return cls()
        if text in PROXIES:
            return cls("proxy", text)
        kind, _, argument = text.partition(":")
        if kind == "proxy" and argument:
            return cls("proxy", PROXIES.get(argument).name)  # an unknown one: its own error
        if kind == "oracle" and argument:
            return cls("oracle", argument)
        raise _unknown(text)

    def __str__(self) -> str:
        if self.kind == "supernet":
            return "supernet"
        if self.kind == "combined":
            return self.argument if self.aggregation == "log_rank" else \
                f"{self.aggregation}:{self.argument}"
        return f"{self.kind}:{self.argument}"

    @property
    def parts(self) -> tuple[ScorerSetting, ...]:
        """A combination's parts (itself for a single scorer)."""
        if self.kind != "combined":
            return (self,)
        return tuple(ScorerSetting._parsed(p) for p in self.argument.split("+"))

    @property
    def trains_supernet(self) -> bool:
        """Whether scoring needs a trained supernet (the others train nothing)."""
        return any(p.kind == "supernet" for p in self.parts)

    @property
    def label(self) -> str:
        """A short name for run directories and a part's columns: the proxy's name, `oracle`,
        `supernet`, or the parts joined by + ."""
        if self.kind == "combined" and self.aggregation != "log_rank":
            return f"{self.aggregation}-{self.argument}"
        return self.argument if self.kind in ("proxy", "combined") else self.kind

    @property
    def column_name(self) -> str | None:
        """The column its scores go to in trials.csv (an oracle's: its table's, once read)."""
        from nas.scorers.combined import COLUMN as COMBINED
        from nas.scorers.supernet import COLUMN as SUPERNET

        return {"supernet": SUPERNET, "proxy": self.argument, "combined": COMBINED,
                "oracle": self.column}[self.kind]

    @property
    def keeps_reference(self) -> bool:
        """Whether its scorer scores a reference sample into the run (a combination)."""
        return self.kind == "combined"

    @property
    def supernet_column(self) -> str | None:
        """The trials.csv column of the supernet's own accuracy: its score, or a
        combination's supernet part; None when no supernet scores."""
        from nas.scorers.supernet import COLUMN as SUPERNET

        if not self.trains_supernet:
            return None
        return SUPERNET if self.kind == "supernet" else "supernet"

    def resolved(self, scorer: Scorer) -> ScorerSetting:
        """This setting as `scorer` resolved it, to record in the run: a table's default
        column named."""
        return replace(self, column=scorer.column) if self.kind == "oracle" else self


def _unknown(text: str) -> ConfigError:
    from nas.scorers.combined import COMBINATIONS
    from nas.scorers.proxies import PROXIES

    return ConfigError(
        f"unknown scorer {text!r}; choose supernet, a proxy ({', '.join(PROXIES.names())}), "
        f"a combination of them joined by + such as supernet+naswot+params (mean: before it "
        f"for the mean of quantiles), a named one ({', '.join(sorted(COMBINATIONS))}), or "
        f"oracle:TABLE.csv")


def build_scorer(setting: ScorerSetting, problem: SearchProblem, seed: int = 0,
                 trained: TrainedSupernet | None = None,
                 reference_dir: str | Path | None = None) -> Scorer:
    """The scorer `setting` names on `problem`: the supernet `trained` (which a supernet
    setting needs), a proxy on fresh models seeded by `seed`, a table looked up, or a
    combination of them, whose reference sample is kept in `reference_dir` (None: in memory)."""
    if setting.kind == "combined":
        from nas.scorers.combined import CombinedScorer

        parts = [build_scorer(part, problem, seed, trained) for part in setting.parts]
        return CombinedScorer.over(parts, [p.label for p in setting.parts], problem.space,
                                   setting.aggregation, reference_dir)
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
