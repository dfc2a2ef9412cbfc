"""Benchmark results: results.json, a Markdown table (mean ± std over seeds) and PNG charts."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..data import atomic_write_json, atomic_write_text
from ..methods import reference_method
from .agreement import agreement_markdown, seed_agreement

CELL_KEYS = ("method", "budget", "seed", "score", "loss", "selection_seconds", "finetune_seconds",
             "mean_answer_words", "train_tokens", "final_loss", "examples", "steps", "cell_seconds", "composition")
POOL_TOKENS = "pool_tokens.json"  # the full pool's training tokens (bench.py writes it)
PAIRED_REFERENCE = reference_method()  # what every method is paired with: the registry's reference (random)


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _groups(cells: list[dict]) -> list[tuple[tuple[str, float], list[dict]]]:
    """Cells by (method, budget), ordered by budget then method."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for cell in cells:
        groups[(cell["method"], cell["budget"])].append(cell)
    return sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))


def collect(out: Path) -> dict:
    cells = [{k: r.get(k) for k in CELL_KEYS} for r in map(_read, sorted(out.glob("cells/*/result.json")))]
    full = [{k: r.get(k) for k in ("seed", "score", "loss", "finetune_seconds", "mean_answer_words", "train_tokens",
                                   "final_loss")}
            for r in map(_read, sorted(out.glob("full/*/result.json")))]
    zero = out / "zero_shot" / "result.json"
    zero_shot = {k: v for k, v in _read(zero).items() if k in ("score", "loss", "mean_answer_words")} \
        if zero.exists() else None
    agreement = seed_agreement(out, sorted({c["method"] for c in cells}), sorted({c["seed"] for c in cells}))
    tokens = out / POOL_TOKENS
    pool = _read(tokens) if tokens.exists() else None
    return {"cells": cells, "full": full, "zero_shot": zero_shot, "agreement": agreement, "pool_tokens": pool}


def full_seconds(results: dict) -> tuple[float, bool]:
    """A full-pool fine-tune's seconds: measured (mean over its cells), or else estimated from the subsets' own
    fine-tunes, seconds per training token times the pool's tokens (True: estimated)."""
    measured = _mean_std([f["finetune_seconds"] for f in results["full"]])[0]
    if measured == measured:
        return measured, False
    pool, rates = results.get("pool_tokens"), [c["finetune_seconds"] / c["train_tokens"] for c in results["cells"]
                                                 if c.get("train_tokens") and c.get("finetune_seconds")]
    if not pool or not rates:
        return float("nan"), False
    return float(np.mean(rates)) * pool["train_tokens"], True


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(array):
        return float("nan"), float("nan"), 0
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0, len(array)


def _fmt(values: list[float], digits: int = 2) -> str:
    mean, std, n = _mean_std(values)
    if not n:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({n})" if n > 1 else f"{mean:.{digits}f} (1)"


def summarize(results: dict) -> list[dict]:
    """One row per (method, budget): means, stds, seeds, STR."""
    full, estimated = full_seconds(results)
    rows = []
    for (method, budget), cells in _groups(results["cells"]):
        score, score_std, n = _mean_std([c["score"] for c in cells])
        loss, loss_std, _ = _mean_std([c["loss"] for c in cells])
        selection = _mean_std([c["selection_seconds"] for c in cells])[0]
        rows.append({"method": method, "budget": budget, "seeds": n, "score": score, "score_std": score_std,
                     "loss": loss, "loss_std": loss_std,
                     "mean_answer_words": _mean_std([c["mean_answer_words"] for c in cells])[0],
                     "train_tokens": _mean_std([c.get("train_tokens") for c in cells])[0],
                     "selection_seconds": selection,
                     "str": selection / full if full == full and full else None, "str_estimated": estimated})
    return rows


def _outcome_columns(runs: list[dict]) -> str:
    """score | loss | answer words | train tokens, each as mean ± std over the runs."""
    return " | ".join(_fmt([r.get(key) for r in runs], digits)
                      for key, digits in (("score", 2), ("loss", 4), ("mean_answer_words", 1), ("train_tokens", 0)))


