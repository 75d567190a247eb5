#!/usr/bin/env bash
# The ranking report's protocol (issue: ranking correlation). Run from the repository root;
# every step resumes where it stopped when re-run. RUNS holds the (large) run directories.
#   RUNS=/path/to/runs [GT=/path/to/groundtruth-run] bash results/ranking/run.sh
# Ground truth and supernets are independent: SKIP_GROUNDTRUTH=1 trains the supernets alone.
set -euo pipefail
RUNS=${RUNS:-results/runs/ranking}
GT=${GT:-$RUNS/groundtruth}
DATA=${DATA:-../shared/data/cifar10_16.npz}
EPOCHS=${EPOCHS:-30}
COMMON=(--space nb201 --width 8 --cells 1 --data "$DATA" --train-subset 10000 --device cpu
        --checkpoint-every 0)

# Ground truth: 64 architectures, 2 seeds each, trained stand-alone (12 epochs, NB201's short schedule).
[[ -n ${SKIP_GROUNDTRUTH:-} ]] || nas groundtruth "${COMMON[@]}" --epochs 12 --sample 64 --seeds 2 --out "$GT"

# Supernets: every method at the same number of optimiser steps (same data, batch and epochs),
# 3 seeds each. PA&DA twice: the paper's version (default) and the official code's.
source "$(dirname "$0")/method_options.sh"
for seed in 0 1 2; do
  for name in spos pada pada-code fewshot gmnas alphanet; do
    method=${name%-code}
    # shellcheck disable=SC2086
    nas supernet "${COMMON[@]}" --epochs "$EPOCHS" --lr 0.05 --seed "$seed" --method "$method" \
      ${OPTIONS[$name]} --out "$RUNS/$name-seed$seed"
  done
done

[[ -f "$GT/groundtruth.csv" && $(wc -l < "$GT/groundtruth.csv") -gt 128 ]] || {
  echo "ground truth in $GT is not complete yet; re-run without SKIP_GROUNDTRUTH"; exit 0; }

# Correlation of each supernet with the ground truth, on the ground truth's architectures.
for name in spos pada pada-code fewshot gmnas alphanet; do
  nas correlate "$RUNS/$name"-seed{0,1,2} --ground-truth "$GT/groundtruth.csv" \
    --archs "$GT/archs.txt" --device cpu --out "$RUNS/correlate-$name" --overwrite
done

# The methods side by side: results/ranking/{report.md,methods.csv,runs.csv,kendall_tau.png,scatter.png}.
python -m nas.reports.ranking_report --runs "$RUNS" --ground-truth "$GT/groundtruth.csv" \
  --out results/ranking --methods spos,pada,pada-code,fewshot,gmnas,alphanet --seeds 0,1,2
