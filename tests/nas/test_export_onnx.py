"""`nas export --format onnx`: for every space and every --init, an ONNX model that computes the
exported PyTorch model's logits under onnxruntime at any batch size, with the metadata a
deployment needs inside it; and its answers to a bad format, a missing package, existing files."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime")  # an optional extra; the test extra has it

from nas.cli import main
from nas.data.datasets import ImageData
from nas.export import load_model, read_metadata, read_onnx_metadata
from nas.export.from_run import recorded_problem

# Tiny supernets on the embedded digits (1x8x8, 10 classes), two training steps each.
SKELETONS = {"nb201": ["--width", "4", "--cells", "1"],
             "darts": ["--width", "4", "--cells", "3"],
             "mobilenet": ["--width", "4", "--cells", "2"]}
NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
              "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def _supernet_run(root, space: str):
    run = root / space
    assert main(["supernet", "--space", space, *SKELETONS[space], "--steps", "2",
                 "--train-subset", "128", "--batch-size", "16", "--device", "cpu",
                 "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module", params=sorted(SKELETONS))
def space_run(request, tmp_path_factory):
    """(space name, a supernet run of it, an architecture of it)."""
    run = _supernet_run(tmp_path_factory.mktemp("runs"), request.param)
    problem = recorded_problem(run, "cpu")
    return request.param, run, str(problem.space.sample(np.random.default_rng(0)))


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    return _supernet_run(tmp_path_factory.mktemp("runs"), "nb201")


def _onnx_logits(path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (batch, *_), = [i.shape for i in session.get_inputs()]
    assert batch == "batch"  # a named dynamic dimension, not the traced size
    return session.run(["logits"], {"images": images.numpy()})[0]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_every_init_exports_an_onnx_model_with_the_pytorch_models_logits(space_run, tmp_path):
    name, run, arch = space_run
    inherited = tmp_path / "inherit.onnx"  # the suffix alone chooses the format
    assert main(["export", str(run), "--arch", arch, "--out", str(inherited),
                 "--device", "cpu"]) == 0
    teacher = inherited.with_suffix(".state_dict.pt")  # an ONNX export's weights teach, too
    outs = {"inherit": inherited}
    for init, extra in (("scratch", []), ("weight-selection", ["--teacher", str(teacher)])):
        outs[init] = tmp_path / f"{init}.onnx"
        assert main(["export", str(run), "--arch", arch, "--init", init, *extra, "--format",
                     "onnx", "--out", str(outs[init]), "--device", "cpu"]) == 0
    torch.manual_seed(0)
    images = torch.randn(5, *read_metadata(inherited)["input_shape"])  # traced at batch 2
    for init, out in outs.items():
        model, exported_arch = load_model(out.with_suffix(".state_dict.pt"))
        assert str(exported_arch) == arch and read_metadata(out)["init"] == init
        with torch.no_grad():
            expected = model(images).numpy()
        got = _onnx_logits(out, images)
        assert got.shape == (5, 10)
        assert np.abs(got - expected).max() < 1e-4, (name, init, np.abs(got - expected).max())
    # the trained weights make the logits depend on the input, so equality above means something
    with torch.no_grad():
        trained = load_model(teacher)[0](images)
    assert (trained - trained.mean(0)).abs().max() > 1e-3, name


def test_metadata_round_trips_through_the_onnx_model_and_the_json(nb201_run, tmp_path,
                                                                   monkeypatch):
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    monkeypatch.setattr(ImageData, "label_names", lambda self: names)
    for out in ("m.onnx", "p.pt2"):
        assert main(["export", str(nb201_run), "--arch", NB201_ARCH, "--init", "scratch",
                     "--out", str(tmp_path / out), "--device", "cpu"]) == 0
    inside = read_onnx_metadata(tmp_path / "m.onnx")
    beside = read_metadata(tmp_path / "m.onnx")
    train = recorded_problem(nb201_run, "cpu").splits.train
    assert inside["class_names"] == beside["class_names"] == list(names)
    assert inside["arch"] == beside["arch"] == NB201_ARCH and inside["space"] == "nb201"
    assert inside["normalization"] == beside["normalization"]
    assert inside["normalization"]["mean"] == pytest.approx(train.mean.flatten().tolist())
    assert inside["normalization"]["std"] == pytest.approx(train.std.flatten().tolist())
    assert inside["input_shape"] == [1, 8, 8]
    assert inside["skeleton"] == beside["skeleton"] == {"in_channels": 1, "num_classes": 10,
                                                        "image_size": 8, "width": 4, "cells": 1}
    assert read_metadata(tmp_path / "p.pt2")["class_names"] == list(names)


def test_without_names_the_classes_are_the_label_numbers(nb201_run, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", str(nb201_run), "--arch", NB201_ARCH, "--init", "scratch",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert read_onnx_metadata(out)["class_names"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("argv, message", [
    (["--format", "onnx", "--out", "m.pt2"], "--out m.pt2 must end in .onnx for --format onnx"),
    (["--format", "pt2", "--out", "m.onnx"], "--out m.onnx must end in .pt2 for --format pt2"),
    (["--out", "m.tflite"], "--out m.tflite must end in .pt2 (a torch.export program) or .onnx"),
])
def test_a_suffix_that_does_not_name_the_format_is_one_line(argv, message, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # no run there: the check comes before any run is read
    assert main(["export", str(tmp_path), "--init", "scratch", *argv]) == 2
    assert message in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path), "--format", "tflite", "--out", str(tmp_path / "m.tflite")])
    assert exit_.value.code == 2
    assert "--format: invalid choice: 'tflite'" in _error_line(capsys)


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_a_missing_package_names_the_install_command(package, nb201_run, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # `import onnxscript` raises ImportError
    assert main(["export", str(nb201_run), "--arch", NB201_ARCH, "--init", "scratch",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    line = _error_line(capsys)
    assert f"({package} missing)" in line and "pip install 'nas-platform[onnx]'" in line
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_kept_without_overwrite(nb201_run, tmp_path, capsys):
    export = ["export", str(nb201_run), "--arch", NB201_ARCH, "--init", "scratch",
              "--device", "cpu"]
    out = tmp_path / "m.onnx"
    out.write_bytes(b"earlier result")
    assert main([*export, "--out", str(out)]) == 2
    assert "m.onnx exists; choose another --out or pass --overwrite" in _error_line(capsys)
    assert out.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    # FILE.pt2 and FILE.onnx share their sidecars: one does not replace the other's silently
    out.unlink()
    assert main([*export, "--out", str(tmp_path / "m.pt2")]) == 0
    sidecar = (tmp_path / "m.json").read_bytes()
    assert main([*export, "--out", str(out)]) == 2
    assert "m.state_dict.pt exists" in _error_line(capsys)
    assert not out.exists() and (tmp_path / "m.json").read_bytes() == sidecar
    assert main([*export, "--out", str(out), "--overwrite"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["arch"] == NB201_ARCH
    assert read_onnx_metadata(out)["arch"] == NB201_ARCH


def test_a_trained_model_exports_as_onnx_with_its_own_weights(tmp_path, capsys):
    from nas.export import load_program

    run = tmp_path / "train"
    assert main(["train", "--space", "nb201", *SKELETONS["nb201"], "--arch", NB201_ARCH,
                 "--epochs", "1", "--device", "cpu", "--out", str(run)]) == 0
    out = tmp_path / "trained.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    images = torch.randn(5, 1, 8, 8)
    expected = load_program(run / "model.pt2")(images).detach().numpy()
    session = onnxruntime.InferenceSession(str(out))
    np.testing.assert_allclose(session.run(None, {"images": images.numpy()})[0], expected,
                               atol=1e-4, rtol=0)
    metadata = read_onnx_metadata(out)
    assert metadata["arch"] == NB201_ARCH and metadata["class_names"] == [str(i) for i in range(10)]
    assert json.loads(out.with_suffix(".json").read_text())["init"] == "scratch-trained"
    capsys.readouterr()
    other = NB201_ARCH.replace("avg_pool_3x3~1", "skip_connect~1")
    assert main(["export", str(run), "--arch", other, "--out", str(tmp_path / "u.onnx")]) == 2
    assert f"trained {NB201_ARCH}, not {other}" in capsys.readouterr().err
