"""The Python API: the same options as `datawhisperer select`, as keyword arguments."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .select_config import SelectConfig
from .selection import Selection


def select(data: str | os.PathLike | Sequence[dict], *, budget: float | str | Sequence[float | str] = 0.1,
           backend_instance=None, **options) -> Selection:
    """Score every example of `data` (a path, or a list of records) and return a `Selection`.

    `options` are SelectConfig fields (task, model, n_demos, n_queries, layer, out, quiet, ...).
    With `out=DIR` the same files as the CLI are written there.

    >>> selection = select("pool.jsonl", task="math", n_demos=5, n_queries=3)   # doctest: +SKIP
    >>> best = selection.subset(0.05)                                            # doctest: +SKIP
    """
    from .runner import select as run_select

    budgets = [budget] if isinstance(budget, (str, float, int)) else list(budget)
    records = None
    if isinstance(data, (str, os.PathLike)):
        options["data"] = str(data)
    else:
        records = list(data)
    config = SelectConfig(budget=[str(b) for b in budgets], **options)
    return run_select(config, records=records, backend=backend_instance)
