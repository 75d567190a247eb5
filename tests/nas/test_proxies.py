"""Training-free proxies: each against a hand-computed value, invariant to the batch order, and
usable from `nas correlate --proxy`, `nas search --scorer proxy:NAME` and the ranking report."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.scorers.proxies import PROXIES, activation_kernel, grad_norm, naswot, snip, synflow
from search_spaces import Skeleton, get_space

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


def _linear(weight, bias=None) -> nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


# ---- hand-computed values ------------------------------------------------------------------
def test_synflow_of_a_linear_chain_is_its_conserved_flow_per_layer():
    """With x = 1 and |W|: R = 1^T |W2| |W1| 1 = (1, 2) . (3, 3.5) = 10, and each layer's
    sum |W * dR/dW| equals R (synaptic flow is conserved), so two layers score 2R = 20."""
    chain = nn.Sequential(_linear([[1.0, -2.0], [3.0, 0.5]]), _linear([[-1.0, 2.0]]))
    assert synflow(chain, torch.randn(5, 2), torch.zeros(5, dtype=torch.long)) == pytest.approx(20.0)
    assert chain[0].weight[0, 1].item() == -2.0  # the model itself keeps its signs


def test_synflow_removes_batchnorm_and_uses_no_data():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    plain(torch.zeros(1, 1, 5, 5))
    with_bn = nn.Sequential(plain[0], nn.BatchNorm2d(3), *plain[1:])
    with torch.no_grad():
        with_bn[1].weight.fill_(7.0)  # would change the flow if BatchNorm were kept
    a = synflow(plain, torch.randn(4, 1, 5, 5), torch.zeros(4, dtype=torch.long))
    b = synflow(with_bn, torch.randn(9, 1, 5, 5), torch.zeros(9, dtype=torch.long))
    assert a == pytest.approx(b, rel=1e-12) and a > 0


def test_naswot_kernel_counts_agreeing_relu_units_on_hand_inputs():
    """Pre-activations x W^T with W = [[1,0],[0,1],[1,1]]: codes (1,1,1), (1,0,0), (0,0,0);
    K = 3 - Hamming distance = [[3,1,0],[1,3,2],[0,2,3]], det K = 15 - 3 = 12."""
    net = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], bias=[0.0, 0.0, 0.0]),
                        nn.ReLU())
    images = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    expected = torch.tensor([[3, 1, 0], [1, 3, 2], [0, 2, 3]], dtype=torch.float64)
    assert torch.equal(activation_kernel(net, images), expected)
    assert naswot(net, images, torch.zeros(3, dtype=torch.long)) == pytest.approx(math.log(12))


def test_naswot_sums_the_kernels_of_every_relu():
    net = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], bias=[0.0, 0.0, 0.0]),
                        nn.ReLU(), _linear([[1.0, -1.0, 0.0]], bias=[0.0]), nn.ReLU())
    images = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    # Second ReLU's input: relu(h) . (1, -1, 0) = 0, 1, 0 -> codes 0, 1, 0.
    second = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float64)
    first = torch.tensor([[3, 1, 0], [1, 3, 2], [0, 2, 3]], dtype=torch.float64)
    assert torch.equal(activation_kernel(net, images), first + second)


def test_grad_norm_and_snip_of_logistic_regression_match_the_closed_form():
    """z = W x with W = I, x = (2, -1), label 0: dL/dW = (softmax(z) - e_0) x^T with
    softmax(z) - e_0 = (-q, q), q = 1 / (1 + e^3); so the gradient is [[-2q, q], [2q, -q]],
    its norm is q sqrt(10), and snip = sum |W * g| = 2q + q (W's diagonal)."""
    layer = _linear([[1.0, 0.0], [0.0, 1.0]])
    images, labels = torch.tensor([[2.0, -1.0]]), torch.tensor([0])
    q = 1 / (1 + math.exp(3))
    assert grad_norm(layer, images, labels) == pytest.approx(q * math.sqrt(10), rel=1e-5)
    assert snip(layer, images, labels) == pytest.approx(3 * q, rel=1e-5)
    assert layer.weight.grad is None  # scored on a copy


@pytest.mark.parametrize("name", ["naswot", "grad_norm", "snip"])  # synflow reads no batch
def test_a_proxy_does_not_depend_on_the_order_of_its_batch(name):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    splits = make_splits(load_data(None), DataConfig(), 0)
    images, labels, _ = splits.train.one_batch(64, seed=0)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|"
                       "nor_conv_3x3~1|avg_pool_3x3~2|")
    torch.manual_seed(0)
    model = space.build_model(arch)
    score = PROXIES.get(name).score
    assert score(model, images[order], labels[order]) == pytest.approx(score(model, images, labels),
                                                                       rel=1e-5)


# ---- from the command line -----------------------------------------------------------------
def _ground_truth(tmp_path, n=12, seeds=(0,)):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    rng = np.random.default_rng(0)
    archs = sorted({str(space.sample(rng)) for _ in range(3 * n)})[:n]
    path = tmp_path / "gt.csv"
    pd.DataFrame([{"arch": a, "seed": s, "accuracy": 50 + i + s} for i, a in enumerate(archs)
                  for s in seeds]).to_csv(path, index=False)
    return path, archs, space


