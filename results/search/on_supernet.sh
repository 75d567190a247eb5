#!/usr/bin/env bash
# Does a better searcher find a better stand-alone architecture on a trained supernet, or is the
# supernet's ranking the limit? A protocol-v2 supernet (results/ranking/v2: NB201 cell, C=8,
# N=1, CIFAR-10 at 16 px; by default PA&DA (the official code's variant), seed 0, 11,700 steps,
# Kendall tau 0.51 against the stand-alone ground truth) is searched by each searcher for
# TRIALS trials; each found architecture is then trained stand-alone exactly as the ground truth
# was (12 epochs, same subset, seed 0) and tested.
# Run from the repository root with ../shared beside it; every step resumes.
#   SUPERNET=results/runs/ranking-v2/pada-code-seed0 bash results/search/on_supernet.sh
set -euo pipefail
SUPERNET=${SUPERNET:-results/runs/ranking-v2/pada-code-seed0}
RUNS=${RUNS:-results/runs/search-v2}
TRIALS=${TRIALS:-100}
SEEDS=${SEEDS:-0}
SEARCHERS=${SEARCHERS:-random evolution tpe epnas}
OUT=${OUT:-results/search/on_supernet.csv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SKELETON=(--space nb201 --width 8 --cells 1 --data ../shared/data/cifar10_16.npz --train-subset 10000 --device cpu)
mkdir -p "$RUNS"
[[ -f $OUT ]] || echo "searcher,seed,trials,arch,supernet_score,standalone_test_accuracy" > "$OUT"
for seed in $SEEDS; do
  for searcher in $SEARCHERS; do
    grep -q "^$searcher,$seed,$TRIALS," "$OUT" && continue
    search="$RUNS/$searcher-seed$seed-t$TRIALS"
    nas search --supernet "$SUPERNET" --searcher "$searcher" --trials "$TRIALS" --seed "$seed" \
      --device cpu --out "$search"
    arch=$(cat "$search/best.txt")
    score=$(python -c "import pandas as p,sys; t=p.read_csv(sys.argv[1]); print(t[t.arch==sys.argv[2]].val_accuracy.iloc[0])" "$search/trials.csv" "$arch")
    trained="$RUNS/train-$(echo -n "$arch" | sha1sum | cut -c1-12)"
    [[ -f $trained/metrics.json ]] || nas train "${SKELETON[@]}" --epochs 12 --checkpoint-every 0 \
      --seed 0 --arch "$arch" --out "$trained"
    accuracy=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['test_accuracy'])" "$trained/metrics.json")
    echo "$searcher,$seed,$TRIALS,\"$arch\",$score,$accuracy" >> "$OUT"
  done
done
