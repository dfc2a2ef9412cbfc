"""Running any selection method: check everything, load the model, run the method, write the results.

One path for every entry of the method registry (methods.py). What the runner shares among them: the
checks (before any weights load), the run directory (claimed, never mixed with another run, locked),
the model, run.json, scores and subsets. Under torch.distributed every rank runs the method on its share
and rank 0 writes; a shard (`--shard i/n`) writes its logged work and run.json for `datawhisperer merge`.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import ontask
from .backends import BACKENDS, load_backend
from .balance import answer_lengths, balance_groups, resolve_balance
from .distributed import Group, Topology, detect
from .embedding import plan_embeddings, run_embedding
from .errors import UserError
from .executor import Scored, Session, ShardDone, run_method
from .inputs import ADDED_FINGERPRINT_KEYS, RunInputs, check_inputs
from .memory import peak_memory, reset_peak_memory
from .methods import METHODS, wording_of
from .reliability import describe, verdict
from .rundir import RunDirectory
from .select_config import SelectConfig
from .selection import Selection, budget_count, parse_budget
from .strategies import STRATEGIES, records_needed
from .threads import apply_threads
from .vectors import Embeddings
from .version import __version__


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def silence_transformers() -> None:
    """No weight-loading progress bars (for --quiet)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def common_info(inputs: RunInputs, backend_info: dict | None, timings: dict) -> dict:
    """What run.json records for every method; the method adds its own figures."""
    return {"status": "finished", "datawhisperer_version": __version__, "config": inputs.config.to_dict(),
            "fingerprint": inputs.fingerprint, "model": backend_info, "pool_size": len(inputs.examples), **timings}


def write_outputs(out: RunDirectory | None, inputs: RunInputs, scored: Scored, info: dict,
                  embedded: Embeddings | None = None) -> Selection:
    """scores.jsonl, the subsets (by the run's strategy), embeddings.npz where there are embeddings, run.json.
    A run that scored nothing writes run.json as failed and no subset (a one-line error); a subset that has to
    take unscored examples is said on stderr, under --quiet too, and in run.json."""
    config = inputs.config
    if not np.isfinite(scored.scores).any():
        if out is not None:
            out.write_info({**info, "status": "failed"})
        reasons = ", ".join(f"{k} {why}" for why, k in info.get("unscored_reasons", {}).items())
        raise UserError(f"no example could be scored{f' ({reasons})' if reasons else ''}, so nothing was "
                        f"selected{f'; see {out.info_file}' if out is not None else ''}")
    pool = scored.embeddings if scored.embeddings is not None else (embedded.pool if embedded else None)
    targets = embedded.targets if embedded else None
    answers = [e.answer for e in inputs.examples]
    groups = balance_groups(answers, config.balance)
    info["balanced_by"] = resolve_balance(answers, config.balance)
    if config.target_filter == "on":
        strategy = STRATEGIES.get(config.strategy)
        needed = {b: records_needed(strategy, budget_count(parse_budget(b), len(inputs.examples)), config.drop)
                  for b in config.budget}
        info["target_filter"] = ontask.summary(pool, targets, needed) or {
            "on_task": None, "why": f"fewer than {ontask.MIN_TARGETS} --val examples have an embedding (fit the "
                                    "model's context): nothing filtered"}
    selection = Selection(inputs.table, scored.scores, scored.appearances, info, pool, targets, config.strategy,
                          config.strategy_options, config.seed, groups)
    unscored = {budget: selection.unscored_in(budget) for budget in config.budget}  # fails before any write
    if groups is None:  # balanced subsets keep the pool's shares already (labels, or answer-length fifths)
        info["answer_chars"] = answer_chars(answers, selection, config.budget)
    if any(unscored.values()):  # a budget the strategy cannot meet has failed above, before any file is written
        info["unscored_in_subsets"] = {b: k for b, k in unscored.items() if k}
    if out is not None:
        if scored.outcomes is not None:
            out.write_outcomes(scored.outcomes)
        if pool is not None:
            out.write_embeddings(pool, targets)
        out.write_selection(selection, config.budget)
        out.write_info(info)
        out.remove_parts()  # the baseline's and embedding step's checkpoints, now that the outputs hold them
    for budget, count in info.get("unscored_in_subsets", {}).items():
        stderr(f"Warning: the subset of budget {budget} holds {count} unscored examples (nothing could score "
               "them; they fill it last)")
    return selection


