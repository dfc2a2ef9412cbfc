"""What each strategy's subsets hold, from a scenario's finished selections alone (no fine-tuning): the share of
swapped records (noisy) or of target-task records (mixed) in the subsets of every selector, strategy and option,
over several strategy seeds. Used to choose the strategies' options before any fine-tune is spent on them.

    python benchmarks/composition.py noisy --budget 0.1
    python benchmarks/composition.py mixed --budget 0.1 --drop 0.3 0.4 --score-weight 0 0.05 0.1
    python benchmarks/composition.py mixed --target-filter   # each strategy within the records like --val's
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from datawhisperer.data import load_table
from datawhisperer.rundir import RunDirectory
from datawhisperer.selection import Selection
from datawhisperer.strategies import StrategyOptions

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = {"noisy": ("swapped", True), "mixed": ("source", "bioinstruct")}  # what is tallied, and which value


def shares(run: RunDirectory, marks: np.ndarray, strategy: str, options: StrategyOptions, budget: str,
           seeds: range) -> float | None:
    pool, targets = run.embeddings()
    if (strategy == "diverse" and pool is None) or (options.target_filter and targets is None):
        return None
    values = []
    for seed in seeds:
        selection = Selection(load_table_cached(run), run.scores(), np.zeros(len(marks)), {}, pool, targets, strategy,
                              options, seed)
        values.append(float(marks[selection.chosen(budget)].mean()))
    return float(np.mean(values))


_TABLES: dict = {}


def load_table_cached(run: RunDirectory):
    data = run.info()["config"]["data"]
    if data not in _TABLES:
        _TABLES[data] = load_table(data)
    return _TABLES[data]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(FIELDS))
    parser.add_argument("--budget", default="0.1")
    parser.add_argument("--drop", type=float, nargs="+", default=[0.2, 0.3, 0.4])
    parser.add_argument("--score-weight", type=float, nargs="+", default=[0.0, 0.05, 0.1])
    parser.add_argument("--seeds", type=int, default=5, help="strategy seeds averaged per selection")
    parser.add_argument("--target-filter", action="store_true", help="pick within the records like the --val "
                        "examples (selections that hold the --val examples' embeddings)")
    args = parser.parse_args(argv)
    base = StrategyOptions(target_filter=args.target_filter)
    field, value = FIELDS[args.scenario]
    out = RESULTS / f"{args.scenario}_smollm2"
    rows = []
    for path in sorted((out / "selections").iterdir()):
        run = RunDirectory(path)
        if not run.finished():
            continue
        records = load_table_cached(run).records
        marks = np.array([r.get(field) == value for r in records], dtype=np.float64)
        row = {"selection": path.name, "top": shares(run, marks, "top", base, args.budget, range(1))}
        for drop in args.drop:
            row[f"stratified d{drop}"] = shares(run, marks, "stratified", replace(base, drop=drop), args.budget,
                                                range(args.seeds))
            for weight in args.score_weight:
                row[f"diverse d{drop} w{weight}"] = shares(run, marks, "diverse", replace(base, drop=drop,
                                                           score_weight=weight), args.budget, range(1))
        rows.append(row)
    keys = list(rows[0]) if rows else []
    print(f"share of records with {field} = {json.dumps(value)} in each subset (budget {args.budget}; pool share "
          f"{marks.mean():.3f})" if rows else "no finished selection yet")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) if isinstance(row[k], str) else ("–" if row[k] is None else
                                                                           f"{row[k]:.3f}") for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
