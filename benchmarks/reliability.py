"""How reliable is each estimator's ranking, at what cost? (issue 13; selection only, no fine-tuning)

For each estimator setting and seed, `select` scores the bench's 400-example BioInstruct pool with the
embedded SmolLM2 (each run resumable: rerun to continue). Then, for each setting: seconds per run and the
ratio to the paper's one-round faithful run, the seed-to-seed Spearman and top-20 / top-40 overlap (with
chance), the split-half reliability each run reports and how well it predicted the seed-to-seed figure, the
rank correlation of the scores with the gold answer's length, and, on a copy of the pool in which the
answers of a fifth of the records are swapped among them, the share of swapped records ranked in the bottom 20%.

    python benchmarks/reliability.py run calibrated-p8 --seeds 0 1     # play (resumable)
    python benchmarks/reliability.py cost --records 80                # paper vs calibrated, side by side
    python benchmarks/reliability.py table                            # results.md and results.json
    python benchmarks/reliability.py demo                             # broken demo examples in the bottom 20%

Reads ../shared/data by path and skips cleanly when it is absent; the pool copies it writes are gitignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from datawhisperer.reliability import seed_to_seed, spearman
from datawhisperer.rundir import RunDirectory
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bioinstruct" / "pool.json"
OUT = ROOT / "benchmarks" / "results" / "reliability_smollm2"
PAPER_RUNS = ROOT / "benchmarks" / "results" / "bioinstruct_smollm2" / "selections"  # the bench's own runs
SETTINGS = {  # name -> SelectConfig options (each ranks the pool: strategy top, as when these ran)
    "paper": {"estimator": "paper", "n_demos": 5, "n_queries": 3, "max_new_tokens": 64},
    "calibrated-icl-p8": {"estimator": "calibrated", "panel": 8, "coherence_weight": 0.0},  # the in-context part
    "calibrated-p8": {"estimator": "calibrated", "panel": 8},  # the default until the scenario benchmarks (now 4)
    "calibrated-p4": {"estimator": "calibrated", "panel": 4},
    "calibrated-p16": {"estimator": "calibrated", "panel": 16},
    "nuggets": {"method": "nuggets"},  # a seeded baseline: its split-half (by anchors) against two seeds
    "perplexity": {"method": "perplexity"},  # baselines: for the swapped-answers check (deterministic: one seed)
    "ifd": {"method": "ifd"},
}
DEMO = ROOT / "demo"  # the demo pool: 228 plurals, 45 of them broken (wrong plurals, swapped answers)
N_POOL, SWAPPED_SHARE = 400, 0.2


def pools() -> tuple[Path, Path, list[int]]:
    """The bench's pool (the first 400 records) and a copy with the answers of a fifth swapped among them."""
    records = json.loads(DATA.read_text(encoding="utf-8"))[:N_POOL]
    OUT.mkdir(parents=True, exist_ok=True)
    clean, swapped = OUT / "pool.jsonl", OUT / "pool-swapped.jsonl"
    chosen = sorted(np.random.default_rng(13).choice(N_POOL, int(SWAPPED_SHARE * N_POOL), replace=False).tolist())
    shuffled = [records[i]["output"] for i in np.roll(chosen, 1)]  # each chosen record gets another's answer
    noisy = [dict(r) for r in records]
    for i, output in zip(chosen, shuffled):
        noisy[i]["output"] = output
    for path, rows in ((clean, records), (swapped, noisy)):
        if not path.exists():
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return clean, swapped, chosen


def run(name: str, seed: int, noisy: bool) -> Path:
    clean, swapped, _ = pools()
    out = OUT / "selections" / f"{name}{'-swapped' if noisy else ''}-s{seed}"
    if not RunDirectory(out).finished():
        select(SelectConfig(str(swapped if noisy else clean), out=str(out), task="instruction", seed=seed,
                            resume=RunDirectory(out).holds_run(), device="cpu", budget=["0.05", "0.1"],
                            strategy="top", **SETTINGS[name]))
    return out