def summary(selection: Selection, info: dict, out: RunDirectory | None, budgets: list[str]) -> str:
    n, seconds = len(selection), info["selection_seconds"]
    names = RunDirectory.output_names(budgets, selection.table.suffix, episodes="episodes" in info)
    files = f" Files are in {out.path}: {', '.join(names)}." if out else ""
    if "episodes" not in info:
        return (f"{info['method']}: scored {n} examples in {seconds:.1f}s" + (f"; files in {out.path}" if out else "")
                + target_line(info) + balance_line(info) + length_line(info)
                + reliability_line(info.get("reliability")))
    unscored = selection.unscored()
    reasons = ", ".join(f"{k} {why}" for why, k in info.get("unscored_reasons", {}).items())
    return (f"Scored {n} examples with {info['episodes']} episodes ({info['failed_episodes']} failed and re-drawn"
            f"{f', {unscored} examples left unscored ({reasons}) and ranked last' if unscored else ''}) in "
            f"{seconds:.1f}s: {seconds / max(n, 1):.2f}s per example, {seconds / max(info['episodes'], 1):.2f}s per "
            f"episode, using {info['model'].get('model')} at layer {info['layer']} (model loaded in "
            f"{info.get('model_load_seconds', 0.0):.1f}s).{files}{target_line(info)}{balance_line(info)}"
            f"{length_line(info)}"
            f"{reliability_line(info.get('reliability'))}"
            f"{rounds_line(info)}")


def answer_chars(answers: list[str], selection: Selection, budgets: list[str]) -> dict:
    """Median answer length (characters) of the pool and of each subset: run.json's check that a score did not
    fill the subsets with short (or long) answers."""
    chars = answer_lengths(answers)
    return {"pool_median": float(np.median(chars)),
            "subset_medians": {b: float(np.median(chars[selection.chosen(b)])) for b in budgets}}


def balance_line(info: dict) -> str:
    """What every subset keeps of the pool's shape (--balance)."""
    kept = {"labels": "each label's share of the pool",
            "answer-length": "the pool's answer lengths (a fifth of each budget from each fifth of the pool by answer "
                             "length)"}.get(info.get("balanced_by"))
    return f"\nEvery subset keeps {kept}; --balance off takes the ranking as it is." if kept else ""


def length_line(info: dict) -> str:
    """A warning when a subset's median answer is under half or over twice the pool's (run.json holds the
    medians only for subsets that no balance groups)."""
    lengths = info.get("answer_chars")
    pool = lengths["pool_median"] if lengths else 0.0
    off = {b: m for b, m in (lengths or {}).get("subset_medians", {}).items() if pool and not 0.5 <= m / pool <= 2}
    if not off:
        return ""
    shown = ", ".join(f"{m:.0f} at budget {b}" for b, m in off.items())
    return (f"\nWarning: the subsets' answers are far from the pool's in length (median {shown}; the pool's "
            f"{pool:.0f} characters): the scores favour {'short' if min(off.values()) < pool else 'long'} answers. "
            "--balance auto (the default) keeps the pool's answer lengths in every subset.")


def target_line(info: dict) -> str:
    """What the target filter kept."""
    kept = info.get("target_filter")
    if not kept:
        return ""
    if kept["on_task"] is None:
        return f"\nTarget filter: {kept['why']}."
    filled = "".join(f"; the subset of budget {b} also takes the {k} most target-like of the others"
                     for b, k in kept.get("filled_up", {}).items())
    return (f"\nTarget filter: {kept['on_task']} of the {kept['pool']} records are as like the --val examples as "
            f"those are like each other; the subsets come from them{filled} (--target-filter off: from all).")


def rounds_line(info: dict) -> str:
    """What --rounds auto decided, round by round."""
    if "rounds_played" not in info:
        return ""
    reached = ", ".join("-" if r is None else f"{r:.2f}" for r in info["reliability_by_round"])
    return (f"\n--rounds auto: played {info['rounds_played']} of at most {info['rounds_cap']} rounds "
            f"(reliability after each: {reached}; target {info['config']['target_reliability']}).")


def reliability_line(reliability: dict | None) -> str:
    """What the run says of its own ranking: the split-half figure, and a plain warning when it is low."""
    if not reliability:
        return ""
    wording = wording_of(reliability["estimator"])
    warning = verdict(reliability, wording)
    return "\n" + describe(reliability, wording) + (f"\nWarning: {warning}." if warning else "")


