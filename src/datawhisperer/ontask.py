"""The target filter: with --val, which pool records belong to the task the --val examples are of.

A record is on-task when it is as like the --val examples as they are like each other: its similarity to them
(the mean cosine similarity to its NEIGHBOURS nearest --val examples, embeddings centred on the pool's mean)
is at least the QUANTILE-quantile of the same figure for each --val example against the other --val examples.
On a pool of the target task alone about 1 - QUANTILE of the records pass; a record of another task falls
below. Every strategy then picks from the on-task records only (strategies.pick).
"""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .vectors import embedded_rows, unit

NEIGHBOURS = 3
QUANTILE = 0.05  # the least target-like twentieth of the --val examples marks the edge of the task
MIN_TARGETS = 4  # fewer --val examples than this give no spread to measure the edge by: nothing is filtered


def resolve(setting: str, has_val: bool, method) -> str:
    """'on' or 'off' from --target-filter: auto is on with --val for a method that loads the model anyway, except
    the reference method (random), which must stay a plain draw to be measured against."""
    if setting == "on" and not has_val:
        raise UserError("--target-filter on keeps the records like the --val examples: give --val FILE")
    if setting == "auto":
        return "on" if has_val and method.needs_model and not method.reference else "off"
    return setting


def _nearest_mean(similarity: np.ndarray, k: int) -> np.ndarray:
    return np.sort(similarity, axis=1)[:, -k:].mean(axis=1)


def similarity_to_targets(embeddings: np.ndarray, targets: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, float]:
    """Each record's similarity to the targets (NaN where it has no embedding), and the edge of the task: the
    QUANTILE of the targets' own similarity to the other targets. `targets`: rows that hold an embedding."""
    unit_targets = unit(targets - centre)
    k = min(NEIGHBOURS, len(targets) - 1)
    among = unit_targets @ unit_targets.T
    np.fill_diagonal(among, -np.inf)  # a target is not its own neighbour
    edge = float(np.quantile(_nearest_mean(among, k), QUANTILE))
    similarity = np.full(len(embeddings), np.nan)
    has = ~np.isnan(embeddings).any(axis=1)
    similarity[has] = _nearest_mean(unit(embeddings[has] - centre) @ unit_targets.T, k)
    return similarity, edge


def on_task(embeddings: np.ndarray | None, targets: np.ndarray | None, needed: int) -> np.ndarray | None:
    """Indices of the on-task records, at least `needed` of them (when fewer pass, the most target-like fill
    up, and those with no embedding last); None when there is nothing to decide by (no embeddings, fewer than
    MIN_TARGETS --val examples)."""
    targets = None if targets is None else embedded_rows(targets)
    if embeddings is None or targets is None or len(targets) < MIN_TARGETS:
        return None
    similarity, edge = similarity_to_targets(embeddings, targets, np.nanmean(embeddings, axis=0))
    kept = np.flatnonzero(similarity >= edge)
    if len(kept) < needed:
        order = np.argsort(-np.nan_to_num(similarity, nan=-np.inf), kind="stable")
        kept = np.sort(order[:needed])
    return kept


def summary(embeddings: np.ndarray | None, targets: np.ndarray | None, needed: dict[str, int]) -> dict | None:
    """What run.json says of the filter: how many records passed, of how many, and the budgets (to their
    records needed) that had to fill up with records that did not pass."""
    kept = on_task(embeddings, targets, 0)
    if kept is None:
        return None
    filled = {budget: n - len(kept) for budget, n in needed.items() if n > len(kept)}
    return {"on_task": int(len(kept)), "pool": int(len(embeddings)),
            "targets": len(embedded_rows(targets)), **({"filled_up": filled} if filled else {})}