def answer_lengths() -> np.ndarray:
    from transformers import AutoTokenizer

    from datawhisperer.models import model_files

    tokenizer = AutoTokenizer.from_pretrained(model_files(None, log=lambda m: None).tokenizer_dir)
    records = [json.loads(line) for line in (OUT / "pool.jsonl").read_text(encoding="utf-8").splitlines()]
    return np.array([len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in records], float)


def runs_of(name: str) -> dict[int, Path]:
    found = {}
    for path in sorted((OUT / "selections").glob(f"{name}-s*")):
        if RunDirectory(path).finished() and not path.name.startswith(f"{name}-swapped-"):
            found[int(path.name.rsplit("-s", 1)[1])] = path
    if name == "paper":  # the bench's committed one-round runs: the same pool, model and settings
        for path in sorted(PAPER_RUNS.glob("datawhisperer-r1-s*")):
            if RunDirectory(path).finished():
                found.setdefault(int(path.name.rsplit("-s", 1)[1]), path)
    return found


def recomputed_reliability(path: Path, info: dict) -> dict:
    """The split-half figure of a run made before runs reported it (the bench's paper runs)."""
    from datawhisperer.estimators import ESTIMATORS
    from datawhisperer.select_config import SelectConfig

    outcomes = list(RunDirectory(path).outcomes().values())
    estimator = ESTIMATORS.get(info["config"].get("estimator", "paper"))
    return estimator.reliability(outcomes, N_POOL, SelectConfig(estimator="paper",
                                                                weighting=info["config"].get("weighting", "paper")))


def summarise(name: str, lengths: np.ndarray, chosen: list[int], baseline_seconds: float) -> dict | None:
    runs = runs_of(name)
    noisy = [p for p in sorted((OUT / "selections").glob(f"{name}-swapped-s*")) if RunDirectory(p).finished()]
    if not runs and not noisy:
        return None
    row = {"setting": name, "seeds": [], "seconds": None, "cost_ratio": None, "seed_spearman": None, "top20": None,
           "top40": None, "predicted": None, "length_spearman": None}
    if runs:
        row.update(_clean_figures(runs, lengths, baseline_seconds))
    if noisy:
        shares = [len(bottom_fifth(RunDirectory(p).scores()) & set(chosen)) / len(chosen) for p in noisy]
        row["swapped_in_bottom20"] = float(np.mean(shares))
    return row


def _clean_figures(runs: dict[int, Path], lengths: np.ndarray, baseline_seconds: float) -> dict:
    scores = {seed: RunDirectory(path).scores() for seed, path in runs.items()}
    infos = {seed: RunDirectory(path).info() for seed, path in runs.items()}
    seconds = [i["selection_seconds"] + i.get("resumed_episode_seconds", 0.0) for i in infos.values()]
    predicted = [(i.get("reliability") or recomputed_reliability(runs[seed], i))["projected"]
                 for seed, i in infos.items()]
    return {
        "seeds": sorted(scores), "seconds": float(np.mean(seconds)),
        "cost_ratio": float(np.mean(seconds)) / baseline_seconds,
        **(seed_to_seed(scores) if len(scores) > 1 else {}),
        "predicted": float(np.mean(predicted)) if predicted and None not in predicted else None,
        "length_spearman": float(np.mean([spearman(s, lengths) for s in scores.values()])),
    }