def test_correlate_with_proxies_writes_a_run_per_proxy_and_seed(tmp_path, capsys):
    truth, archs, space = _ground_truth(tmp_path)
    out = tmp_path / "proxies"
    assert main(["correlate", "--proxy", "params,naswot", *TINY, "--ground-truth", str(truth),
                 "--proxy-seeds", "0,1", "--out", str(out)]) == 0
    for name in ("params", "naswot"):
        for seed in (0, 1):
            folder = out / f"proxy-{name}-seed{seed}" / "correlation-gt-accuracy"
            table = pd.read_csv(folder / "correlation.csv")
            assert sorted(table["arch"]) == sorted(archs)
            assert (folder / "scatter.png").is_file()
            assert json.loads((folder / "correlation.json").read_text())["proxy"] == name
    params = pd.read_csv(out / "proxy-params-seed0" / "correlation-gt-accuracy" / "correlation.csv")
    assert params["proxy_score"].tolist() == pytest.approx(
        [space.params_m(space.parse(a)) for a in params["arch"]])
    naswot_0, naswot_1 = (pd.read_csv(out / f"proxy-naswot-seed{s}" / "correlation-gt-accuracy" /
                                      "correlation.csv")["proxy_score"] for s in (0, 1))
    assert not np.allclose(naswot_0, naswot_1)  # another initialisation and batch


@pytest.mark.parametrize("argv, message", [
    (["correlate", "--proxy", "nope", *TINY, "--ground-truth", "gt.csv", "--out", "o"],
     "unknown proxy 'nope'; choose one of: az_expressivity, az_progressivity, az_trainability, "
     "flops, grad_norm, jacov, meco, naswot, params, snip, synflow, zico"),
    (["correlate", "--proxy", "naswot", "--ground-truth", "gt.csv", "--out", "o"],
     "--proxy needs --space"),
    (["search", *TINY, "--scorer", "proxy:nope", "--trials", "1"], "unknown proxy 'nope'"),
    (["search", *TINY, "--scorer", "magic", "--trials", "1"], "unknown scorer 'magic'"),
])
def test_a_proxy_that_does_not_exist_is_a_one_line_error(argv, message, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    _ground_truth(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_search_with_a_proxy_trains_nothing_and_exports_fresh_weights(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--scorer", "proxy:synflow", "--searcher", "random",
                 "--trials", "8", "--out", str(run)]) == 0
    assert not (run / "supernet.pt").exists()
    trials = pd.read_csv(run / "trials.csv")
    best = (run / "best.txt").read_text().strip()
    assert best == trials.sort_values("synflow", ascending=False)["arch"].iloc[0]
    assert main(["search", *TINY, "--scorer", "proxy:synflow", "--searcher", "random",
                 "--trials", "8", "--out", str(run)]) == 0  # resumes: nothing new
    assert pd.read_csv(run / "trials.csv").equals(trials)
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt2"), "--device", "cpu"]) == 2
    assert "--init scratch" in capsys.readouterr().err
    assert main(["export", str(run), "--init", "scratch", "--out", str(tmp_path / "m.pt2"),
                 "--device", "cpu"]) == 0


def test_proxies_are_rows_of_the_ranking_report(tmp_path):
    from nas.reports import ranking_report

    truth, archs, space = _ground_truth(tmp_path, n=16, seeds=(0, 1))
    runs = tmp_path / "runs"
    assert main(["correlate", "--proxy", "params,flops", *TINY, "--ground-truth", str(truth),
                 "--proxy-seeds", "0,1", "--out", str(runs)]) == 0
    out = tmp_path / "report"
    assert ranking_report.main(["--runs", str(runs), "--ground-truth", str(truth), "--out",
                                str(out), "--methods", "proxy-params,proxy-flops", "--seeds",
                                "0,1", "--baseline", "proxy-params", "--resamples", "50"]) == 0
    methods = pd.read_csv(out / "methods.csv").set_index("method")
    assert set(methods.index) == {"proxy-params", "proxy-flops"}


def test_the_proxy_table_collects_every_proxy_run(tmp_path, capsys):
    from nas.reports import proxy_table

    truth, archs, _ = _ground_truth(tmp_path)
    runs = tmp_path / "runs"
    assert main(["correlate", "--proxy", "params,synflow", *TINY, "--ground-truth", str(truth),
                 "--out", str(runs)]) == 0
    capsys.readouterr()
    assert proxy_table.main(["--runs", str(runs), "--ground-truth", str(truth), "--out",
                             str(tmp_path / "proxies.csv")]) == 0
    table = pd.read_csv(tmp_path / "proxies.csv")
    assert sorted(table.columns) == ["arch", "ground_truth", "params-seed0", "synflow-seed0"]
    assert sorted(table["arch"]) == sorted(archs)
    printed = capsys.readouterr().out
    assert "| synflow |" in printed and "| params |" in printed
