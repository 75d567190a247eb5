#!/usr/bin/env bash
# The supernet-training heuristics on ranking protocol v2 (issue: supernets that rank early).
# Run from the repository root with ../shared beside it; start it once per core: the copies
# share the queue (a lock per run) and every run resumes where it stopped.
#   RUNS=/path/to/runs bash results/ranking/heuristics/run.sh
# The baseline recipe is the supernet default (lr 0.05 is stated, so a changed default cannot
# change the study).
# Protocol v2: NB201 cell, width 8, 1 cell a stage, CIFAR-10 at 16x16, 10,000 training images,
# architectures scored on 10,000 other training images; the committed ground truth (64
# architectures, 2 seeds, 12 epochs stand-alone). Every variant trains 3,900 steps (about
# 2.5 minutes on a core), SPOS, 3 seeds; the FairNAS variant (5 paths a step) trains 780 steps,
# the same number of paths. The last two --combine lines are the combinations of what helped
# the supernet alone after two seeds of every single heuristic (added then; the queue takes
# new variants in, and every run already done stays done).
set -euo pipefail
RUNS=${RUNS:-results/runs/heuristics}
GT=${GT:-results/ranking/groundtruth}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
nas ablate --space nb201 --width 8 --cells 1 --data ../shared/data/cifar10_16.npz \
  --train-subset 10000 --device cpu --val-images 10000 --batch-size 128 --steps 3900 \
  --checkpoint-every 500 --lr 0.05 --method spos \
  --ground-truth "$(realpath "$GT/groundtruth.csv")" --archs "$(realpath "$GT/archs.txt")" --seeds 3 \
  --vary lr=0.025,0.1 --vary bn=batch-stats,running --vary bn_affine=false \
  --vary wd=0.0005 --vary decay_unused=true --vary clip=0 --vary warmup=5 \
  --vary smoothing=0.1 --vary batch=256 --vary sampling=fair,deiso --vary none_weight=0 \
  --combine paths=5,sampling=fair,steps=780 \
  --combine lr=0.1,sampling=deiso \
  --combine lr=0.1,sampling=deiso,decay_unused=true,warmup_epochs=5 \
  --out "$RUNS"
