"""How stable each selector's picks are across seeds, and how long they are, from a bench directory.

    python benchmarks/selection_stability.py benchmarks/results/bioinstruct_smollm2
    python benchmarks/selection_stability.py BENCH_DIR --top 20 40

A bench keeps one selection run per method and seed (`selections/datawhisperer-r1-s0`, `nuggets-s2`,
...). For every method with two or more seeds: the mean overlap of the top-k sets between each pair of
seeds, beside what two random k-subsets of the pool share on average (k² / N). For every method: the
rank correlation of its score with the gold answer's length in words, and the mean answer length of its
top k, beside the pool's. A Data Whisperer run is ranked once per weighting from its episodes.jsonl;
any other run from its scores.jsonl.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from datawhisperer.harness.task_model import load_task_data
from datawhisperer.reliability import spearman
from datawhisperer.rundir import RunDirectory
from datawhisperer.scoring import WEIGHTINGS, aggregate, ranking

RUN_NAME = re.compile(r"^(?P<method>.+?)(-s(?P<seed>\d+))?$")  # unseeded methods select once: `ifd`


def run_scores(run: Path) -> dict[str, np.ndarray]:
    """Method name → scores (NaN = unscored) for one run; a Data Whisperer run yields one per weighting."""
    directory = RunDirectory(run)
    scores = directory.scores()
    name = RUN_NAME.match(run.name).group("method")
    outcomes = [o for o in directory.outcomes().values() if not o.failed]
    if not outcomes:
        return {name: scores}
    rounds = name.rsplit("-r", 1)[-1]
    return {f"datawhisperer-{w}-r{rounds}": aggregate(outcomes, len(scores), w).scores
            for w in sorted(WEIGHTINGS.names())}


def finished_scores(selections: Path) -> dict[str, dict[int, np.ndarray]]:
    """Method → seed → scores, over the finished runs under `selections`."""
    by_method: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for run in sorted(p for p in selections.iterdir() if p.is_dir()):
        if not RunDirectory(run).finished():
            continue
        seed = int(RUN_NAME.match(run.name).group("seed") or 0)
        for method, scores in run_scores(run).items():
            by_method[method][seed] = scores
    return dict(sorted(by_method.items()))


def overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    return len(set(a[:k].tolist()) & set(b[:k].tolist()))


def seed_overlaps(by_method: dict[str, dict[int, np.ndarray]], tops: list[int]) -> dict[str, dict[int, list[int]]]:
    """Method → k → top-k overlaps over every pair of seeds (methods with one seed are left out)."""
    result = {}
    for method, seeds in by_method.items():
        if len(seeds) < 2:
            continue
        orders = {seed: ranking(scores) for seed, scores in seeds.items()}
        result[method] = {k: [overlap(orders[a], orders[b], k) for a, b in itertools.combinations(sorted(orders), 2)]
                          for k in tops}
    return result


def answer_words(bench: Path) -> np.ndarray:
    """Words in each pool example's gold answer, read the way the bench read the pool."""
    settings = json.loads((bench / "protocol.json").read_text())["settings"]
    data = load_task_data(str(bench / "pool.jsonl"), settings["task"], settings.get("input_field"),
                          settings.get("output_field"))
    return np.array([len(example.answer.split()) for example in data.examples], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path, help="a bench directory (with selections/, pool.jsonl, protocol.json)")
    parser.add_argument("--top", type=int, nargs="+", default=[20, 40], help="sizes of the top sets (default: 20 40)")
    args = parser.parse_args(argv)
    selections = args.bench / "selections"
    if not selections.is_dir() or not (args.bench / "protocol.json").exists():
        print(f"not a bench directory (no selections/ or protocol.json): {args.bench}")
        return 1
    by_method = finished_scores(selections)
    if not by_method:
        print(f"no finished selection run under {selections}")
        return 1
    words = answer_words(args.bench)
    overlaps = seed_overlaps(by_method, args.top)
    pool, k = len(words), args.top[0]
    print("| method | seeds | " + " | ".join(f"top {t}: shared between seeds (chance {t * t / pool:.1f})"
                                            for t in args.top)
          + f" | rho(score, answer words) | top {k}: answer words (pool {words.mean():.1f}) |")
    print("|---|---|" + "---|" * len(args.top) + "---|---|")
    for method, seeds in by_method.items():
        shared = " | ".join(f"{np.mean(overlaps[method][t]):.1f} of {t}" if method in overlaps else ""
                            for t in args.top)
        rho = np.mean([spearman(scores, words) for scores in seeds.values()])
        top_words = np.mean([words[ranking(scores)[:k]].mean() for scores in seeds.values()])
        print(f"| {method} | {len(seeds)} | {shared} | {rho:+.2f} | {top_words:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
