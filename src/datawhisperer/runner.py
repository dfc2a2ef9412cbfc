"""Running a selection: validate everything, load the model, play the episodes, write the results.

Work is split by episode id: rank r of w plays the planned episodes with id % w == r, and a
failed episode's re-draws stay with it. An outcome depends only on its episode (the plan is
fixed by the seed; prompts do not batch across episodes), so scores never depend on how the
work was spread.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .backends import BACKENDS, load_backend
from .checkpoint import (
    EPISODES_FILE,
    DirectoryLock,
    EpisodeLog,
    check_directory,
    clear_directory,
    content_hash,
    records_hash,
    write_run_file,
)
from .config import SelectConfig
from .data import Table, load_table, table_from_records
from .episodes import Episode, EpisodePlan
from .errors import UserError
from .metrics import Metric, resolve_metric
from .prompts import PromptBuilder, parse_numbered_answers
from .scoring import WEIGHTINGS, EpisodeOutcome, aggregate, normalise
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
    plan: EpisodePlan
    max_new_tokens: int
    fingerprint: dict = field(default_factory=dict)


def prepare(config: SelectConfig, records: list[dict] | None = None) -> Prepared:
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
    plan = EpisodePlan(len(examples), config.n_demos, config.n_queries, config.rounds, config.seed,
                       n_val=len(queries) if config.val else 0, query_source=config.query_source)
    if plan.query_source == "val" and not config.val:
        raise UserError("query source 'val' needs --val FILE")
    data_hash = records_hash(table.records) if records is not None else content_hash(config.data)
    max_new_tokens = config.max_new_tokens or task.max_new_tokens
    fingerprint = {
        "data": data_hash, "val": val_hash, "task": task.name, "instruction": config.instruction or task.instruction,
        "fields": [field_map.input_field, field_map.output_field], "metric": metric_name, "model": config.model,
        "backend": config.backend, "layer": config.layer, "n_demos": config.n_demos, "n_queries": config.n_queries,
        "rounds": config.rounds, "seed": config.seed, "query_source": plan.query_source,
        "query_mode": config.query_mode, "max_new_tokens": max_new_tokens, "max_length": config.max_length,
        "scoring": config.scoring, "max_retries": config.max_retries, "dtype": config.dtype,
    }
    return Prepared(config, table, examples, queries, task, metric, plan, max_new_tokens, fingerprint)


class EpisodePlayer:
    """Plays one episode on a backend and turns what it returns into an EpisodeOutcome."""

    def __init__(self, prepared: Prepared, backend) -> None:
        self.prepared = prepared
        self.backend = backend
        config = prepared.config
        self.builder = PromptBuilder(backend.tokenizer, config.instruction or prepared.task.instruction,
                                     config.query_mode)
        self.stop = tuple(prepared.task.stop) + self.builder.stop
        self.layer = backend.layer
        self.truncated_episodes = 0

    def _fit(self, demo_ids: list[int], queries: list[Example]):
        """Render the episode, dropping the longest demonstrations until it fits the context."""
        examples = self.prepared.examples
        shown, dropped = list(demo_ids), []
        extra = self.prepared.max_new_tokens
        if self.prepared.config.scoring == "likelihood":
            extra = max(self.backend.count_tokens(q.answer) for q in queries) + 1
        while shown:
            prompt = self.builder.build([examples[i] for i in shown], queries)
            need = self.backend.count_tokens(prompt.prefix) + max(map(self.backend.count_tokens, prompt.suffixes))
            if need + extra <= self.backend.max_length:
                return prompt, shown, dropped
            lengths = [hi - lo for lo, hi in prompt.demo_spans]
            dropped.append(shown.pop(int(np.argmax(lengths))))
        return None, [], dropped

    def play(self, episode: Episode) -> EpisodeOutcome:
        start = time.perf_counter()
        queries = [self.prepared.queries[q] for q in episode.queries]
        outcome = EpisodeOutcome(episode.id, episode.attempt, episode.round, [], list(episode.queries),
                                 None, [], [])
        prompt, shown, dropped = self._fit(list(episode.demos), queries)
        outcome.dropped = dropped
        if prompt is None:
            outcome.failed, outcome.reason = True, "queries alone exceed the context length"
            return outcome
        if dropped:
            self.truncated_episodes += 1
        outcome.demos = shown
        config = self.prepared.config
        if config.scoring == "likelihood":
            result = self.backend.score_answers(prompt, [q.answer for q in queries], self.layer)
            scores: list[float | None] = list(result.token_scores)
        else:
            result = self.backend.run_episode(prompt, self.layer, self.prepared.max_new_tokens, self.stop)
            answers = result.texts
            if config.query_mode == "multi":
                answers = parse_numbered_answers(result.texts[0], len(queries))
                outcome.answers = list(result.texts)
            if answers is None:
                outcome.failed, outcome.reason = True, "numbered answers could not be parsed"
            else:
                outcome.answers = list(answers)
                scores = [self.prepared.metric(a, q.answer) for a, q in zip(answers, queries)]
                if any(s is None for s in scores):
                    outcome.failed, outcome.reason = True, "an answer could not be parsed by the metric"
        mass = np.asarray(result.demo_mass, dtype=np.float64).sum(axis=0)
        outcome.demo_tokens = [int(n) for n in result.demo_tokens]
        outcome.attention = (mass / np.maximum(result.demo_tokens, 1)).tolist()
        outcome.weights = normalise(outcome.attention)
        outcome.prompt_tokens = int(result.prompt_tokens)
        if not outcome.failed:
            outcome.query_scores = [float(s) for s in scores]
        outcome.seconds = time.perf_counter() - start
        return outcome


def play_share(player: EpisodePlayer, rank: int, world_size: int, done: dict, log: EpisodeLog | None,
               progress: bool) -> list[EpisodeOutcome]:
    """Play this rank's share of the plan, re-drawing failed episodes; skip what `done` holds."""
    plan = player.prepared.plan
    max_retries = player.prepared.config.max_retries
    mine = [e for e in plan.episodes() if e.id % world_size == rank]
    outcomes: list[EpisodeOutcome] = []
    failures = 0
    bar = tqdm(total=len(mine), disable=not progress, unit="episode", desc="scoring", file=sys.stderr,
               dynamic_ncols=True)
    for planned in mine:
        episode = planned
        while True:
            outcome = done.get((episode.id, episode.attempt))
            if outcome is None:
                outcome = player.play(episode)
                if log is not None:
                    log.append(outcome)
            outcomes.append(outcome)
            if not outcome.failed or episode.attempt >= max_retries:
                break
            failures += 1
            episode = plan.retry(planned, episode.attempt + 1)
        bar.update(1)
        if failures:
            bar.set_postfix(failed=failures)
    bar.close()
    return outcomes


