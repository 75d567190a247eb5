#!/usr/bin/env bash
# Gradient-based search on the NB201 ranking protocol (results/ranking/v2): DARTS, DrNAS and
# TangleNAS derive one architecture each; the single-path supernets of protocol v2 are searched
# (TPE, 100 trials); every found architecture trains stand-alone as the ground truth did
# (12 epochs, seeds 0 and 1) unless the ground truth holds it. Start one copy per core; each
# takes the next job no other copy holds and whose inputs exist; re-running resumes.
#   bash results/gradient/run.sh            (from the repository root, ../shared beside it)
set -uo pipefail
RUNS=${RUNS:-results/runs/gradient}
V2=${V2:-results/runs/ranking-v2}
DATA=${DATA:-../shared/data/cifar10_16.npz}
# Budgets: SPOS's 150-epoch wall time in protocol v2 (equal wall-clock cost), and for the
# "-long" variants 1,200 s, 2.4 times it (the papers train 50-100 epochs: 7,800-15,600 steps).
declare -A BUDGET=([darts]=508s [darts2]=508s [drnas]=508s [tangle]=508s
                   [darts-long]=1200s [drnas-long]=1200s [tangle-long]=1200s)
SKELETON=(--space nb201 --width 8 --cells 1 --data "$DATA" --train-subset 10000 --device cpu)
export OMP_NUM_THREADS=1
LOCKS=$RUNS/.locks
mkdir -p "$LOCKS"

# name -> command; a job runs when its output is missing and its input (if any) exists.
declare -A GRADIENT=(
  [darts]="--method darts"
  [darts2]="--method darts --method-opt order=2"
  [drnas]="--method drnas"
  [tangle]="--method tangle"
  [darts-long]="--method darts"
  [drnas-long]="--method drnas"
  [tangle-long]="--method tangle"
)
ORDER="darts drnas tangle darts2 darts-long drnas-long tangle-long"
declare -A SINGLE=([spos]=spos-s40950-seed0 [pada]=pada-code-seed0 [fewshot]=fewshot-paper-seed0)

job() {  # name, done-file, input-file, command...
  local name=$1 done=$2 input=$3; shift 3
  [[ -e $done ]] && return 0
  [[ -z $input || -e $input ]] || return 1
  flock -n "$LOCKS/$name" bash -c '"$@"' _ "$@" || echo "skipped $name (held or failed)"
  return 0
}

train_best() {  # run dir with best.txt, name
  local arch; arch=$(cat "$1/best.txt")
  for seed in 0 1; do
    grep -qF "$arch,$seed," results/ranking/groundtruth/groundtruth.csv && continue
    job "train-$2-$seed" "$RUNS/train-$2-seed$seed/metrics.json" "$1/best.txt" \
      nas train "${SKELETON[@]}" --checkpoint-every 0 --epochs 12 --seed "$seed" --arch "$arch" \
      --out "$RUNS/train-$2-seed$seed"
  done
}

for pass in 1 2 3; do
  for name in $ORDER; do
    # shellcheck disable=SC2086
    job "$name" "$RUNS/$name-seed0/best.txt" "" nas search "${SKELETON[@]}" --val-images 10000 \
      --batch-size 64 --lr 0.025 --epochs 100 --time-budget "${BUDGET[$name]}" ${GRADIENT[$name]} \
      --out "$RUNS/$name-seed0"
  done
  for name in spos pada fewshot; do
    job "search-$name" "$RUNS/search-$name/best.txt" "$V2/${SINGLE[$name]}/supernet.pt" \
      nas search --supernet "$V2/${SINGLE[$name]}" --trials 100 --device cpu \
      --out "$RUNS/search-$name"
  done
  for name in $ORDER; do
    [[ -e $RUNS/$name-seed0/best.txt ]] && train_best "$RUNS/$name-seed0" "$name"
  done
  for name in spos pada fewshot; do
    [[ -e $RUNS/search-$name/best.txt ]] && train_best "$RUNS/search-$name" "$name"
  done
done