def uses_model(inputs: RunInputs, method) -> bool:
    """The method's own work needs the model, or the embedding step does (random with --strategy diverse)."""
    return method.needs_model or plan_embeddings(inputs, method) is not None


def _guarded(group: Group, step):
    """Run `step` (rank 0's checks, a model load ...) and make every rank fail together on a UserError."""
    try:
        value, error = step(), None
    except UserError as exc:
        value, error = None, str(exc)
    group.agree(error)
    return value


def select(config: SelectConfig, records: list[dict] | None = None, backend=None) -> Selection | None:
    """Run a selection as `datawhisperer select` does. Returns the Selection, or None on ranks other
    than 0 and for a shard (whose work waits for `datawhisperer merge`)."""
    reset_peak_memory()  # run.json's peak is this selection's, not what ran before it in this process
    topology = detect(config.shard)
    threads = apply_threads(config.threads, topology.local_world_size)  # before any model loads
    group = Group(topology, config.device)
    try:
        return _select(config, records, backend, topology, group, threads)
    finally:
        group.close()


def _preflight(config: SelectConfig, inputs: RunInputs, out: RunDirectory | None, topology: Topology,
               backend) -> None:
    """Every check that needs no weights, before the output directory changes."""
    method = METHODS.get(config.method)
    if out is None and (topology.launched or topology.shard):
        raise UserError("a distributed or sharded run needs --out")
    backend_cls = BACKENDS.get(config.backend) if backend is None and uses_model(inputs, method) else None
    if hasattr(backend_cls, "preflight"):  # cheap checks (model, layer, length) before any weights load
        backend_cls.preflight(model=config.model, layer=config.layer, max_length=config.max_length)
    if out is not None and topology.owns_output:
        out.check(inputs.fingerprint, config.resume, config.overwrite, ADDED_FINGERPRINT_KEYS)
        if out.path.is_dir():
            out.lock()


def _select(config: SelectConfig, records, backend, topology: Topology, group: Group, threads: int
            ) -> Selection | None:
    method = _guarded(group, lambda: METHODS.get(config.method))
    inputs = _guarded(group, lambda: check_inputs(config, method, records))
    out = RunDirectory(config.out) if config.out else None
    quiet = config.quiet or not topology.owns_output
    log_line = (lambda m: None) if quiet else stderr
    _guarded(group, lambda: _preflight(config, inputs, out, topology, backend))
    load_seconds = 0.0

    def load():
        nonlocal backend, load_seconds
        if backend is None:
            start = time.perf_counter()
            backend = _guarded(group, lambda: load_backend(
                config.backend, model=config.model, device=config.device, dtype=config.dtype, layer=config.layer,
                max_length=config.max_length, log=log_line))
            load_seconds = time.perf_counter() - start
        return backend

    try:
        if quiet:
            silence_transformers()
        if uses_model(inputs, method):
            load()  # a bad model fails before --out changes
            _guarded(group, lambda: method.preflight(inputs, backend))  # and what could score nothing, too
        start = time.perf_counter()
        if out is not None and topology.owns_output:  # only now, with the model loaded, does --out change
            out.claim(config.overwrite)
            out.write_info({"status": "running", "fingerprint": inputs.fingerprint, "config": inputs.config.to_dict()})
        group.barrier()
        session = Session(inputs, out, topology, group, load, log_line, progress=not quiet)
        embedded = run_embedding(session, plan_embeddings(inputs, method))
        session.embeddings = embedded
        scored = run_method(session, method)
        if scored is None:
            return None
        timings = {"selection_seconds": round(time.perf_counter() - start, 3),
                   "model_load_seconds": round(load_seconds, 3), **peak_memory(), "threads": threads}
        description = backend.description if backend is not None else None
        info = {**common_info(inputs, description, timings), **scored.info}
        if isinstance(scored, ShardDone):
            info["shard"] = {"index": topology.rank, "count": topology.world_size}
            out.write_info(info)
            log_line(f"Shard {topology.rank}/{topology.world_size} finished: {scored.work} in "
                     f"{timings['selection_seconds']:.1f}s. Combine all shards with: datawhisperer merge "
                     "SHARD_DIR... --out OUT")
            return None
        selection = write_outputs(out, inputs, scored, info, embedded)
        log_line(summary(selection, info, out, config.budget))
        return selection
    finally:
        if out is not None:
            out.unlock()
