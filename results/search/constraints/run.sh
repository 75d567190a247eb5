#!/usr/bin/env bash
# Constrained search (--constraint flops<=LIMIT) against unconstrained search then --pick, on the
# NAS-Bench-201 table as oracle (cifar10_test): each searcher, 100 queries, 10 seeds, at the
# FLOPs limit that keeps about a fifth of the 15,625 cells (the table's 20th percentile).
# Run from the repository root with ../shared beside it; every run is cached in runs/ and a
# re-run resumes. A few minutes on one core.
#   bash results/search/constraints/run.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m nas.reports.constrained_search --out results/search/constraints \
  --seeds "${SEEDS:-10}" --queries "${QUERIES:-100}" --quantile "${QUANTILE:-0.2}"
