#!/usr/bin/env bash
# Stand-alone accuracy after E epochs from three starting points, for one architecture and the
# NB201 protocol's data (width 8, 1 cell per stage, CIFAR-10 16 px, 10,000-image subset):
#   scratch           fresh initialisation (the ground truth's training);
#   weight-selection  evenly spaced weights of the same cell trained stand-alone at width 16
#                     (Xu et al., ICLR 2024), the teacher trained 12 epochs on the same data;
#   inherit           the subnet's weights in protocol v2's PA&DA supernet (11,700 steps).
# E = 1, 3, 12 epochs, seeds 0 and 1. Resumable; run from the repository root.
set -uo pipefail
RUNS=${RUNS:-results/runs/gradient/init}
DATA=${DATA:-../shared/data/cifar10_16.npz}
SUPERNET=${SUPERNET:-results/runs/ranking-v2/pada-code-seed0}
# The best of the 64 ground-truth architectures (12-epoch stand-alone mean over 2 seeds).
ARCH=${ARCH:-$(python -c "import pandas as pd; t=pd.read_csv('results/ranking/groundtruth/groundtruth.csv'); print(t.groupby('arch').accuracy.mean().idxmax())")}
DATA_FLAGS=(--space nb201 --cells 1 --data "$DATA" --train-subset 10000 --device cpu --checkpoint-every 0)
export OMP_NUM_THREADS=1
mkdir -p "$RUNS"
echo "$ARCH" > "$RUNS/arch.txt"

[[ -e $RUNS/teacher/metrics.json ]] ||
  nas train "${DATA_FLAGS[@]}" --width 16 --epochs 12 --seed 0 --arch "$ARCH" --out "$RUNS/teacher"

for epochs in 1 3 12; do
  for seed in 0 1; do
    for init in scratch weight-selection inherit; do
      out=$RUNS/$init-e$epochs-seed$seed
      [[ -e $out/metrics.json ]] && continue
      case $init in
        scratch) teacher=() ;;
        weight-selection) teacher=(--teacher "$RUNS/teacher/model.pt2") ;;
        inherit) teacher=(--teacher "$SUPERNET") ;;
      esac
      nas train "${DATA_FLAGS[@]}" --width 8 --epochs "$epochs" --seed "$seed" --arch "$ARCH" \
        --init "$init" "${teacher[@]}" --out "$out"
    done
  done
done
