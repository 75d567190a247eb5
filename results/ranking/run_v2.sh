#!/usr/bin/env bash
# Ranking protocol v2 (issue: rankings worth trusting). Run from the repository root with
# ../shared beside it; every step resumes where it stopped when re-run.
#   RUNS=/path/to/runs METHODS="spos pada-code alphanet" SEEDS="0 1 2" bash results/ranking/run_v2.sh
# What changed from v1 (run.sh): the ground truth is committed (results/ranking/groundtruth/,
# made by the first step below, which only resumes it); supernets train on the whole 10,000-image
# subset and score architectures on 10,000 other training images (--val-images); every run keeps
# 6 snapshots, so one run gives the whole ranking-versus-budget curve; the training-free proxies
# are scored on the same architectures; BatchNorm scores with batch statistics, as the NB201
# supernets of PA&DA, Few-Shot and GM-NAS do.
set -euo pipefail
RUNS=${RUNS:-results/runs/ranking-v2}
GT=${GT:-results/ranking/groundtruth}
DATA=${DATA:-../shared/data/cifar10_16.npz}
EPOCHS=${EPOCHS:-150}
METHODS=${METHODS:-spos pada-code alphanet}
SEEDS=${SEEDS:-0 1 2}
SKELETON=(--space nb201 --width 8 --cells 1 --data "$DATA" --train-subset 10000 --device cpu)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# Ground truth: 64 architectures x 2 seeds, 12 epochs stand-alone (~2 CPU-hours whole). It is
# committed complete; the command below only runs (and resumes it) when rows are missing. Its
# config.json records the data file's absolute path, so resume it from a checkout that sees
# ../shared where the first one did (/work/shared), or regenerate it with another --out.
[[ -f $GT/groundtruth.csv && $(wc -l < "$GT/groundtruth.csv") -gt 128 ]] ||
  nas groundtruth "${SKELETON[@]}" --checkpoint-every 0 --epochs 12 --sample 64 --seeds 2 --out "$GT"

# Training-free proxies on the same architectures, 3 initialisation seeds.
nas correlate --proxy params,flops,synflow,naswot,grad_norm,snip "${SKELETON[@]}" \
  --ground-truth "$GT/groundtruth.csv" --archs "$GT/archs.txt" --proxy-seeds 0,1,2 \
  --out "$RUNS" --overwrite

source "$(dirname "$0")/method_options.sh"
for seed in $SEEDS; do
  for name in $METHODS; do
    method=${name%-code}
    # shellcheck disable=SC2086
    nas supernet "${SKELETON[@]}" --val-images 10000 --batch-size 128 --epochs "$EPOCHS" \
      --checkpoint-every 500 --keep-checkpoints 6 --seed "$seed" --method "$method" \
      --method-opt bn_mode=batch-stats ${OPTIONS[$name]} --out "$RUNS/$name-seed$seed"
  done
done

# Kendall tau against steps and wall seconds, every method, proxies and noise ceiling as lines.
runs=()
for name in $METHODS; do for seed in $SEEDS; do runs+=("$RUNS/$name-seed$seed"); done; done
nas correlate "${runs[@]}" --budget --ground-truth "$GT/groundtruth.csv" --archs "$GT/archs.txt" \
  --references "$RUNS" --device cpu --out results/ranking/v2
