"""The result of a run: scores for every pool example, and subsets of any budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Table
from .errors import UserError
from .scoring import ranking


def parse_budget(raw: str | float) -> float:
    """A fraction in (0, 1], written as 0.05 or 5%."""
    try:
        text = str(raw).strip()
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except (TypeError, ValueError):
        raise UserError(f"budget {raw!r} is not a number") from None
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise UserError(f"budget {raw!r} is outside (0, 1]")
    return value


def budget_count(budget: float, pool_size: int) -> int:
    """floor(budget x N), at least one example (the epsilon keeps 0.29 x 100 at 29, not 28.999...)."""
    return max(1, math.floor(budget * pool_size + 1e-9))


@dataclass
class Selection:
    table: Table
    scores: np.ndarray  # float64, NaN where no finished episode scored the example
    appearances: np.ndarray
    info: dict = field(default_factory=dict)  # what run.json holds

    def __len__(self) -> int:
        return len(self.scores)

    def ranking(self) -> np.ndarray:
        """Pool indices from best to worst (unscored last, ties in input order)."""
        return ranking(self.scores)

    def top_indices(self, budget: float | str) -> list[int]:
        """The floor(budget x N) best indices (at least one), best first."""
        return self.ranking()[: budget_count(parse_budget(budget), len(self))].tolist()

    def subset(self, budget: float | str) -> list[dict]:
        """The selected records themselves, best first."""
        return [self.table.records[i] for i in self.top_indices(budget)]

    def score_rows(self) -> list[dict]:
        return [{"index": i, "score": None if math.isnan(s) else float(s), "appearances": int(a)}
                for i, (s, a) in enumerate(zip(self.scores, self.appearances))]

    def save(self, out: str | Path, budgets: list[str]) -> list[Path]:
        """scores.jsonl and selected-<budget>.<ext> in `out` (the run directory writes them)."""
        from .rundir import RunDirectory

        return RunDirectory(out).write_selection(self, budgets)

    def unscored(self) -> int:
        return int(np.isnan(self.scores).sum())
