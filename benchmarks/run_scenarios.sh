#!/usr/bin/env bash
# The three scenario benchmarks of issue 18 (benchmarks/scenarios.py), in the order they were run. Resumable:
# rerun to continue; finished selections and cells are skipped. Reads ../shared/data by path and skips cleanly
# when it is absent. On this 2-core machine they ran as two jobs of one thread each (OMP_NUM_THREADS=1), one
# playing the selections (--select-only) and one the fine-tunes once a cell's selection had finished. With --val
# (mixed) every method but random picks from the records like the --val examples (the target filter); the cells
# named -unfiltered were measured before it existed, picking from the whole pool.
set -euo pipefail
cd "$(dirname "$0")/.."
# The <scenario>_smollm2 directories hold subsets picked without groups (--balance off: measured before `auto`
# meant answer-length fifths for answers that are not labels); the default's cells are in <scenario>_length_smollm2.
run() { .venv/bin/python benchmarks/scenarios.py "$1" --balance off "${@:2}"; }  # the scenario comes first
in_fifths() {  # the same, within the answer-length fifths, into the scenario's _length_smollm2 directory
  .venv/bin/python benchmarks/scenarios.py "$1" --no-full --out benchmarks/results/$1_length_smollm2 \
    --balance answer-length "${@:2}"
}
SELECTORS=(--methods datawhisperer-calibrated-diverse --methods rds --methods datawhisperer-paper)
CELLS=(--methods datawhisperer-calibrated-diverse --methods rds --methods datawhisperer-calibrated
       --methods datawhisperer-calibrated-stratified --methods datawhisperer-paper)
for scenario in noisy mixed; do
  run $scenario --select-only --seeds 0 --seeds 1 --seeds 2 "${SELECTORS[@]}" "$@"
  run $scenario --no-full --seeds 0 --seeds 1 --seeds 2 --seeds 3 --seeds 4 --methods random "$@"
  run $scenario --no-full --seeds 0 --seeds 1 --seeds 2 "${CELLS[@]}" "$@"
  if [ $scenario = mixed ]; then  # what the target filter changed
    run $scenario --no-full --seeds 0 --seeds 1 --methods datawhisperer-calibrated-unfiltered \
      --methods datawhisperer-calibrated-stratified-unfiltered --methods datawhisperer-calibrated-diverse-unfiltered "$@"
  fi
  # five seeds for the default (calibrated, top) and its closest challenger
  run $scenario --no-full --seeds 3 --seeds 4 --methods datawhisperer-calibrated --methods datawhisperer-calibrated-stratified "$@"
  run $scenario --seeds 0 --methods random "$@"  # the full pool (STR's denominator)
done
run selective --select-only --seeds 0 --seeds 1 --seeds 2 "${SELECTORS[@]}" "$@"
run selective --no-full --seeds 0 --seeds 1 --seeds 2 --seeds 3 --seeds 4 --methods random "$@"
run selective --no-full --seeds 0 --seeds 1 --seeds 2 "${CELLS[@]}" "$@"
run selective --no-full --seeds 3 --seeds 4 --methods datawhisperer-calibrated --methods datawhisperer-calibrated-stratified "$@"
run selective --seeds 0 --methods random "$@"
# --balance answer-length (issue 18, later sitting): the calibrated selections above, picked by answer-length fifths, in a
# directory of their own (its protocol differs in balance) that links the selections and copies the zero-shot cell
for scenario in selective noisy mixed; do
  d=benchmarks/results/${scenario}_length_smollm2
  mkdir -p $d && ln -sfn ../${scenario}_smollm2/selections $d/selections && cp -rn benchmarks/results/${scenario}_smollm2/zero_shot $d/
  in_fifths $scenario --seeds 0 --seeds 1 --seeds 2 --seeds 3 --seeds 4 --methods datawhisperer-calibrated "$@"
done
# later sittings: the closest challengers' fourth and fifth seeds (mixed: the paper estimator; selective: rds),
# the paper estimator in selective, and stratified within the answer-length fifths
run mixed --no-full --seeds 3 --seeds 4 --methods datawhisperer-paper "$@"
run selective --no-full --seeds 0 --seeds 1 --seeds 2 --methods datawhisperer-paper "$@"
run selective --no-full --seeds 3 --seeds 4 --methods rds "$@"
for scenario in selective noisy; do
  in_fifths $scenario --seeds 0 --seeds 1 --seeds 2 --methods datawhisperer-calibrated-stratified "$@"
done
in_fifths selective --seeds 3 --budgets 0.04 --methods datawhisperer-calibrated-stratified "$@"
