"""Reliability against cost (issue 13): how the seed-to-seed agreement and the split-half figure grow with the
measurements an estimator spends, from the runs `benchmarks/reliability.py` and the bench already made.

- calibrated: panels of k = 2, 4, 8, 16 queries (rounds 1, 2, 4, 8 of a two-query panel): the runs made with
  a panel of k where there are two seeds of them, else the first k queries of the panel-16 runs (or panel-8).
  A cut panel credits every example exactly as a run with that panel would; the cost of a panel of k is the
  side-by-side measurement in cost.json where it has one, else interpolated (seconds = a + b k, fitted).
- paper: the bench's three-round runs cut after round R (R = 1, 2, 3): round r of a plan does not depend on
  how many rounds follow it, so the cut run is the R-round run; its cost is R times a round's (the bench
  measured 1120 s for three rounds against 403 s for one, seeds 0-2: 2.8).

    python benchmarks/reliability_curve.py        # writes curve.json and curve.md beside results.md
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from reliability import DATA, N_POOL, OUT, PAPER_RUNS, answer_lengths, runs_of, spearman

from datawhisperer.estimators import ESTIMATORS
from datawhisperer.reliability import seed_to_seed
from datawhisperer.rundir import RunDirectory
from datawhisperer.select_config import SelectConfig


def first_queries(outcomes: list, k: int) -> list:
    return [replace(o, queries=o.queries[:k], query_scores=o.query_scores[:k],
                    answer_logprobs=o.answer_logprobs[:k]) for o in outcomes]


def point(scored: dict[int, tuple[np.ndarray, float]], lengths: np.ndarray, **extra) -> dict:
    """Seed-to-seed figures over every pair of seeds, and the mean split-half projection the runs report."""
    return {**extra, "seeds": sorted(scored), **seed_to_seed({seed: s for seed, (s, _) in scored.items()}),
            "predicted": None if any(p is None for _, p in scored.values())
            else float(np.mean([p for _, p in scored.values()])),
            "length_spearman": float(np.mean([spearman(s, lengths) for s, _ in scored.values()]))}


def calibrated_curve(lengths: np.ndarray) -> list[dict]:
    cost = json.loads((OUT / "cost.json").read_text())
    measured = {int(name.rsplit("-p", 1)[1]): v["selection_seconds"] for name, v in cost["seconds"].items()
                if name.startswith("calibrated-p")}
    slope, intercept = np.polyfit(list(measured), list(measured.values()), 1)
    paper_cost = cost["seconds"]["paper"]["selection_seconds"]
    estimator, settings = ESTIMATORS.get("calibrated"), SelectConfig(estimator="calibrated")
    rows = []
    for k in (2, 4, 8, 16):
        source = next((p for p in (k, 16, 8) if p >= k and len(runs_of(f"calibrated-p{p}")) >= 2), None)
        if source is None:
            continue
        scored = {}
        for seed, path in runs_of(f"calibrated-p{source}").items():
            outcomes = first_queries([o for _, o in sorted(RunDirectory(path).outcomes().items())], k)
            scores = estimator.credit(outcomes, N_POOL, settings).scores
            scored[seed] = (scores, estimator.reliability(outcomes, N_POOL, settings)["projected"])
        rows.append(point(scored, lengths, estimator="calibrated", panel=k, from_run=f"calibrated-p{source}",
                          cost_ratio=float(measured.get(k, intercept + slope * k) / paper_cost),
                          cost_measured=k in measured))
    return rows


def paper_curve(lengths: np.ndarray) -> list[dict]:
    estimator, settings = ESTIMATORS.get("paper"), SelectConfig(estimator="paper")
    runs = {int(p.name.rsplit("-s", 1)[1]): p for p in sorted(PAPER_RUNS.glob("datawhisperer-r3-s*"))
            if RunDirectory(p).finished()}
    if len(runs) < 2:
        return []
    rows = []
    for rounds in (1, 2, 3):
        scored = {}
        for seed, path in runs.items():
            outcomes = [o for _, o in sorted(RunDirectory(path).outcomes().items()) if o.round < rounds]
            scored[seed] = (estimator.credit(outcomes, N_POOL, settings).scores,
                            estimator.reliability(outcomes, N_POOL, settings)["projected"])
        rows.append(point(scored, lengths, estimator="paper", rounds=rounds,
                          cost_ratio=float(rounds), cost_measured=False))
    return rows


def main() -> int:
    if not DATA.exists():
        print(f"skipped: {DATA} is not here")
        return 0
    lengths = answer_lengths()
    rows = paper_curve(lengths) + calibrated_curve(lengths)
    lines = ["| estimator | measurements | seeds | cost vs paper 1-round | seed-to-seed Spearman | split-half projected "
             "| top-20 overlap (chance 1) | Spearman with answer length |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = (f"{r['rounds']} round{'s' * (r['rounds'] > 1)}" if "rounds" in r
                else f"panel {r['panel']} (from {r['from_run']})")
        note = " (R rounds play R times the episodes)" if "rounds" in r else " (interpolated)"
        cost = f"{r['cost_ratio']:.2f}" + ("" if r["cost_measured"] else note)
        lines.append(f"| {r['estimator']} | {size} | {','.join(map(str, r['seeds']))} | {cost} | "
                     f"{r['seed_spearman']:.2f} | {'–' if r['predicted'] is None else format(r['predicted'], '.2f')} | {r['top20']:.1f} | {r['length_spearman']:.2f} |")
    (OUT / "curve.json").write_text(json.dumps(rows, indent=1) + "\n")
    (OUT / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
