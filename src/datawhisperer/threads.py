"""How many CPU threads a command's model uses: --threads, or the cores this process may use shared among the
ranks of this machine. Applied before any model loads, and recorded with the command's results.

Two runs side by side each take every core by default in PyTorch, and its OpenMP threads spin while they
wait, so each runs several times slower than alone; giving each run its share of the cores avoids that."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import UserError

F = TypeVar("F", bound=Callable)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota where one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_threads(local_ranks: int = 1) -> int:
    return max(1, usable_cores() // max(1, local_ranks))


def apply_threads(requested: int | None, local_ranks: int = 1) -> int:
    """Set PyTorch's intra-op threads (before a model loads) and return the number used."""
    if requested is not None and requested < 1:
        raise UserError(f"threads must be at least 1, got {requested}")
    import torch

    threads = requested or default_threads(local_ranks)
    torch.set_num_threads(threads)
    return threads


def restores_threads(function: F) -> F:
    """A library call (`datawhisperer.select(...)`) leaves PyTorch's thread count as it found it: its caller
    may train or serve in the same process."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import torch

        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper  # type: ignore[return-value]
