"""Running a selection: validate everything, load the model, play the episodes, write the results.

Work is split by batches of planned episodes: rank r of w plays batch k when k % w == r, and
every later try of an episode (a re-draw after a failure, a make-up for demonstrations it left
unscored) stays with it. An outcome depends only on its episode and that episode's earlier
outcomes (the plan is fixed by the seed; results do not depend on batch company), so scores
never depend on how the work was spread.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .backends import BACKENDS, load_backend
from .checkpoint import (
    EPISODES_FILE,
    DirectoryLock,
    EpisodeLog,
    check_directory,
    clear_directory,
    content_hash,
    read_logs,
    records_hash,
    write_run_file,
)
from .config import SelectConfig, default_episode_batch
from .data import Table, atomic_write_text, load_table, table_from_records
from .distributed import Group, Topology, detect
from .episodes import EpisodePlan
from .errors import UserError
from .memory import peak_memory, reset_peak_memory
from .metrics import Metric, resolve_metric
from .player import EpisodePlayer, play_share
from .scoring import WEIGHTINGS, EpisodeOutcome, aggregate, unscored_examples
from .selection import Selection
from .tasks import Example, FieldMap, TaskSpec, examples_from_records, load_task


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Prepared:
    """Everything known before a model loads; building it is where bad input is caught."""

    config: SelectConfig
    table: Table
    examples: list[Example]
    queries: list[Example]  # where query indices point: the validation set, or the pool itself
    task: TaskSpec
    metric: Metric
    plan: EpisodePlan | None  # None for baselines, which play no episodes
    max_new_tokens: int
    fingerprint: dict = field(default_factory=dict)


def prepare(config: SelectConfig, records: list[dict] | None = None) -> Prepared:
    from .baselines import METHODS

    METHODS.get(config.method)
    task = load_task(config.task)
    metric_name = config.metric or task.metric
    metric = resolve_metric(metric_name)
    WEIGHTINGS.get(config.weighting)
    if config.scoring == "likelihood" and config.query_mode != "single":
        raise UserError("--scoring likelihood needs --query-mode single")
    table = table_from_records(records) if records is not None else load_table(config.data)
    if len(table) == 0:
        raise UserError(f"{config.data or 'the pool'} holds no records")
    field_map = FieldMap(config.input_field, config.output_field).with_task_defaults(task)
    examples = examples_from_records(table.records, field_map)
    queries, val_hash = examples, None
    if config.val:
        val_table = load_table(config.val)
        if len(val_table) == 0:
            raise UserError(f"{config.val} holds no records")
        queries = examples_from_records(val_table.records, field_map)
        val_hash = content_hash(config.val)
    plan = None
    if config.method == "datawhisperer":
        plan = EpisodePlan(len(examples), config.n_demos, config.n_queries, config.rounds, config.seed,
                           n_val=len(queries) if config.val else 0, query_source=config.query_source)
    if plan is not None and plan.query_source == "val" and not config.val:
        raise UserError("query source 'val' needs --val FILE")
    if config.episode_batch is None:  # resolved after the data checks: it imports torch to look for CUDA
        config.episode_batch = default_episode_batch(config.scoring, config.device)
    data_hash = records_hash(table.records) if records is not None else content_hash(config.data)
    max_new_tokens = config.max_new_tokens or task.max_new_tokens
    fingerprint = {
        "data": data_hash, "val": val_hash, "task": task.name, "instruction": config.instruction or task.instruction,
        "fields": [field_map.input_field, field_map.output_field], "metric": metric_name, "model": config.model,
        "backend": config.backend, "layer": config.layer, "n_demos": config.n_demos, "n_queries": config.n_queries,
        "rounds": config.rounds, "seed": config.seed, "query_source": plan.query_source if plan else None,
        "query_mode": config.query_mode, "max_new_tokens": max_new_tokens, "max_length": config.max_length,
        "scoring": config.scoring, "max_retries": config.max_retries, "dtype": config.dtype,
        "episode_batch": config.episode_batch, "method": config.method, **({"anchors": config.anchors} if config.method == "nuggets" else {}),
    }
    return Prepared(config, table, examples, queries, task, metric, plan, max_new_tokens, fingerprint)


def silence_transformers() -> None:
    """No weight-loading progress bars (for --quiet)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def missing_episodes(plan: EpisodePlan, max_retries: int, outcomes: dict, share: tuple[int, int] = (0, 1),
                     group_size: int = 1) -> list[int]:
    """Planned episode ids (of one share) whose tries (plan.next_try: re-draws, make-ups) lack an outcome."""
    rank, world = share
    missing = []
    for episode in plan.episodes():
        if (episode.id // group_size) % world != rank:
            continue
        history: list[EpisodeOutcome] = []
        while (attempt := plan.next_try(episode, history, max_retries)) is not None:
            if (episode.id, attempt.attempt) not in outcomes:
                missing.append(episode.id)
                break
            history.append(outcomes[(episode.id, attempt.attempt)])
    return missing


def run_info(prepared: Prepared, outcomes: list[EpisodeOutcome], backend_info: dict, timings: dict) -> dict:
    finished = [o for o in outcomes if not o.failed]
    unscored = unscored_examples(outcomes)  # of a shard: among the examples its episodes tried
    return {
        "status": "finished",
        "datawhisperer_version": __version__,
        "config": prepared.config.to_dict(),
        "fingerprint": prepared.fingerprint,
        "task": {"name": prepared.task.name, "metric": prepared.fingerprint["metric"],
                 "instruction": prepared.fingerprint["instruction"], "max_new_tokens": prepared.max_new_tokens},
        "model": backend_info,
        "layer": backend_info.get("layer"),
        "pool_size": len(prepared.examples),
        "query_source": prepared.plan.query_source,
        "planned_episodes": len(prepared.plan.episodes()),
        "episodes": len(finished),
        "failed_episodes": len(outcomes) - len(finished),
        "failure_reasons": dict(Counter(o.reason for o in outcomes if o.failed)),
        "truncated_episodes": sum(bool(o.dropped) for o in finished),
        "demonstrations_dropped_for_context": sum(len(o.dropped) for o in finished),
        "makeup_episodes": sum(bool(o.targets) for o in outcomes),
        "unscored_examples": len(unscored),
        "unscored_reasons": dict(sorted(Counter(unscored.values()).items())),
        "prompt_tokens": int(sum(o.prompt_tokens for o in outcomes)),
        "episode_seconds_total": round(sum(o.seconds for o in outcomes), 3),
        **timings,
    }


def finalize(prepared: Prepared, outcomes: dict, out: Path | None, info: dict) -> Selection:
    """Aggregate every outcome and write the outputs: the merged episode log, scores, subsets, run.json."""
    ordered = [outcomes[key] for key in sorted(outcomes)]
    result = aggregate(ordered, len(prepared.examples), prepared.config.weighting)
    selection = Selection(prepared.table, result.scores, result.appearances, info)
    if out is not None:
        atomic_write_text(out / EPISODES_FILE, "".join(o.to_json() + "\n" for o in ordered))
        for rank_log in out.glob("episodes.rank-*.jsonl"):
            rank_log.unlink()
        selection.save(out, prepared.config.budget)
        write_run_file(out, info)
    return selection


def summary(selection: Selection, info: dict, out: Path | None, budgets: list[str]) -> str:
    n = len(selection)
    seconds = info["selection_seconds"]
    unscored = selection.unscored()
    reasons = ", ".join(f"{n} {why}" for why, n in info.get("unscored_reasons", {}).items())
    files = (f" Files are in {out}: scores.jsonl, " + ", ".join(f"selected-{b}{selection.table.suffix}" for b in budgets)
             + ", run.json, episodes.jsonl.") if out else ""
    return (f"Scored {n} examples with {info['episodes']} episodes ({info['failed_episodes']} failed and re-drawn"
            f"{f', {unscored} examples left unscored ({reasons}) and ranked last' if unscored else ''}) in "
            f"{seconds:.1f}s: {seconds / max(n, 1):.2f}s per example, {seconds / max(info['episodes'], 1):.2f}s per "
            f"episode, using {info['model'].get('model')} at layer {info['layer']} (model loaded in "
            f"{info.get('model_load_seconds', 0.0):.1f}s).{files}")


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
    than 0 and for a shard (whose outcomes wait for `datawhisperer merge`)."""
    reset_peak_memory()  # run.json's peak is this selection's, not what ran before it in this process
    if config.method != "datawhisperer":
        from .baselines.run import run_baseline

        return run_baseline(config, records, backend)
    topology = detect(config.shard)
    group = Group(topology, config.device)
    try:
        return _select(config, records, backend, topology, group)
    finally:
        group.close()


def _select(config: SelectConfig, records, backend, topology: Topology, group: Group) -> Selection | None:
    prepared = _guarded(group, lambda: prepare(config, records))
    out = Path(config.out) if config.out else None
    quiet = config.quiet or not topology.owns_output
    log_line = (lambda m: None) if quiet else stderr
    lock = DirectoryLock(out) if out is not None else None

    def preflight() -> None:
        if out is None and (topology.launched or topology.shard):
            raise UserError("a distributed or sharded run needs --out")
        if out is not None and out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        backend_cls = BACKENDS.get(config.backend) if backend is None else None
        if hasattr(backend_cls, "preflight"):  # cheap checks (model, layer, length) before any weights load
            backend_cls.preflight(model=config.model, layer=config.layer, max_length=config.max_length)
        if out is not None and topology.owns_output:
            check_directory(out, prepared.fingerprint, config.resume, config.overwrite)
            if out.is_dir():
                lock.acquire()

    _guarded(group, preflight)
    try:
        load_start = time.perf_counter()
        if backend is None:
            if quiet:
                silence_transformers()
            backend = _guarded(group, lambda: load_backend(
                config.backend, model=config.model, device=config.device, dtype=config.dtype, layer=config.layer,
                max_length=config.max_length, log=log_line))
        load_seconds = time.perf_counter() - load_start
        start = time.perf_counter()
        if out is not None and topology.owns_output:  # only now, with the model loaded, does --out change
            out.mkdir(parents=True, exist_ok=True)
            if not lock.held:
                lock.acquire()
            if config.overwrite:
                clear_directory(out)
            write_run_file(out, {"status": "running", "fingerprint": prepared.fingerprint,
                                 "config": config.to_dict()})
        group.barrier()
        done = read_logs(out) if out is not None else {}
        group.barrier()  # everyone has read the old logs before anyone appends
        log = EpisodeLog(out / topology.log_name) if out is not None else None
        player = EpisodePlayer(prepared, backend)
        try:
            mine = play_share(player, topology.rank, topology.world_size, done, log, progress=not quiet)
        finally:
            if log is not None:
                log.close()
        group.barrier()
        timings = {"selection_seconds": round(time.perf_counter() - start, 3),
                   "model_load_seconds": round(load_seconds, 3), "resumed_episodes": len(done),
                   # what the resumed episodes cost when an earlier sitting played them
                   "resumed_episode_seconds": round(sum(o.seconds for o in done.values()), 3),
                   "played_episodes": player.played, "world_size": topology.world_size, **peak_memory()}
        if topology.shard:
            info = run_info(prepared, mine, backend.description, timings)
            info["shard"] = {"index": topology.rank, "count": topology.world_size}
            write_run_file(out, info)
            log_line(f"Shard {topology.rank}/{topology.world_size} finished: {info['episodes']} episodes "
                     f"({info['failed_episodes']} failed) in {timings['selection_seconds']:.1f}s. Combine all "
                     f"shards with: datawhisperer merge SHARD_DIR... --out OUT")
            return None
        if not topology.is_main:
            return None
        outcomes = read_logs(out) if out is not None else {(o.episode, o.attempt): o for o in mine}
        missing = missing_episodes(prepared.plan, config.max_retries, outcomes)
        if missing:
            raise UserError(f"{len(missing)} episodes have no result (first: {missing[0]}); rerun with --resume")
        info = run_info(prepared, list(outcomes.values()), backend.description, timings)
        selection = finalize(prepared, outcomes, out, info)
        log_line(summary(selection, info, out, config.budget))
        return selection
    finally:
        if lock is not None:
            lock.release()
