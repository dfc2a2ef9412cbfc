"""The peak memory of one selection, not of the process that runs it.

`bench` fine-tunes and evaluates models in the same process before it selects, so the process's
lifetime peak (getrusage's ru_maxrss) says nothing about the selection. Linux lets a process reset
its peak resident set size: writing "5" to /proc/self/clear_refs sets VmHWM to the current RSS, and
the kernel then tracks the peak exactly, with no sampling. CUDA's allocator peak is reset alike.
"""

from __future__ import annotations

import resource
import sys

_scope = "process"  # what peak_rss_mb covers: "selection" once a reset worked


def reset_peak_memory() -> None:
    """Start measuring: later peaks count from the memory in use now (memory freed before is forgotten)."""
    global _scope
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _scope = "selection"
    except OSError:  # not Linux, or a kernel without it: the lifetime peak is all there is
        _scope = "process"
    torch = sys.modules.get("torch")  # not imported yet: nothing allocated on a GPU to forget
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for device in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(device)


def _peak_rss_mb() -> float:
    if _scope == "selection":
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024  # kB
        except OSError:
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


def peak_memory() -> dict:
    """run.json's memory figures: peak_rss_mb, the largest resident set size since reset_peak_memory (the
    selection's start; the whole process's life where it cannot be reset, then peak_memory_scope says
    "process"), and peak_cuda_mb, the CUDA allocator's peak over the same window."""
    memory = {"peak_rss_mb": round(_peak_rss_mb(), 1), "peak_memory_scope": _scope}
    try:
        import torch

        if torch.cuda.is_available():
            memory["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except ImportError:
        pass
    return memory
