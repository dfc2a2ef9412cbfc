"""How far each seeded selector's ranking is the same with another seed, from a bench's selection runs.

A stable ranking can still be a useless one (answer length is perfectly stable), so this sits beside the
fine-tuned scores in results.md, never in place of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..reliability import seed_to_seed
from ..rundir import RunDirectory
from ..scoring import aggregate
from .command_configs import BenchMethod, parse_method

TOPS = (20, 40)


def selection_dir(out: Path, method: BenchMethod, seed: int) -> RunDirectory:
    """The selection run a bench method reads: once per seed where the method is seeded."""
    return RunDirectory(out / "selections" / (f"{method.run_name}-s{seed}" if method.seeded else method.run_name))


def method_scores(run: RunDirectory, method: BenchMethod) -> np.ndarray:
    """A finished run's scores for a bench method; the paper's weightings share one run and credit it anew."""
    if method.weighting is not None:
        outcomes = list(run.outcomes().values())
        return aggregate(outcomes, int(run.info()["pool_size"]), method.weighting).scores
    return run.scores()


def seed_agreement(out: Path, methods: list[str], seeds: list[int]) -> list[dict]:
    """Per seeded method with two or more finished runs: mean Spearman and top-k overlap over pairs of seeds,
    with what two random rankings share (k² / N), and each run's own split-half projection."""
    rows = []
    for name in methods:
        method = parse_method(name)
        if not method.seeded:
            continue
        runs = {seed: run for seed in seeds if (run := selection_dir(out, method, seed)).finished()}
        if len(runs) < 2:
            continue
        scores = {seed: method_scores(run, method) for seed, run in runs.items()}
        n = len(next(iter(scores.values())))
        infos = [run.info() for run in runs.values()]
        projected = [(info.get("reliability") or {}).get("projected") for info in infos]
        # a weighting other than the run's own re-credits its episodes: the run's figure is not this ranking's
        own = all(method.weighting in (None, info["config"].get("weighting")) for info in infos)
        row = {"method": name, "seeds": sorted(scores), **seed_to_seed(scores, TOPS),
               "split_half_projected": float(np.mean(projected)) if None not in projected and own else None}
        for k in TOPS:
            row[f"top{k}_chance"] = min(k, n) ** 2 / n
        rows.append(row)
    return rows


def agreement_markdown(rows: list[dict], seconds: dict[str, tuple[float, float | None]]) -> list[str]:
    """results.md's agreement table; `seconds`: method -> (mean selection seconds, STR)."""
    if not rows:
        return []
    head = " | ".join(f"top-{k} shared (chance {rows[0][f'top{k}_chance']:.1f})" for k in TOPS)
    lines = ["", "Seed-to-seed agreement of each seeded selector's ranking (mean over pairs of seeds; the split-half "
             "figure is what each run reports of itself, where it does):", "",
             f"| method | seeds | Spearman between seeds | split-half projected | {head} | selection s | STR |",
             "|---|---|---|---|" + "---|" * len(TOPS) + "---|---|"]
    for r in rows:
        spent, ratio = seconds.get(r["method"], (float("nan"), None))
        projected = "–" if r["split_half_projected"] is None else f"{r['split_half_projected']:.2f}"
        tops = " | ".join(f"{r[f'top{k}']:.1f}" for k in TOPS)
        lines.append(f"| {r['method']} | {','.join(map(str, r['seeds']))} | {r['seed_spearman']:.2f} | {projected} "
                     f"| {tops} | {spent:.0f} | {'–' if ratio is None else f'{ratio:.3f}'} |")
    return lines
