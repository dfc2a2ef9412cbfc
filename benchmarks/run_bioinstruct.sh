#!/usr/bin/env bash
# The committed BioInstruct benchmark (issue 5). Resumable: rerun to continue; finished cells are skipped.
# Reads ../shared/data by path; skips cleanly when it is absent.
# Order: the methods issue 5 names over seeds 0-2 first, then the three-round variants and the full pool
# (seed 0 first: the STR denominator); then issue 13's five-seed comparison: the calibrated estimator over
# seeds 0-4, and seeds 3-4 for random and the paper's estimator.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/bioinstruct}
if [ ! -f "$DATA/pool.json" ]; then echo "skipped: $DATA/pool.json is not here"; exit 0; fi
bench() {
  .venv/bin/datawhisperer bench \
    --pool "$DATA/pool.json" --pool-limit 400 --test "$DATA/test.json" --task instruction \
    --out benchmarks/results/bioinstruct_smollm2 \
    --budgets 0.05 --budgets 0.1 \
    --generate-limit 100 --epochs 5 --lr 1e-3 --batch-size 8 --lora-r 16 \
    --n-demos 5 --n-queries 3 --select-max-new-tokens 64 "$@"
}
SEEDS_0_2=(--seeds 0 --seeds 1 --seeds 2)
bench --no-full "${SEEDS_0_2[@]}" \
  --methods random --methods length --methods perplexity --methods ifd --methods grand --methods nuggets \
  --methods datawhisperer-paper --methods datawhisperer-uniform --methods datawhisperer-debiased "$@"
bench "${SEEDS_0_2[@]}" --methods datawhisperer-paper-r3 --methods datawhisperer-debiased-r3 "$@"
bench --no-full --seeds 0 --seeds 1 --seeds 2 --seeds 3 --seeds 4 --methods datawhisperer-calibrated "$@"
bench --no-full --seeds 3 --seeds 4 --methods random --methods datawhisperer-paper "$@"
