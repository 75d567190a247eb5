#!/usr/bin/env bash
# Ranking protocol v2 (issue: rankings worth trusting). Run from the repository root with
# ../shared beside it; every step resumes where it stopped when re-run.
#   RUNS=/path/to/runs METHODS="spos pada-code alphanet-time" SEEDS="0 1 2" bash results/ranking/run_v2.sh
# The protocol's supernets train at lr 0.05 (stated, as the default may change; an OPTIONS entry may
# give another, e.g. --lr 0.1). Start it once per core: each copy takes the next run no other
# copy holds (a lock per run, freed when its holder dies), trains it, then scores its snapshots
# into results/ranking/v2/budget.csv, where the rows of every other run (earlier sessions'
# included) are kept.
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
METHODS=${METHODS:-spos pada-code alphanet-time}
OUT=${OUT:-results/ranking/v2}
SEEDS=${SEEDS:-0 1 2}
SKELETON=(--space nb201 --width 8 --cells 1 --data "$DATA" --train-subset 10000 --device cpu)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# Ground truth: 64 architectures x 2 seeds, 12 epochs stand-alone (~2 CPU-hours whole). It is
# committed complete; the command below only runs (and resumes it) when rows are missing. Its
# config.json records the data file's absolute path, so resume it from a checkout that sees
# ../shared where the first one did (/work/shared), or regenerate it with another --out.
[[ -f $GT/groundtruth.csv && $(wc -l < "$GT/groundtruth.csv") -gt 128 ]] ||
  nas groundtruth "${SKELETON[@]}" --checkpoint-every 0 --epochs 12 --sample 64 --seeds 2 --out "$GT"

LOCKS=$RUNS/.locks
mkdir -p "$LOCKS"

# Training-free proxies on the same architectures, 3 initialisation seeds (about a minute).
flock "$LOCKS/proxies" bash -c 'runs=$0 gt=$1; shift
  ls "$runs"/proxy-snip-seed2/correlation-*/correlation.json >/dev/null 2>&1 ||
  nas correlate --proxy params,flops,synflow,naswot,grad_norm,snip "$@" \
    --ground-truth "$gt/groundtruth.csv" --archs "$gt/archs.txt" --proxy-seeds 0,1,2 \
    --out "$runs" --overwrite' "$RUNS" "$GT" "${SKELETON[@]}"

source "$(dirname "$0")/method_options.sh"
for seed in $SEEDS; do
  for name in $METHODS; do
    [[ -v "OPTIONS[$name]" ]] || { echo "unknown variant $name: add it to method_options.sh" >&2; exit 2; }
    run="$RUNS/$name-seed$seed"
    # Scored already (budget.csv has its rows): nothing to do.
    grep -q ",$run," "$OUT/budget.csv" 2>/dev/null && continue
    # shellcheck disable=SC2086
    flock -n "$LOCKS/$name-seed$seed" bash -c 'run=$0 gt=$1 runs=$2 out=$3; shift 3
      nas supernet "$@" && nas correlate "$run" --budget --ground-truth "$gt/groundtruth.csv" \
        --archs "$gt/archs.txt" --references "$runs" --device cpu --out "$out"' \
      "$run" "$GT" "$RUNS" "$OUT" "${SKELETON[@]}" --val-images 10000 --batch-size 128 \
      --epochs "$EPOCHS" --lr 0.05 --checkpoint-every 500 --keep-checkpoints 6 --seed "$seed" \
      --method "${name%%-*}" --method-opt bn_mode=batch-stats ${OPTIONS[$name]} --out "$run" ||
      echo "skipped $run (another worker holds it, or it failed)"
  done
done
