"""The Python API: the same options as `datawhisperer select`, as keyword arguments."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .errors import UserError
from .select_config import SelectConfig
from .selection import Selection
from .threads import restores_threads


@restores_threads
def select(data, *, budget: float | str | Sequence[float | str] = 0.1, split: str | None = None,
           backend_instance=None, **options) -> Selection:
    """Score every example of `data` and return a `Selection`.

    `data`: a path (any format `datawhisperer select` reads), a list of dicts, a `datasets.Dataset` (or a
    `DatasetDict` with `split=`), or a `pandas.DataFrame`; `selection.subset(budget)` returns the same type.
    `options` are SelectConfig fields (task, model, n_demos, n_queries, layer, out, quiet, ...).
    With `out=DIR` the same files as the CLI are written there.

    >>> selection = select("pool.jsonl", task="math", n_demos=5, n_queries=3)   # doctest: +SKIP
    >>> best = selection.subset(0.05)                                            # doctest: +SKIP
    """
    from .frames import in_memory, records_of
    from .runner import select as run_select

    budgets = [budget] if isinstance(budget, (str, float, int)) else list(budget)
    records, source = None, None
    if isinstance(data, (str, os.PathLike)):
        if split is not None:
            raise UserError("split= names a split of an in-memory DatasetDict; a path is read as it is")
        options["data"] = str(data)
    else:
        source = in_memory(data, split)
        records = records_of(source)
    config = SelectConfig(budget=[str(b) for b in budgets], **options)
    selection = run_select(config, records=records, backend=backend_instance)
    if selection is not None:
        selection.source = source
    return selection
