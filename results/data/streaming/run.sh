#!/usr/bin/env bash
# Streamed against held image folders (issue: your images to a deployable model). Run from the
# repository root with ../shared beside it. Makes an image folder of the 60,000 CIFAR-10 JPEGs
# (train/<class>/ and val/<class>/, the files exactly as the source repository holds them) and
# one with a tenth of them, then measures peak memory and speed (nas/bench/streaming.py).
set -euo pipefail
FOLDER=${FOLDER:-results/runs/cifar10-jpeg-folder}
SMALL=${SMALL:-results/runs/cifar10-jpeg-folder-tenth}
export OMP_NUM_THREADS=1
python - "$FOLDER" "$SMALL" <<'PY'
import sys
from pathlib import Path
import numpy as np
full, small = map(Path, sys.argv[1:])
names = "airplane automobile bird cat deer dog frog horse ship truck".split()
arrays = np.load("../shared/data/cifar10_32_jpeg.npz")
for root, share in ((full, 1), (small, 10)):
    if (root / ".complete").exists():
        continue
    for split, folder in (("train", "train"), ("test", "val")):
        blob, offsets, labels = (arrays[f"jpeg_{split}"], arrays[f"offsets_{split}"], arrays[f"y_{split}"])
        for i in range(0, len(labels), share):
            path = root / folder / names[labels[i]] / f"{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob[offsets[i]:offsets[i + 1]].tobytes())
    (root / ".complete").write_text("")
PY
python -m nas.bench.streaming --folder "$FOLDER" --small "$SMALL" --out results/data/streaming
