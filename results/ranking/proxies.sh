#!/usr/bin/env bash
# Training-free proxies against the NAS-Bench-201 table (issue: rankings worth trusting).
# Run from the repository root with ../shared beside it; every step resumes or is cheap.
#   RUNS=/path/to/runs bash results/ranking/proxies.sh
# PROXY_GROUPS lists the proxy groups to score, each one `nas correlate` call (AZ-NAS's three
# components share one computation per architecture, so they are one group); a group whose
# results exist is skipped, so a re-run resumes group by group.
set -euo pipefail
RUNS=${RUNS:-results/runs/proxies-nb201}
SAMPLE=${SAMPLE:-1000}
DATA=$RUNS/cifar10_32.npz
mkdir -p "$RUNS"

# The table's networks see 32x32 CIFAR-10; the shared copy stores its images as JPEG bytes.
[[ -f $DATA ]] || python - "$DATA" <<'PY'
import io, sys
import numpy as np
from PIL import Image
source = np.load("../shared/data/cifar10_32_jpeg.npz")
def decode(split):
    raw, offsets = source[f"jpeg_{split}"], source[f"offsets_{split}"]
    return np.stack([np.asarray(Image.open(io.BytesIO(raw[a:b].tobytes())).convert("RGB"))
                     for a, b in zip(offsets[:-1], offsets[1:])])
np.savez(sys.argv[1], x_train=decode("train"), y_train=source["y_train"],
         x_test=decode("test"), y_test=source["y_test"])
PY

# A seeded sample of the table's architectures at its own skeleton (C=16, N=5, 32x32), one
# fresh initialisation and one batch (seed 0) per proxy, as the proxies' papers score them.
PROXY_GROUPS=${PROXY_GROUPS:-params,flops,synflow,naswot,grad_norm,snip jacov zico meco az_expressivity,az_progressivity,az_trainability}
for group in $PROXY_GROUPS; do
  last=${group##*,}
  [[ -f $RUNS/proxy-$last-seed0/correlation-nb201-cifar10_test/correlation.json ]] && continue
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nas correlate --proxy "$group" \
    --space nb201 --data "$DATA" --ground-truth ../shared/data/nb201.csv.gz --column cifar10_test \
    --sample "$SAMPLE" --seed 0 --proxy-seeds 0 --device cpu --out "$RUNS" --overwrite
done