def markdown(results: dict, config: dict) -> str:
    lines = ["# Benchmark results", "",
             f"Pool `{config.get('pool')}` (limit {config.get('pool_limit')}), test `{config.get('test')}` "
             f"(loss on all records, score on the first {config.get('generate_limit') or 'all'}), task "
             f"`{config.get('task')}`; fine-tuning: {config.get('epochs')} epochs, lr {config.get('lr')}, batch "
             f"{config.get('batch_size')}, LoRA r {config.get('lora_r')}. Mean ± std over seeds (number of seeds).",
             "'answer words': mean length of the fine-tuned model's test answers; 'train tokens': tokens fine-tuned "
             "on, all epochs together (how long the selected examples are).",
             "", "| method | budget | score | loss | answer words | train tokens | selection s | STR |",
             "|---|---|---|---|---|---|---|---|"]
    summary = summarize(results)
    str_by_key = {(r["method"], r["budget"]): r["str"] for r in summary}
    for (method, budget), cells in _groups(results["cells"]):
        strv = str_by_key.get((method, budget))
        lines.append(f"| {method} | {budget:g} | {_outcome_columns(cells)} | "
                     f"{_fmt([c['selection_seconds'] for c in cells], 0)} | {'–' if strv is None else f'{strv:.3f}'} |")
    if results["full"]:
        full = results["full"]
        lines.append(f"| full pool | 1 | {_outcome_columns(full)} | fine-tune "
                     f"{_fmt([f['finetune_seconds'] for f in full], 0)} | |")
    if results["zero_shot"]:
        z = results["zero_shot"]
        lines.append(f"| zero-shot | 0 | {z['score']:.2f} | {z['loss']:.4f} | {z.get('mean_answer_words', 0):.1f} | | | |")
    if not results["full"] and summary and summary[0]["str_estimated"]:  # below the table, not inside it
        seconds, _ = full_seconds(results)
        lines += ["", f"STR is estimated: no full-pool fine-tune ran here; at the subsets' own fine-tune speed "
                  f"(seconds per training token) the pool's {results['pool_tokens']['train_tokens']} training tokens "
                  f"take about {seconds:.0f} s."]
    paired = paired_with(results, PAIRED_REFERENCE)
    if paired:
        lines += ["", f"Paired with `{PAIRED_REFERENCE}` (same budget, same seed): mean ± std of the difference over "
                  "the seeds both have, [its 95% confidence interval over those seeds, t distribution]; wins = seeds "
                  "where the method is better (higher score, lower loss).", "",
                  "| method | budget | seeds | score − ref | score wins | loss − ref | loss wins |",
                  "|---|---|---|---|---|---|---|"]
        for row in paired:
            n = row["seeds"]
            lines.append(f"| {row['method']} | {row['budget']:g} | {n} | {_diff(row, 'score_diff', 2)} "
                         f"| {row['score_wins']}/{n} | {_diff(row, 'loss_diff', 4)} | {row['loss_wins']}/{n} |")
    lines += composition_markdown(results, config.get("composition_field"))
    seconds = {}
    for row in summary:  # a selection serves every budget: one figure per method
        seconds.setdefault(row["method"], (row["selection_seconds"], row["str"]))
    lines += agreement_markdown(results.get("agreement", []), seconds)
    return "\n".join(lines) + "\n"


def composition_markdown(results: dict, field: str | None) -> list[str]:
    """Per (method, budget): each value's share of the subsets, mean over seeds (min-max)."""
    with_tally = [c for c in results["cells"] if c.get("composition")]
    if not field or not with_tally:
        return []
    values = sorted({v for c in with_tally for v in c["composition"]})
    lines = ["", f"What the subsets hold of field `{field}`: each value's share, mean over seeds [lowest, highest]:",
             "", "| method | budget | seeds | " + " | ".join(f"`{v}`" for v in values) + " |",
             "|---|---|---|" + "---|" * len(values)]
    for (method, budget), cells in _groups(with_tally):
        shares = {v: [c["composition"].get(v, 0) / sum(c["composition"].values()) for c in cells] for v in values}
        lines.append(f"| {method} | {budget:g} | {len(cells)} | " + " | ".join(
            f"{100 * np.mean(s):.1f}% [{100 * min(s):.0f}, {100 * max(s):.0f}]" for s in shares.values()) + " |")
    return lines