def table() -> None:
    _, _, chosen = pools()
    lengths = answer_lengths()
    paper = runs_of("paper")
    baseline = float(np.mean([RunDirectory(p).info()["selection_seconds"] for p in paper.values()]))
    rows = [r for name in SETTINGS if (r := summarise(name, lengths, chosen, baseline))]
    chance20, chance40 = 20 * 20 / N_POOL, 40 * 40 / N_POOL
    lines = ["| setting | seeds | seconds | cost vs paper 1-round | seed-to-seed Spearman | split-half projected | "
             f"top-20 overlap (chance {chance20:.0f}) | top-40 overlap (chance {chance40:.0f}) | Spearman with answer "
             "length | swapped records in bottom 20% (chance 20%) |", "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    for r in rows:
        lines.append(f"| {r['setting']} | {','.join(map(str, r['seeds'])) or '–'} | {fmt(r['seconds'], '.0f')} | "
                     f"{fmt(r['cost_ratio'], '.2f')} | {fmt(r['seed_spearman'], '.2f')} | {fmt(r['predicted'], '.2f')} | "
                     f"{fmt(r['top20'], '.1f')} | {fmt(r['top40'], '.1f')} | {fmt(r['length_spearman'], '.2f')} | "
                     f"{fmt(r.get('swapped_in_bottom20'), '.0%')} |")
    (OUT / "results.json").write_text(json.dumps({"baseline_seconds": baseline, "rows": rows}, indent=1) + "\n")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cost(n_records: int) -> None:
    """The paper's one-round run and the calibrated default on the same first records, one after the other on an
    otherwise idle machine: the cost ratio the table's long runs (played side by side, sharing the cores) cannot
    give. Writes cost.json."""
    import time

    clean, _, _ = pools()
    subset = OUT / "pool-cost.jsonl"
    subset.write_text("".join(clean.read_text(encoding="utf-8").splitlines(keepends=True)[:n_records]))
    seconds = {}
    for name in ("paper", "calibrated-p4", "calibrated-p8", "calibrated-p16"):
        out = OUT / "cost" / name
        start = time.perf_counter()
        select(SelectConfig(str(subset), out=str(out), task="instruction", overwrite=True, device="cpu", quiet=True,
                            strategy="top", **SETTINGS[name]))
        seconds[name] = {"selection_seconds": RunDirectory(out).info()["selection_seconds"],
                         "wall_seconds": round(time.perf_counter() - start, 1)}
    ratios = {name: seconds[name]["selection_seconds"] / seconds["paper"]["selection_seconds"] for name in seconds}
    (OUT / "cost.json").write_text(json.dumps({"records": n_records, "seconds": seconds, "ratio_to_paper": ratios},
                                              indent=1) + "\n")
    print(json.dumps(ratios, indent=1))


def bottom_fifth(scores: np.ndarray) -> set[int]:
    """The fifth of the pool ranked last (unscored examples rank last, as in the selection)."""
    keyed = np.where(np.isfinite(scores), scores, -np.inf)
    return set(np.argsort(keyed, kind="mergesort")[: len(scores) // 5].tolist())


def demo() -> None:
    """Noise detection on the demo pool: the share of its 45 broken examples each setting ranks in the bottom
    20% (chance: 20%), seed 0. Writes demo.json."""
    from datawhisperer.demo import broken_share

    pool = DEMO / "plurals.jsonl"
    records = [json.loads(line) for line in pool.read_text(encoding="utf-8").splitlines() if line.strip()]
    shares = {}
    for name in ("paper", "calibrated-p8", "perplexity", "ifd"):
        out = OUT / "demo" / name
        if not RunDirectory(out).finished():
            options = {k: v for k, v in SETTINGS[name].items() if k not in ("n_demos", "n_queries", "max_new_tokens")}
            options["strategy"] = "top"
            select(SelectConfig(str(pool), out=str(out), task=str(DEMO / "plurals.yaml"), device="cpu", quiet=True,
                                resume=RunDirectory(out).holds_run(), **options))
        shares[name] = broken_share(records, bottom_fifth(RunDirectory(out).scores()))
        print(f"{name}: {shares[name]:.1%} of the broken examples in the bottom 20%")
    (OUT / "demo.json").write_text(json.dumps({"broken": sum(r["kind"] != "clean" for r in records),
                                               "in_bottom20": shares}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    play = sub.add_parser("run")
    play.add_argument("setting", choices=sorted(SETTINGS))
    play.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    play.add_argument("--swapped", action="store_true", help="score the copy with a fifth of the answers swapped")
    sub.add_parser("table")
    sub.add_parser("demo")
    measure = sub.add_parser("cost")
    measure.add_argument("--records", type=int, default=80)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} is not here")
        return 0
    if args.command == "table":
        table()
        return 0
    if args.command == "demo":
        demo()
        return 0
    if args.command == "cost":
        cost(args.records)
        return 0
    for seed in args.seeds:
        print(run(args.setting, seed, args.swapped), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
