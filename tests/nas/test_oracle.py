"""Searching a ground-truth table instead of a supernet (`nas search --oracle`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main
from nas.config import SpaceConfig, with_added_defaults

NB201_TABLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nb201.csv.gz"
needs_table = pytest.mark.skipif(not NB201_TABLE.is_file(), reason="../shared/data/nb201.csv.gz absent")


@needs_table
def test_an_oracle_search_scores_by_table_lookup(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--space", "nb201", "--oracle", str(NB201_TABLE), "--column",
                 "cifar10_valid_12ep", "--searcher", "evolution", "--trials", "30",
                 "--out", str(out)]) == 0
    trials = pd.read_csv(out / "trials.csv")
    table = pd.read_csv(NB201_TABLE).set_index("arch")["cifar10_valid_12ep"]
    assert trials["cifar10_valid_12ep"].tolist() == pytest.approx(table.loc[trials.arch].tolist())
    assert (out / "best.txt").read_text().strip() == \
        trials.sort_values("cifar10_valid_12ep", ascending=False).arch.iloc[0]


def test_an_oracle_that_does_not_cover_the_space_is_refused_before_any_file(tmp_path, capsys):
    gt = Path(__file__).resolve().parents[2] / "results" / "ranking" / "groundtruth" / "groundtruth.csv"
    assert main(["search", "--space", "nb201", "--oracle", str(gt), "--trials", "3",
                 "--out", str(tmp_path / "run")]) == 2
    assert "an oracle must list them all" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_oracle_options_are_checked(tmp_path, capsys):
    assert main(["search", "--space", "nb201", "--oracle", "x.csv", "--scorer", "proxy:params",
                 "--out", str(tmp_path / "run")]) == 2
    assert "drop --scorer" in capsys.readouterr().err


def test_a_skeleton_is_recorded_resolved_and_old_darts_runs_keep_their_8_layers():
    assert SpaceConfig("darts") == SpaceConfig("darts", 16, 3)
    assert SpaceConfig("nb201") == SpaceConfig("nb201", 16, 5)
    old = {"space": {"name": "darts", "width": None, "cells": None}}
    assert with_added_defaults(old)["space"] == {"name": "darts", "width": 16, "cells": 8}
    old_nb201 = {"space": {"name": "nb201", "width": None, "cells": None}}
    assert with_added_defaults(old_nb201)["space"] == {"name": "nb201", "width": 16, "cells": 5}
