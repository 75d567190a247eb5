"""Weight selection (Xu et al., ICLR 2024): the index rule, selection against hand-built
expectations, first-N blocks per stage, aligned channels, errors, and the CLI's --init."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from nas import api
from nas.cli import main
from nas.errors import CheckpointError, ConfigError
from nas.export import save_model
from nas.export.weight_selection import (element_indices, load_teacher, select_tensor, select_weights,
                                  skipped_keys, teacher_keys)
from search_spaces import Skeleton, get_space

DIGITS = dict(in_channels=1, num_classes=10, image_size=8)  # the embedded data's shape
NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
              "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
NB201_1X1 = NB201_ARCH.replace("|nor_conv_3x3~0|+", "|nor_conv_1x1~0|+", 1)
MOBILE = dict(in_channels=3, num_classes=5, image_size=8, cells=2)
MOBILE_TEACHER = "r8-s1:k7e6,k7e6,k7e6,k7e6-s2:k7e6,k7e6,k7e6,k7e6"
MOBILE_STUDENT = "r8-s1:k3e3,k5e4-s2:k7e6,k3e3,k5e3"  # smaller kernels, expands and depths


def _model(name: str, skeleton: Skeleton, arch: str, seed: int = 0) -> tuple:
    """A space, architecture and model whose every state tensor is random (BatchNorm at its
    init would hide selection mistakes)."""
    space = get_space(name, skeleton)
    arch_obj = space.parse(arch) if isinstance(arch, str) else arch
    torch.manual_seed(seed)
    model = space.build_model(arch_obj)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            else:
                tensor.fill_(7)
    return space, arch_obj, model.eval()


def _indices(teacher_size: int, student_size: int) -> list[int]:
    """The paper's rule in exact arithmetic (equal to torch's float32 linspace below T = 48)."""
    if teacher_size % student_size == 0:
        return list(range(0, teacher_size, teacher_size // student_size))
    return [round(Fraction(i * (teacher_size - 1), student_size - 1)) for i in range(student_size)]


def _expected(teacher: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    for dim, size in enumerate(shape):
        teacher = teacher.index_select(dim, torch.tensor(_indices(teacher.shape[dim], size)))
    return teacher


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---- the per-dimension rule --------------------------------------------------------------
def test_divisible_sizes_take_every_step_th_index() -> None:
    assert element_indices(8, 4).tolist() == [0, 2, 4, 6]
    assert element_indices(96, 24).tolist() == list(range(0, 96, 4))
    for t in range(1, 65):
        for s in (s for s in range(1, t + 1) if t % s == 0):
            assert element_indices(t, s).tolist() == list(range(0, t, t // s))


def test_other_sizes_round_a_linspace_to_the_last_index() -> None:
    assert element_indices(7, 3).tolist() == [0, 3, 6]
    assert element_indices(7, 5).tolist() == [0, 2, 3, 4, 6]  # 1.5 and 4.5 round to even
    assert element_indices(10, 4).tolist() == [0, 3, 6, 9]
    for t in range(2, 65):
        for s in (s for s in range(2, t) if t % s):
            expected = torch.round(torch.linspace(0, t - 1, s)).long()
            assert torch.equal(element_indices(t, s), expected)
            if t < 48:
                assert element_indices(t, s).tolist() == _indices(t, s)


@pytest.mark.parametrize("t", [1, 3, 7, 8, 13, 32])
def test_indices_are_in_range_evenly_spaced_and_whole_for_equal_sizes(t: int) -> None:
    assert element_indices(t, t).tolist() == list(range(t))
    for s in range(1, t + 1):
        idx = element_indices(t, s)
        assert idx.dtype == torch.long and len(idx) == s and idx[0] == 0 and idx[-1] <= t - 1
        if s > 1:  # strictly increasing, steps differing by at most one
            steps = idx.diff()
            assert (steps >= 1).all() and steps.max() - steps.min() <= 1


def test_a_student_larger_than_its_teacher_is_refused() -> None:
    with pytest.raises(ConfigError, match="not 5"):
        element_indices(4, 5)
    with pytest.raises(ConfigError, match="dimension 1"):
        select_tensor(torch.zeros(4, 2), (2, 3), "x.weight")
    with pytest.raises(ConfigError, match="2 dimensions"):
        select_tensor(torch.zeros(4, 4), (4,), "x.weight")


# ---- selection --------------------------------------------------------------------------
@pytest.mark.parametrize("name, skeleton, arch", [
    ("nb201", Skeleton(**DIGITS, width=4, cells=1), NB201_ARCH),
    ("mobilenet", Skeleton(**MOBILE, width=4), MOBILE_STUDENT),
    ("darts", Skeleton(**DIGITS, width=4, cells=3), None),
])
def test_a_teacher_of_the_students_own_shapes_is_copied_exactly(name, skeleton, arch) -> None:
    arch = arch or get_space(name, skeleton).sample(np.random.default_rng(0))
    space, arch_obj, teacher = _model(name, skeleton, arch, seed=0)
    _, _, student = _model(name, skeleton, arch, seed=5)
    selected = select_weights(teacher.state_dict(), space, space, student)
    assert selected.keys() == teacher.state_dict().keys()
    for key, tensor in teacher.state_dict().items():
        assert torch.equal(selected[key], tensor), key
    student.load_state_dict(selected)
    x = torch.randn(4, *space.input_shape())
    with torch.no_grad():
        assert torch.equal(student(x), teacher(x))


def _check_block_selection(teacher, teacher_space, student, space, blocks) -> None:
    """Every student tensor is the evenly spaced selection of its teacher tensor, student
    block i taken from teacher block blocks[i]."""
    selected = select_weights(teacher.state_dict(), teacher_space, space, student)
    own = teacher.state_dict()
    for key, target in student.state_dict().items():
        source = key
        if key.startswith("cells."):
            i = int(key.split(".")[1])
            source = key.replace(f"cells.{i}.", f"cells.{blocks[i]}.", 1)
        assert torch.equal(selected[key], _expected(own[source], target.shape)), key


def test_a_narrower_shallower_nb201_takes_evenly_spaced_channels_of_the_first_cells() -> None:
    teacher_space, _, teacher = _model("nb201", Skeleton(**DIGITS, width=8, cells=2), NB201_ARCH)
    space, _, student = _model("nb201", Skeleton(**DIGITS, width=4, cells=1), NB201_ARCH, seed=3)
    # Blocks: teacher [c, c | R, c, c | R, c, c], student [c | R, c | R, c].
    blocks = {0: 0, 1: 2, 2: 3, 3: 5, 4: 6}
    key = "cells.2.edges.0.nor_conv_3x3.conv.weight"
    assert teacher_keys(teacher_space, space, [key]) == {key: key.replace("cells.2", "cells.3")}
    _check_block_selection(teacher, teacher_space, student, space, blocks)


def test_a_smaller_mobilenet_takes_evenly_spaced_elements_of_every_dimension() -> None:
    teacher_space, _, teacher = _model("mobilenet", Skeleton(**MOBILE, width=8), MOBILE_TEACHER)
    space, _, student = _model("mobilenet", Skeleton(**MOBILE, width=4), MOBILE_STUDENT, seed=3)
    selected = select_weights(teacher.state_dict(), teacher_space, space, student)
    own = teacher.state_dict()
    depthwise = "stages.0.0.depthwise.weight"  # kernel 3 of 7: rows and columns 0, 3, 6
    assert own[depthwise].shape[-1] == 7 and selected[depthwise].shape[-1] == 3
    assert torch.equal(selected[depthwise][0, 0], own[depthwise][0, 0][[0, 3, 6]][:, [0, 3, 6]])
    assert not any(k.startswith(("stages.0.2", "stages.0.3")) for k in selected)  # depth 2 of 4
    for key, target in student.state_dict().items():
        assert torch.equal(selected[key], _expected(own[key], target.shape)), key


def test_a_narrower_shallower_darts_takes_the_first_cells_of_each_stage() -> None:
    arch = get_space("darts").sample(np.random.default_rng(1))
    teacher_space, _, teacher = _model("darts", Skeleton(**DIGITS, width=8, cells=8), str(arch))
    space, _, student = _model("darts", Skeleton(**DIGITS, width=4, cells=5), str(arch), seed=3)
    blocks = {0: 0, 1: 2, 2: 3, 3: 5, 4: 6}  # [n, n | R, n, n | R, n, n] and [n | R, n | R, n]
    _check_block_selection(teacher, teacher_space, student, space, blocks)


@pytest.mark.parametrize("width", [4, 3])  # 8 -> 4 divides, 8 -> 3 does not
def test_consecutive_layers_keep_the_same_channels(width: int) -> None:
    teacher_space, _, teacher = _model("nb201", Skeleton(**DIGITS, width=8, cells=1), NB201_ARCH)
    space, _, student = _model("nb201", Skeleton(**DIGITS, width=width, cells=1), NB201_ARCH)
    state = teacher.state_dict()
    conv = "cells.0.edges.0.nor_conv_3x3.conv.weight"
    channel = torch.arange(8.0)
    state["stem.conv.weight"][:] = channel.view(8, 1, 1, 1)      # value = output channel
    state["stem.bn.weight"][:] = channel
    state[conv][:] = channel.view(1, 8, 1, 1)                     # value = input channel
    selected = select_weights(state, teacher_space, space, student)
    kept = selected["stem.conv.weight"][:, 0, 0, 0]
    assert kept.tolist() == element_indices(8, width).float().tolist()
    assert torch.equal(selected["stem.bn.weight"], kept)
    assert torch.equal(selected[conv][0, :, 0, 0], kept)


def test_a_classifier_for_other_classes_stays_fresh() -> None:
    teacher_space, _, teacher = _model("nb201", Skeleton(**DIGITS, width=8, cells=1), NB201_ARCH)
    skeleton = Skeleton(in_channels=1, num_classes=5, image_size=8, width=4, cells=1)
    space, _, student = _model("nb201", skeleton, NB201_ARCH, seed=3)
    fresh = {k: v.clone() for k, v in student.state_dict().items()}
    selected = select_weights(teacher.state_dict(), teacher_space, space, student)
    skipped = skipped_keys(teacher_space, space, list(selected))
    assert skipped == ["head.classifier.weight", "head.classifier.bias"]
    for key in skipped:
        assert torch.equal(selected[key], fresh[key])
    bn = "head.bn.weight"
    assert torch.equal(selected[bn], _expected(teacher.state_dict()[bn], fresh[bn].shape))


# ---- errors -----------------------------------------------------------------------------
def _select(teacher_args: tuple, student_args: tuple) -> None:
    teacher_space, _, teacher = _model(*teacher_args)
    space, _, student = _model(*student_args)
    select_weights(teacher.state_dict(), teacher_space, space, student)


NB201_TINY = ("nb201", Skeleton(**DIGITS, width=4, cells=1), NB201_ARCH)


def test_a_teacher_of_another_space_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        _select(("mobilenet", Skeleton(**MOBILE, width=4), MOBILE_STUDENT), NB201_TINY)
    assert _one_line(error) == ("teacher is a mobilenet model; weight selection needs a teacher "
                                "of the student's space nb201")


def test_a_teacher_smaller_in_a_dimension_names_the_layer_and_both_shapes() -> None:
    with pytest.raises(ConfigError) as error:
        _select(NB201_TINY, ("nb201", Skeleton(**DIGITS, width=8, cells=1), NB201_ARCH))
    message = _one_line(error)
    assert "stem.conv.weight" in message and "(4, 1, 3, 3)" in message
    assert "(8, 1, 3, 3)" in message


def test_a_layer_the_teacher_lacks_is_named() -> None:
    with pytest.raises(ConfigError) as error:
        _select(("nb201", Skeleton(**DIGITS, width=4, cells=1), NB201_1X1), NB201_TINY)
    message = _one_line(error)
    assert "cells.0.edges.0.nor_conv_3x3.conv.weight" in message and "no such layer" in message
    with pytest.raises(ConfigError) as error:  # mobilenet: a stage deeper than the teacher's
        _select(("mobilenet", Skeleton(**MOBILE, width=8), "r8-s1:k7e6,k7e6-s2:k7e6,k7e6"),
                ("mobilenet", Skeleton(**MOBILE, width=4), MOBILE_STUDENT))
    assert "stages.1.2." in _one_line(error)


def test_a_shallower_teacher_names_the_missing_block() -> None:
    with pytest.raises(ConfigError) as error:
        _select(NB201_TINY, ("nb201", Skeleton(**DIGITS, width=4, cells=2), NB201_ARCH))
    assert "student block cells.1 (stage 0, position 1)" in _one_line(error)


# ---- the teacher file -------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """An exported nb201 model of width 8 and 2 cells per stage, for the digits."""
    space, arch, model = _model("nb201", Skeleton(**DIGITS, width=8, cells=2), NB201_ARCH)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt2"
    save_model(model, space, arch, path, {})
    return path


def test_load_teacher_reads_either_file_of_an_exported_model(teacher_file) -> None:
    for path in (teacher_file, teacher_file.with_suffix(".state_dict.pt")):
        teacher = load_teacher(path)
        assert teacher.path == teacher_file.resolve() and str(teacher.arch) == NB201_ARCH
        assert teacher.space.width == 8 and teacher.metadata()["teacher_skeleton"]["cells"] == 2


def test_load_teacher_refuses_missing_corrupt_and_other_files(teacher_file, tmp_path) -> None:
    with pytest.raises(CheckpointError) as error:
        load_teacher(tmp_path / "absent.pt2")
    assert "absent.state_dict.pt" in _one_line(error)
    (tmp_path / "bad.state_dict.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError) as error:
        load_teacher(tmp_path / "bad.pt2")
    assert "not a readable checkpoint" in _one_line(error)
    with pytest.raises(ConfigError) as error:
        load_teacher(tmp_path / "model.pt")
    assert "FILE.pt2" in _one_line(error)


# ---- the command line --------------------------------------------------------------------
TRAIN = ["train", "--space", "nb201", "--width", "4", "--cells", "1", "--arch", NB201_ARCH,
         "--train-subset", "64", "--device", "cpu"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, message", [
    (["--init", "weight-selection"], "--init weight-selection needs --teacher FILE.pt2"),
    (["--init", "inherit", "--teacher", "t.pt2"], "--teacher is for --init weight-selection"),
    (["--init", "scratch", "--teacher", "t.pt2"], "--teacher is for --init weight-selection"),
])
def test_export_takes_a_teacher_with_weight_selection_only(argv, message, tmp_path,
                                                            capsys) -> None:
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m.pt2"), *argv]) == 2
    assert message in _error_line(capsys)


def test_export_and_train_initialise_by_weight_selection(teacher_file, tmp_path, capsys) -> None:
    run = tmp_path / "run"  # --epochs 0: the trained model is the initial one
    assert main([*TRAIN, "--epochs", "0", "--init", "weight-selection", "--teacher",
                 str(teacher_file), "--out", str(run)]) == 0
    teacher = load_teacher(teacher_file)
    space = get_space("nb201", Skeleton(**DIGITS, width=4, cells=1))
    arch = space.parse(NB201_ARCH)
    start = api.initial_state(space, arch, space.build_model(arch), "weight-selection",
                              teacher_file)
    expected = select_weights(teacher.state_dict, teacher.space, space, space.build_model(arch))
    trained = torch.load(run / "model.state_dict.pt", weights_only=True)["state_dict"]
    for key, tensor in expected.items():
        assert torch.equal(start.state_dict[key], tensor) and torch.equal(trained[key], tensor)
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["init"] == {"name": "weight-selection", "teacher": str(teacher_file.resolve())}
    assert main([*TRAIN, "--epochs", "0", "--out", str(run)]) == 2  # no resume with other init
    assert "init" in _error_line(capsys)

    out = tmp_path / "ws.pt2"  # the train run records space, skeleton and data for export
    assert main(["export", str(run), "--arch", NB201_ARCH, "--init", "weight-selection",
                 "--teacher", str(teacher_file), "--out", str(out), "--device", "cpu"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["init"], meta["teacher"]) == ("weight-selection", str(teacher_file.resolve()))
    assert meta["teacher_arch"] == NB201_ARCH and meta["teacher_skeleton"]["width"] == 8
    exported = torch.load(out.with_suffix(".state_dict.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(exported[k], t) for k, t in expected.items())


def test_train_runs_a_step_from_a_selected_initialisation(teacher_file, tmp_path) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "1", "--batch-size", "16", "--init", "weight-selection",
                 "--teacher", str(teacher_file), "--out", str(run)]) == 0
    assert json.loads((run / "model.json").read_text())["init"] == "weight-selection-trained"


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["supernet", "--space", "nb201", "--width", "4", "--cells", "1", "--steps", "2",
                 "--train-subset", "128", "--batch-size", "16", "--device", "cpu",
                 "--out", str(run)]) == 0
    return run


def test_train_inherits_what_export_inherits(supernet_run, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "0", "--init", "inherit", "--teacher", str(supernet_run),
                 "--out", str(run)]) == 0
    out = tmp_path / "inherited.pt2"
    assert main(["export", str(supernet_run), "--arch", NB201_ARCH, "--out", str(out),
                 "--device", "cpu"]) == 0
    trained = torch.load(run / "model.state_dict.pt", weights_only=True)["state_dict"]
    exported = torch.load(out.with_suffix(".state_dict.pt"), weights_only=True)["state_dict"]
    assert trained.keys() == exported.keys()
    assert all(torch.equal(trained[k], exported[k]) for k in trained)
    wider = [*TRAIN, "--epochs", "0", "--init", "inherit", "--teacher", str(supernet_run),
             "--out", str(tmp_path / "other")]
    wider[wider.index("--width") + 1] = "8"
    assert main(wider) == 2
    assert "--init inherit needs the student's space nb201 and skeleton" in _error_line(capsys)