def _diff(row: dict, key: str, digits: int) -> str:
    if row["seeds"] < 2:
        return f"{row[key]:+.{digits}f}"
    low, high = row[key + "_ci95"]
    return f"{row[key]:+.{digits}f} ± {row[key + '_std']:.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # Student t, df 1-10


def t_quantile_975(df: int) -> float:
    """The two-sided 95% quantile of Student's t: the table to 10 degrees of freedom, then the Cornish-Fisher
    expansion around the normal quantile (within 0.002 of the exact value beyond)."""
    if df <= len(T_975):
        return T_975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def interval_95(mean: float, std: float, n: int) -> list[float] | None:
    """The 95% confidence interval of a mean over n seeds (t distribution); None for one seed."""
    if n < 2:
        return None
    half = t_quantile_975(n - 1) * std / np.sqrt(n)
    return [round(mean - half, 6), round(mean + half, 6)]


def paired_with(results: dict, reference: str) -> list[dict]:
    """Each method against `reference` at the same budget and seed: seed-to-seed noise (the fine-tune's
    shuffling and initialisation) is shared, so the difference is far less noisy than the two means."""
    by_key = {(c["method"], c["budget"], c["seed"]): c for c in results["cells"]}
    rows = []
    for (method, budget), cells in _groups(results["cells"]):
        pairs = [(c, by_key[(reference, budget, c["seed"])]) for c in cells
                 if method != reference and (reference, budget, c["seed"]) in by_key]
        if not pairs:
            continue
        row = {"method": method, "budget": budget, "seeds": len(pairs)}
        for key, better in (("score", 1.0), ("loss", -1.0)):  # higher score, lower loss wins
            diffs = [c[key] - r[key] for c, r in pairs]
            row[f"{key}_diff"], row[f"{key}_diff_std"], n = _mean_std(diffs)
            row[f"{key}_diff_ci95"] = interval_95(row[f"{key}_diff"], row[f"{key}_diff_std"], n)
            row[f"{key}_wins"] = sum(better * d > 0 for d in diffs)
        rows.append(row)
    return rows


def charts(results: dict, out: Path) -> list[Path]:
    rows = summarize(results)
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    methods = sorted({r["method"] for r in rows})
    budgets = sorted({r["budget"] for r in rows})
    written = []
    for key, label in (("score", "test score (x100)"), ("loss", "test loss (gold-answer cross-entropy)")):
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(methods)), 4))
        width = 0.8 / len(budgets)
        for b, budget in enumerate(budgets):
            by_method = {r["method"]: r for r in rows if r["budget"] == budget}
            values = [by_method.get(m, {}).get(key, np.nan) for m in methods]
            errors = [by_method.get(m, {}).get(f"{key}_std", 0.0) for m in methods]
            ax.bar(np.arange(len(methods)) + b * width, values, width, yerr=errors, capsize=3, label=f"budget {budget:g}")
        reference = {"score": [f["score"] for f in results["full"]], "loss": [f["loss"] for f in results["full"]]}[key]
        if reference:
            ax.axhline(float(np.mean(reference)), color="black", linestyle="--", label="full pool")
        if results["zero_shot"]:
            ax.axhline(results["zero_shot"][key], color="grey", linestyle=":", label="zero-shot")
        ax.set_xticks(np.arange(len(methods)) + width * (len(budgets) - 1) / 2, methods, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_results(out: Path, config: dict) -> dict:
    results = collect(out)
    payload = {"config": config, **results, "summary": summarize(results),
               f"paired_with_{PAIRED_REFERENCE}": paired_with(results, PAIRED_REFERENCE)}
    atomic_write_json(out / "results.json", payload)
    atomic_write_text(out / "results.md", markdown(results, config))
    charts(results, out / "charts")
    return payload
