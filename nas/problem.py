"""The problem every command works on: a search space sized to the user's data, the data's
splits, the device, and the scoring data prepared once.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import torch

from nas.config import DataConfig, SpaceConfig
from nas.data import BatchSource, DataSplits, PreparedBatches, load_dataset, make_splits
from nas.errors import ConfigError, DataError
from nas.runs import RunDir, atomic_write_json
from nas.training import torchrun
from search_spaces import SearchSpace, Skeleton, get_space
from supernets import ScoringData

DATA_FILE = "data.json"


def resolve_device(device: str) -> str:
    """The device `--device` names on this machine: auto is cuda when there is one; under
    torchrun a CUDA device is the process's local rank's (`nas.training.torchrun.local_device`)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r}; choose auto, cpu or cuda[:N]")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for, but this machine has no CUDA "
                              f"device; use --device cpu")
        index = device.partition(":")[2]
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            raise ConfigError(f"--device {device}: this machine has CUDA devices 0 to "
                              f"{torch.cuda.device_count() - 1}")
    return torchrun.local_device(device)


@dataclass(frozen=True)
class SearchProblem:
    """What every command works on: a search space sized to its data, the data's splits, and
    the device."""

    space: SearchSpace
    splits: DataSplits
    device: str

    def scoring_data(self) -> ScoringData:
        """Search-validation accuracy, BatchNorm recalibrated on un-augmented training batches;
        prepared on first use and shared by every later scoring of this problem."""
        return self._scoring_data

    def record_data(self, run: RunDir) -> None:
        """data.json in the run: what the data was, and each label's class name. A resumed run
        whose image folder changed since it began is refused: its splits and normalisation
        would no longer be the ones it trained with."""
        data = self.splits.data
        if (run / DATA_FILE).is_file():
            before = json.loads((run / DATA_FILE).read_text()).get("fingerprint")
            if before is not None and before != data.fingerprint:
                raise DataError(f"the images of {data.name} changed since {run.path} began "
                                f"(files added, removed or rewritten); restore them, or start "
                                f"a new --out")
        atomic_write_json(run / DATA_FILE, {"fingerprint": data.fingerprint,
            "name": data.name, "classes": list(data.label_names()),
            "train_images": len(self.splits.train.indices), "val_images": len(self.splits.val.indices),
            "test_images": len(data.x_test), "image_shape": [data.in_channels, data.image_size,
                                                            data.image_size],
            "streamed": data.is_streamed})

    @functools.cached_property
    def _scoring_data(self) -> ScoringData:
        return prepare_scoring_data(self.splits.val, self.splits.calibration)


# Batches of eval-mode scoring, whose images are independent. On a CPU, channels-last batches
# of about 32k pixels (128 images of 16x16, 32 of 32x32) ran fastest (`nas.bench.scoring_speed`):
# larger ones make activations of many MB, which malloc maps afresh for every op and the kernel
# then faults in page by page; NCHW batches of 256 ran 1.3x (NB201, C=8) to 2.7x (DARTS, C=16)
# slower. A GPU wants large batches instead, to keep it busy.
PER_IMAGE_BATCH_CPU_PIXELS = 32_768
PER_IMAGE_BATCH_GPU = 1024


def prepare_scoring_data(evaluation: BatchSource, calibration: BatchSource | None) -> ScoringData:
    """Scoring data over two fixed sources, prepared once (`nas.data.PreparedBatches`): their own
    batches (recalibration, batch-statistics scoring), and the evaluation images again in the
    batches and layout eval-mode scoring runs fastest in on their device. Streamed images are
    not prepared: their memory is bounded by batches, not by the split, so every scoring reads
    them again (and a running-statistics score groups them as the source does)."""
    if evaluation.is_streamed:
        return ScoringData(evaluation, calibration)
    if evaluation.device.type == "cpu":
        height, width = evaluation.images.shape[-2:]
        batch = max(1, PER_IMAGE_BATCH_CPU_PIXELS // (height * width))
        per_image = PreparedBatches(evaluation, batch, channels_last=True)
    else:
        per_image = PreparedBatches(evaluation, PER_IMAGE_BATCH_GPU)
    return ScoringData(PreparedBatches(evaluation),
                       None if calibration is None else PreparedBatches(calibration), per_image)


def build_problem(space: SpaceConfig, data: DataConfig, seed: int, device: str) -> SearchProblem:
    device = resolve_device(device)
    images = load_dataset(data)
    skeleton = Skeleton(in_channels=images.in_channels, num_classes=images.num_classes,
                        image_size=images.image_size, width=space.width, cells=space.cells)
    return SearchProblem(get_space(space.name, skeleton), make_splits(images, data, seed, device),
                         device)
