"""Position bias of the Data Whisperer weightings, read from finished selection runs.

    python benchmarks/position_bias.py benchmarks/results/bioinstruct_smollm2/selections
    python benchmarks/position_bias.py RUN_DIR --top 20 40

For each run: the mean attention weight by demonstration slot, and, for each weighting, the share of
the top-k examples' appearances that were in the last slot. Without position bias that share is
1 / n_demos; the paper's weighting, with one round, puts nearly every top pick in the last slot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from datawhisperer.rundir import RunDirectory
from datawhisperer.scoring import WEIGHTINGS, aggregate, ranking, slot_mean_weights


def finished_runs(path: Path) -> list[Path]:
    candidates = [path] if RunDirectory(path).holds_run() else sorted(p for p in path.iterdir() if p.is_dir())
    return [run for run in candidates if RunDirectory(run).finished() and RunDirectory(run).outcomes()]


def last_slot_share(outcomes, picks: np.ndarray) -> float:
    """Of the picks' appearances, the fraction in the last slot of their episode."""
    last, total = 0, 0
    chosen = set(picks.tolist())
    for outcome in outcomes:
        for slot, demo in enumerate(outcome.demos):
            if demo in chosen:
                total += 1
                last += slot == len(outcome.demos) - 1
    return last / total if total else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a selection run directory, or a directory of them")
    parser.add_argument("--top", type=int, nargs="+", default=[20, 40], help="sizes of the top sets (default: 20 40)")
    args = parser.parse_args(argv)
    runs = finished_runs(args.path)
    if not runs:
        print(f"no finished Data Whisperer run with episodes.jsonl under {args.path}")
        return 1
    print("| run | episodes | mean weight by slot (first → last) | weighting | "
          + " | ".join(f"top {k}: last-slot share" for k in args.top) + " |")
    print("|---|---|---|---|" + "---|" * len(args.top))
    for run in runs:
        outcomes = [o for o in RunDirectory(run).outcomes().values() if not o.failed]
        n_pool = max(max(o.demos + o.queries) for o in outcomes) + 1
        slots = slot_mean_weights(outcomes)
        widest = max(n for n, _ in slots)
        profile = ", ".join(f"{slots[(widest, s)]:.3f}" for s in range(widest))
        for weighting in sorted(WEIGHTINGS.names()):
            order = ranking(aggregate(outcomes, n_pool, weighting).scores)
            shares = " | ".join(f"{last_slot_share(outcomes, order[:k]):.2f}" for k in args.top)
            print(f"| {run.name} | {len(outcomes)} | {profile} | {weighting} | {shares} |")
    print(f"\nWithout position bias the last-slot share is 1/n_demos ({1 / widest:.2f} here).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
