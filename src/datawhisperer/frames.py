"""Pools held in memory: a `datasets.Dataset` (or one split of a `DatasetDict`), a `pandas.DataFrame`, or a list
of dicts. Each becomes plain records for the run, and a subset comes back as the type it was given."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .errors import UserError


def _kind(data) -> str:
    module = type(data).__module__.split(".")[0]
    name = type(data).__name__
    if module == "datasets" and name in ("Dataset", "DatasetDict"):
        return name
    if module == "pandas" and name == "DataFrame":
        return name
    return "records"


def in_memory(data, split: str | None = None):
    """The pool the caller holds, with a DatasetDict narrowed to one split (named, or its only one)."""
    if _kind(data) != "DatasetDict":
        if split is not None:
            raise UserError("split names a split of a DatasetDict; this pool is a single table")
        return data
    if split is None:
        if len(data) != 1:
            raise UserError(f"this DatasetDict holds the splits {', '.join(data)}: pass split=NAME")
        split = next(iter(data))
    if split not in data:
        raise UserError(f"this DatasetDict has no split {split!r} (it has: {', '.join(data)})")
    return data[split]


def records_of(data) -> list[dict]:
    kind = _kind(data)
    if kind == "Dataset":
        return data.to_list()
    if kind == "DataFrame":
        return json.loads(data.to_json(orient="records", force_ascii=False))  # plain JSON values, NaN as null
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Sequence):
        raise UserError(f"a pool is a path, a list of dicts, a datasets.Dataset or a pandas.DataFrame, not a "
                        f"{type(data).__name__}")
    return list(data)


def subset_of(data, indices: list[int]):
    """The chosen rows in the caller's own type (rows of a Dataset or DataFrame, in the given order)."""
    kind = _kind(data)
    if kind == "Dataset":
        return data.select(indices)
    if kind == "DataFrame":
        return data.iloc[indices]
    return [data[i] for i in indices]
