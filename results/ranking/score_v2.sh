#!/usr/bin/env bash
# Protocol v2 scored by every part a combination may use (issue: scorers that beat their parts).
# Each supernet run, once trained, is scored on the ground truth's 64 architectures by one
# combination of all parts: correlation.csv then holds every part's raw score and its quantile
# among the run's reference sample (reference.csv), from which scorers.py forms every scorer
# and combination offline, exactly as `nas search` would compute them. Run from the repository
# root; runs already scored are skipped, runs not yet trained are waited for.
#   RUNS=results/runs/ranking-v2 NAMES="spos-s5200 spos-s2600 spos" bash results/ranking/score_v2.sh
set -euo pipefail
RUNS=${RUNS:-results/runs/ranking-v2}
GT=${GT:-results/ranking/groundtruth}
NAMES=${NAMES:-spos-s5200 spos-s2600 spos}
SEEDS=${SEEDS:-0 1 2}
ALL=supernet+naswot+params+synflow+jacov+zico+meco+az_expressivity+az_progressivity+az_trainability+flops
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for name in $NAMES; do
  for seed in $SEEDS; do
    run=$RUNS/$name-seed$seed
    ls "$run"/correlation-groundtruth-accuracy-"$ALL"/correlation.json >/dev/null 2>&1 && continue
    until [[ -f $run/supernet.pt ]] && ! pgrep -f "out $run\$" >/dev/null; do sleep 30; done
    /usr/bin/time -f "$run scored in %e s" nas correlate "$run" --ground-truth "$GT/groundtruth.csv" \
      --archs "$GT/archs.txt" --scorer "$ALL" --device cpu --overwrite
  done
done
