"""Running a baseline with `select --method NAME`: the same checks and outputs as Data Whisperer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..backends import load_backend
from ..checkpoint import check_directory, claimed_directory, write_run_file
from ..config import SelectConfig
from ..errors import UserError
from ..runner import peak_memory, prepare, silence_transformers, stderr
from ..selection import Selection
from . import METHODS, NEEDS_NO_MODEL, MethodContext


def run_baseline(config: SelectConfig, records=None, backend=None) -> Selection:
    if config.shard or config.resume:
        raise UserError(f"--shard and --resume apply to datawhisperer runs, not to the {config.method} baseline")
    prepared = prepare(config, records)
    method = METHODS.get(config.method)
    out = Path(config.out) if config.out else None
    log = (lambda m: None) if config.quiet else stderr
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        check_directory(out, prepared.fingerprint, resume=False, overwrite=config.overwrite)
    load_seconds = 0.0
    if config.quiet:
        silence_transformers()

    def load():
        nonlocal load_seconds, backend
        if backend is None:
            begin = time.perf_counter()
            backend = load_backend(config.backend, model=config.model, device=config.device, dtype=config.dtype,
                                   layer=config.layer, max_length=config.max_length, log=log)
            load_seconds = time.perf_counter() - begin
        return backend

    if config.method not in NEEDS_NO_MODEL:
        load()  # fail on a bad model before anything is written
    start = time.perf_counter()
    context = MethodContext(prepared.examples, config.instruction or prepared.task.instruction, config.seed, load,
                            log, {"anchors": config.anchors, "quiet": config.quiet})
    scores = np.asarray(method(context), dtype=np.float64)
    seconds = time.perf_counter() - start
    info = {"status": "finished", "datawhisperer_version": __version__, "method": config.method,
            "config": config.to_dict(), "fingerprint": prepared.fingerprint,
            "model": backend.description if backend is not None else None, "pool_size": len(scores),
            "selection_seconds": round(seconds, 3), "model_load_seconds": round(load_seconds, 3), **peak_memory()}
    selection = Selection(prepared.table, scores, np.zeros(len(scores), dtype=np.int64), info)
    if out is not None:
        with claimed_directory(out, config.overwrite):
            selection.save(out, config.budget)
            write_run_file(out, info)
    log(f"{config.method}: scored {len(scores)} examples in {seconds:.1f}s" + (f"; files in {out}" if out else ""))
    return selection
