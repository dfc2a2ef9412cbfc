"""The result of a run: scores for every pool example, and subsets of any budget, picked by a strategy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Table
from .errors import UserError
from .scoring import ranking
from .strategies import STRATEGIES, Candidates, StrategyOptions, pick


def parse_budget(raw: str | float | int) -> float | int:
    """A fraction in (0, 1], written as 0.05 or 5%, or a number of examples: a whole number above 1 (40)."""
    text = str(raw).strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except (TypeError, ValueError):
        raise UserError(f"budget {raw!r} is not a number") from None
    if not text.endswith("%") and value > 1 and value.is_integer() and "e" not in text.lower():
        return int(value)
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise UserError(f"budget {raw!r} is neither a fraction in (0, 1] nor a whole number of examples")
    return value


def checked_budgets(raw: list | tuple) -> list[str]:
    """The --budget values as given, each checked; at least one."""
    budgets = list(raw)
    if not budgets:
        raise UserError("give at least one --budget")
    for value in budgets:
        parse_budget(value)
    return budgets


def budget_count(budget: float | int, pool_size: int) -> int:
    """A count as it is; a fraction: floor(budget x N), at least one example (the epsilon keeps 0.29 x 100 at 29,
    not 28.999...)."""
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 1:
        if budget > pool_size:
            raise UserError(f"budget {budget} is more examples than the pool's {pool_size}")
        return budget
    return max(1, math.floor(budget * pool_size + 1e-9))


@dataclass
class Selection:
    table: Table
    scores: np.ndarray  # float64, NaN where no finished episode scored the example
    appearances: np.ndarray
    info: dict = field(default_factory=dict)  # what run.json holds
    embeddings: np.ndarray | None = None  # [N, dim], NaN rows where an example has none (strategy diverse)
    targets: np.ndarray | None = None  # [M, dim]: the --val examples' embeddings, what `diverse` covers
    strategy: str = "top"
    options: StrategyOptions = field(default_factory=StrategyOptions)
    seed: int = 0  # the strategy's draws (stratified)
    groups: np.ndarray | None = None  # labels whose shares each subset keeps (strategies.label_groups)
    source: object = None  # the in-memory pool the caller passed (a Dataset, a DataFrame, a list), if any
    _picked: dict = field(default_factory=dict, repr=False)  # count -> chosen indices

    def __len__(self) -> int:
        return len(self.scores)

    def ranking(self) -> np.ndarray:
        """Pool indices from best to worst score (unscored last, ties in input order)."""
        return ranking(self.scores)

    def chosen(self, budget: float | int | str) -> list[int]:
        """The indices the strategy picks for a budget, best-scored first (worked out once per count)."""
        count = budget_count(parse_budget(budget), len(self))
        if count not in self._picked:
            candidates = Candidates(self.scores, self.embeddings, self.targets, self.seed, self.groups)
            self._picked[count] = pick(STRATEGIES.get(self.strategy), candidates, count, self.options)
        return list(self._picked[count])

    def unscored_in(self, budget: float | int | str) -> int:
        """How many unscored examples a budget's subset has to hold."""
        return int(np.isnan(self.scores[self.chosen(budget)]).sum())

    def subset(self, budget: float | int | str):
        """The selected records themselves, best-scored first: rows of the Dataset or DataFrame the pool was
        passed as, else a list of dicts."""
        chosen = self.chosen(budget)
        if self.source is not None:
            from .frames import subset_of

            return subset_of(self.source, chosen)
        return [self.table.records[i] for i in chosen]

    def score_rows(self) -> list[dict]:
        return [{"index": i, "score": None if math.isnan(s) else float(s), "appearances": int(a)}
                for i, (s, a) in enumerate(zip(self.scores, self.appearances))]

    def save(self, out: str | Path, budgets: list[str]) -> list[Path]:
        """scores.jsonl and selected-<budget>.<ext> in `out` (the run directory writes them)."""
        from .rundir import RunDirectory

        return RunDirectory(out).write_selection(self, budgets)

    def unscored(self) -> int:
        return int(np.isnan(self.scores).sum())
