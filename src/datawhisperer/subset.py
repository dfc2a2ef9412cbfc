"""`datawhisperer subset`: pick subsets again from a finished run's scores, with any strategy and budget, and no
model. With the run's own strategy and options it writes exactly the files `select` wrote; it also takes a
scores file of the same shape (`scores.jsonl`: one {"index", "score"} line per pool record) from elsewhere."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .balance import BALANCES, balance_groups, concrete_balance, resolve_balance
from .data import load_table
from .errors import UserError
from .fingerprint import content_hash
from .registry import did_you_mean
from .rundir import RunDirectory
from .select_config import option
from .selection import Selection, budget_count, checked_budgets, parse_budget
from .strategies import STRATEGIES, StrategyOptions


@dataclass
class SubsetConfig:
    run_dir: str | None = option(None, "a finished `select` run (its scores, embeddings and pool)", positional=True,
                                 nargs="?")
    budget: list[str] = option((), "a fraction of the pool in (0, 1] or a number of examples; one or more (required)",
                               repeat=True)
    strategy: str | None = option(None, "top, stratified or diverse (default: the run's)")
    drop: float | None = option(None, "stratified, diverse: the lowest-scored fraction left out first (default: the "
                                "run's)")
    strata: int | None = option(None, "stratified: strata over the kept score range (default: the run's)")
    score_weight: float | None = option(None, "diverse: weight of the scores against coverage (default: the run's)")
    seed: int | None = option(None, "seed of the strategy's draws (default: the run's)")
    balance: str | None = option(None, "keep each group's share: on (labels), answer-length, off, or auto (labels "
                                 "when the answers are labels, else answer-length; default: what the run kept)")
    target_filter: str | None = option(None, "pick only from the records like the --val examples: on, off (default: "
                                       "the run's)")
    task: str | None = option(None, "task preset or file, for the answer field (default: the run's)")
    output_field: str | None = option(None, "field holding the gold answer (default: the run's, else the task's)")
    scores: str | None = option(None, "a scores.jsonl from elsewhere, instead of RUN_DIR's (needs --data)")
    data: str | None = option(None, "the pool the scores are of (default: the run's; its content must be unchanged)")
    embeddings: str | None = option(None, "an embeddings.npz (pool, targets) for diverse, instead of RUN_DIR's")
    out: str | None = option(None, "directory for selected-<B>.<ext> and subset.json (default: "
                             "RUN_DIR/subset-<strategy>)")
    overwrite: bool = option(False, "replace the subsets already in --out")
    quiet: bool = option(False, "no summary")

    def __post_init__(self) -> None:
        self.budget = checked_budgets(self.budget)
        if self.run_dir is None and self.scores is None:
            raise UserError("give a run directory, or --scores FILE with --data POOL")
        if self.strategy is not None:
            STRATEGIES.get(self.strategy)
        if self.target_filter not in (None, "on", "off"):
            raise UserError(f"target-filter must be on or off, not {self.target_filter!r}")


def _read_scores(path: Path) -> np.ndarray:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        values = {int(row["index"]): (math.nan if row["score"] is None else float(row["score"])) for row in rows}
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{path}: each line must be a JSON object with an 'index' and a numeric (or null) "
                        "'score'") from None
    if sorted(values) != list(range(len(values))):
        raise UserError(f"{path}: the indices must be 0..N-1, each once")
    return np.array([values[i] for i in range(len(values))])


def _read_embeddings(path: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An .npy of the pool's embeddings, or an .npz with `pool` (and `targets`) as `select` writes it."""
    source = Path(path)
    if not source.exists():
        raise UserError(f"--embeddings {path} does not exist")
    try:
        if source.suffix == ".npy":
            return np.load(source).astype(np.float32), None
        with np.load(source) as data:
            return data["pool"], (data["targets"] if "targets" in data.files else None)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path} is not an embeddings file (.npy, or .npz with a 'pool' array): {exc}") from None


def _inputs(config: SubsetConfig) -> tuple[Selection, dict]:
    run = RunDirectory(config.run_dir) if config.run_dir else None
    info = run.info() if run else {}
    if run and info.get("status") != "finished":
        raise UserError(f"{run.path} holds no finished run")
    saved = info.get("config", {})
    data = config.data or saved.get("data")
    if not data:
        raise UserError("give --data: the pool the scores are of")
    table = load_table(data)  # a missing or unreadable file is a one-line error here
    if run and config.data and content_hash(config.data) != info.get("fingerprint", {}).get("data"):
        raise UserError(f"--data {config.data} is not the pool the run in {run.path} scored")
    scores = _read_scores(Path(config.scores)) if config.scores else run.scores()
    if len(scores) != len(table):
        raise UserError(f"{len(scores)} scores for a pool of {len(table)} records")
    pool, targets = _read_embeddings(config.embeddings) if config.embeddings else \
        (run.embeddings() if run else (None, None))
    if pool is not None and len(pool) != len(table):
        raise UserError(f"{len(pool)} embeddings for a pool of {len(table)} records")
    defaults = StrategyOptions()

    def pick(name: str, fallback):
        value = getattr(config, name)
        return value if value is not None else saved.get(name, fallback)

    strategy = pick("strategy", "top")
    target_filter = pick("target_filter", "off")  # runs made before the filter existed had none
    options = StrategyOptions(pick("drop", defaults.drop), pick("strata", defaults.strata),
                              pick("score_weight", defaults.score_weight), target_filter == "on")
    balance = pick("balance", "auto")
    if balance not in BALANCES:
        raise UserError(f"balance must be one of {', '.join(BALANCES)}, not {balance!r}{did_you_mean(balance, BALANCES)}")
    answers = _answers(table.records, pick("task", "instruction"), pick("output_field", None),
                       saved.get("input_field")) if balance != "off" else []
    if config.balance is None and run:  # the run's own groups, also for a run saved before auto meant lengths
        balance = concrete_balance(answers, balance, saved_before_length_auto="balanced_by" not in info)
    groups = balance_groups(answers, balance)
    selection = Selection(table, scores, np.zeros(len(scores), dtype=np.int64), {}, pool, targets, strategy,
                          options, pick("seed", 0), groups)
    settings = {"strategy": strategy, "drop": options.drop, "strata": options.strata,
                "score_weight": options.score_weight, "seed": selection.seed, "balance": balance,
                "target_filter": target_filter,
                "balanced_by": resolve_balance(answers, balance),
                "balanced_groups": None if groups is None else int(groups.max() + 1)}
    return selection, settings


def _answers(records: list[dict], task: str, output_field: str | None, input_field: str | None) -> list[str]:
    from .tasks import FieldMap, examples_from_records, load_task

    fields = FieldMap(input_field, output_field).with_task_defaults(load_task(task))
    return [e.answer for e in examples_from_records(records, fields)]


def subset(config: SubsetConfig) -> list[Path]:
    selection, settings = _inputs(config)
    if config.out is None and config.run_dir is None:
        raise UserError("give --out for the subsets")
    out = RunDirectory(config.out or Path(config.run_dir) / f"subset-{settings['strategy']}")
    chosen = {b: selection.chosen(b) for b in config.budget}  # a budget that cannot be met fails before any write
    written = out.write_subsets(selection, config.budget, {"source": str(config.scores or config.run_dir),
                                                           **settings, "budgets": {
                                                               b: len(c) for b, c in chosen.items()}},
                                config.overwrite)
    if not config.quiet:
        counts = ", ".join(f"{b}: {budget_count(parse_budget(b), len(selection))}" for b in config.budget)
        print(f"{settings['strategy']} subsets ({counts} examples) written to {out.path}")
    return written
