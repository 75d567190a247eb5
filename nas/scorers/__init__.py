"""Scorers: what turns an architecture into a score. The `Scorer` protocol and the one
`build_scorer` (`scorer`), the trained supernet (`supernet`), each training-free proxy
(`proxies`), and a ground-truth table looked up (`table`); a new scorer is one file here."""
from nas.scorers.scorer import Scorer, ScorerSetting, build_scorer

__all__ = ["Scorer", "ScorerSetting", "build_scorer"]
