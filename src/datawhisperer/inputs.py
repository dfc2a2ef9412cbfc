"""Everything a selection knows before a model loads; checking it is where bad input is caught."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import ontask
from .data import Table, load_table, table_from_records
from .episodes import EpisodePlan
from .errors import UserError
from .estimators import ESTIMATORS, Estimator
from .fingerprint import content_hash, records_hash
from .metrics import Metric, resolve_metric
from .scoring import WEIGHTINGS
from .select_config import SelectConfig, default_episode_batch
from .strategies import needs_embeddings
from .tasks import Example, FieldMap, TaskSpec, examples_from_records, load_task

# keys the fingerprint gained after runs were made without them, and the value those runs used (a run
# resumed to add embeddings)
ADDED_FINGERPRINT_KEYS = {"answer_tokens": 32}


@dataclass
class RunInputs:
    """The checked inputs of one selection: pool, queries, task, metric, episode plan and fingerprint."""

    config: SelectConfig
    table: Table
    examples: list[Example]
    queries: list[Example]  # where query indices point: the validation set, or the pool itself
    task: TaskSpec
    metric: Metric
    plan: EpisodePlan | None  # None for methods that play no episodes
    max_new_tokens: int
    fingerprint: dict = field(default_factory=dict)
    estimator: Estimator | None = None  # its ESTIMATORS entry

    @property
    def instruction(self) -> str:
        return self.config.instruction or self.task.instruction


def check_inputs(config: SelectConfig, method, records: list[dict] | None = None) -> RunInputs:
    """Load and check the pool, validation set, task and metric of a selection, and the episode plan of a
    method that plays episodes. The configuration is resolved here, once, into a copy (the estimator's
    overrides, the default episode batch): the caller's object is never changed. `method`: config.method's
    registry entry."""
    method.check(config)  # what only the chosen method (and its estimator) reads
    plays_episodes = method.plays_episodes
    estimator = ESTIMATORS.get(config.estimator)
    config = replace(config, **(estimator.overrides(config) if plays_episodes else {}),
                     strategy=method.default_strategy if config.strategy == "auto" else config.strategy,
                     target_filter=ontask.resolve(config.target_filter, bool(config.val), method))
    task = load_task(config.task)
    metric_name = config.metric or task.metric
    metric = resolve_metric(metric_name)
    WEIGHTINGS.get(config.weighting)
    if config.query_source == "val" and not config.val:
        raise UserError("query source 'val' needs --val FILE")
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
    if plays_episodes:
        plan = estimator.plan(config, len(examples), len(queries) if config.val else 0)
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
        "episode_batch": config.episode_batch, "method": config.method, **method.fingerprint(config, estimator),
        # the embedding step reads it (the calibrated estimator's own episodes have it as max_new_tokens)
        **({"answer_tokens": config.answer_tokens} if needs_embeddings(config, method) else {}),
    }
    return RunInputs(config, table, examples, queries, task, metric, plan, max_new_tokens, fingerprint, estimator)
