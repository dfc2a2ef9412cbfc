"""How much of a selector's top-k survives a change of seed, read from a bench's selection runs.

    python benchmarks/selection_overlap.py benchmarks/results/bioinstruct_smollm2/selections
    python benchmarks/selection_overlap.py SELECTIONS --top 20 40

A bench keeps one selection run per method and seed (`datawhisperer-r1-s0`, `nuggets-s2`, ...). For
every method with two or more seeds this prints the mean overlap of the top-k sets between each pair
of seeds, beside what two random k-subsets of the pool share on average (k² / N). A Data Whisperer run
is ranked once per weighting from its episodes.jsonl; any other run from its scores.jsonl.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from datawhisperer.checkpoint import EpisodeLog
from datawhisperer.scoring import WEIGHTINGS, aggregate, ranking

SEEDED_RUN = re.compile(r"^(?P<method>.+)-s(?P<seed>\d+)$")


def rankings(run: Path) -> dict[str, np.ndarray]:
    """Method name → ranking for one finished run; a Data Whisperer run yields one per weighting."""
    scores = [json.loads(line)["score"] for line in (run / "scores.jsonl").read_text().splitlines() if line]
    scores = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    name = SEEDED_RUN.match(run.name).group("method")
    log = run / "episodes.jsonl"
    if not log.exists():
        return {name: ranking(scores)}
    outcomes = [o for o in EpisodeLog(log).read(repair=False) if not o.failed]
    rounds = name.rsplit("-r", 1)[-1]
    return {f"datawhisperer-{w}-r{rounds}": ranking(aggregate(outcomes, len(scores), w).scores)
            for w in sorted(WEIGHTINGS.names())}


def overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    return len(set(a[:k].tolist()) & set(b[:k].tolist()))


def seed_overlaps(selections: Path, tops: list[int]) -> tuple[dict[str, dict[int, list[int]]], int]:
    """Method → k → overlaps over every pair of seeds; and the pool size."""
    by_method: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    pool = 0
    for run in sorted(p for p in selections.iterdir() if p.is_dir() and SEEDED_RUN.match(p.name)):
        run_file = run / "run.json"
        if not (run / "scores.jsonl").exists() or not run_file.exists():
            continue
        if json.loads(run_file.read_text()).get("status", "finished") != "finished":
            continue
        seed = int(SEEDED_RUN.match(run.name).group("seed"))
        for method, order in rankings(run).items():
            by_method[method][seed] = order
            pool = len(order)
    result = {}
    for method, seeds in sorted(by_method.items()):
        if len(seeds) < 2:
            continue
        result[method] = {k: [overlap(seeds[a], seeds[b], k) for a, b in itertools.combinations(sorted(seeds), 2)]
                          for k in tops}
    return result, pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selections", type=Path, help="a bench's selections/ directory")
    parser.add_argument("--top", type=int, nargs="+", default=[20, 40], help="sizes of the top sets (default: 20 40)")
    args = parser.parse_args(argv)
    if not args.selections.is_dir():
        print(f"not a directory: {args.selections}")
        return 1
    overlaps, pool = seed_overlaps(args.selections, args.top)
    if not overlaps:
        print(f"no method with two or more finished seeds under {args.selections}")
        return 1
    print("| method | seed pairs | " + " | ".join(f"top {k}: shared (chance {k * k / pool:.1f})" for k in args.top)
          + " |")
    print("|---|---|" + "---|" * len(args.top))
    for method, per_k in overlaps.items():
        pairs = len(next(iter(per_k.values())))
        cells = " | ".join(f"{np.mean(v):.1f} of {k}" for k, v in per_k.items())
        print(f"| {method} | {pairs} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