def peak_memory() -> dict:
    memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        import torch

        if torch.cuda.is_available():
            memory["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except ImportError:
        pass
    return memory


def build_selection(prepared: Prepared, outcomes: list[EpisodeOutcome], info: dict) -> Selection:
    result = aggregate(outcomes, len(prepared.examples), prepared.config.weighting)
    return Selection(prepared.table, result.scores, result.appearances, info)


def run_info(prepared: Prepared, outcomes: list[EpisodeOutcome], backend_info: dict, timings: dict,
             truncated: int, share: dict | None = None) -> dict:
    finished = [o for o in outcomes if not o.failed]
    demos_dropped = sum(len(o.dropped) for o in finished)
    config = prepared.config.to_dict()
    return {
        "status": "finished",
        "datawhisperer_version": __version__,
        "config": config,
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
        "failure_reasons": _count([o.reason for o in outcomes if o.failed]),
        "truncated_episodes": truncated,
        "demonstrations_dropped_for_context": demos_dropped,
        "prompt_tokens": int(sum(o.prompt_tokens for o in outcomes)),
        "episode_seconds_total": round(sum(o.seconds for o in outcomes), 3),
        **timings,
        **peak_memory(),
        **({"shard": share} if share else {}),
    }


def _count(items: list) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def summary(selection: Selection, info: dict, out: Path | None, budgets: list[str]) -> str:
    n = len(selection)
    seconds = info["selection_seconds"]
    unscored = selection.unscored()
    files = (f" Files are in {out}: scores.jsonl, " + ", ".join(f"selected-{b}{selection.table.suffix}" for b in budgets)
             + ", run.json, episodes.jsonl.") if out else ""
    return (f"Scored {n} examples with {info['episodes']} episodes ({info['failed_episodes']} failed and re-drawn"
            f"{', ' + str(unscored) + ' examples left unscored and ranked last' if unscored else ''}) in "
            f"{seconds:.1f}s: {seconds / max(n, 1):.2f}s per example, {seconds / max(info['episodes'], 1):.2f}s per "
            f"episode, using {info['model'].get('model')} at layer {info['layer']} (model loaded in "
            f"{info['model_load_seconds']:.1f}s).{files}")


def select(config: SelectConfig, records: list[dict] | None = None, backend=None) -> Selection:
    """Run a whole selection as `datawhisperer select` does; returns the Selection."""
    prepared = prepare(config, records)
    out = Path(config.out) if config.out else None
    log_line = (lambda m: None) if config.quiet else stderr
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    backend_cls = BACKENDS.get(config.backend) if backend is None else None
    if hasattr(backend_cls, "preflight"):  # cheap checks (model path) before touching --out
        backend_cls.preflight(model=config.model)
    lock = None
    if out is not None:
        check_directory(out, prepared.fingerprint, config.resume, config.overwrite)
        if out.is_dir():
            lock = DirectoryLock(out)
            lock.acquire()
    try:
        load_start = time.perf_counter()
        if backend is None:
            if config.quiet:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            backend = load_backend(config.backend, model=config.model, device=config.device, dtype=config.dtype,
                                   layer=config.layer, max_length=config.max_length, log=log_line)
        load_seconds = time.perf_counter() - load_start
        start = time.perf_counter()
        if out is not None:  # only now, with the model loaded, does --out change
            out.mkdir(parents=True, exist_ok=True)
            if lock is None:
                lock = DirectoryLock(out)
                lock.acquire()
            if config.overwrite:
                clear_directory(out)
        log = EpisodeLog(out / EPISODES_FILE) if out is not None else None
        done = {(o.episode, o.attempt): o for o in log.read()} if log is not None else {}
        if out is not None:
            write_run_file(out, {"status": "running", "fingerprint": prepared.fingerprint,
                                 "config": config.to_dict()})
        player = EpisodePlayer(prepared, backend)
        try:
            outcomes = play_share(player, 0, 1, done, log, progress=not config.quiet)
        finally:
            if log is not None:
                log.close()
        timings = {"selection_seconds": round(time.perf_counter() - start, 3),
                   "model_load_seconds": round(load_seconds, 3), "resumed_episodes": len(done)}
        info = run_info(prepared, outcomes, backend.description, timings, player.truncated_episodes)
        selection = build_selection(prepared, outcomes, info)
        if out is not None:
            selection.save(out, config.budget)
            write_run_file(out, info)
        if not config.quiet:
            stderr(summary(selection, info, out, config.budget))
        return selection
    finally:
        if lock is not None:
            lock.release()
