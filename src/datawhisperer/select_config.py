"""The configuration of a selection run: one dataclass, validated on construction.

The CLI's flags are generated from these fields (their `help` metadata is the flag's help),
and `datawhisperer.select(...)` takes the same names as keyword arguments.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

from .balance import BALANCES
from .errors import UserError
from .estimators import DEFAULT_ESTIMATOR
from .registry import did_you_mean
from .scoring import DEFAULT_WEIGHTING
from .selection import checked_budgets
from .strategies import StrategyOptions

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SCORINGS = ("generate", "likelihood")


def option(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class SelectConfig:
    data: str = option("", "the pool: .json, .jsonl, .csv, .parquet or a save_to_disk directory", positional=True)
    out: str | None = option(None, "directory for scores.jsonl, selected-<B>.<ext>, run.json, episodes.jsonl")
    budget: list[str] = option(("0.1",), "what to select: a fraction of the pool in (0, 1] (0.05 or 5%), or a number "
                               "of examples (a whole number above 1); one or more", repeat=True)
    strategy: str = option("auto", "how each budget is filled from the scores: top (the best scored), stratified "
                           "(drop the lowest --drop, then draw evenly across the score range), diverse (drop the "
                           "lowest --drop, then cover the --val examples, or the pool), or auto: the method's own "
                           "(top for every method)")
    drop: float = option(StrategyOptions.drop, "stratified, diverse: the lowest-scored fraction left out first")
    strata: int = option(StrategyOptions.strata, "stratified: strata over the kept score range")
    score_weight: float = option(StrategyOptions.score_weight, "diverse: weight of the scores against coverage (0 = coverage alone, 1 = "
                                 "scores alone)")
    balance: str = option("auto", "keep each group's share of the pool in every subset: on (a group per label), "
                          "answer-length (five groups by answer length), off, or auto (on when the answers are labels: at "
                          "most 50 distinct, four records each on average; answer-length otherwise)", choices=BALANCES)
    target_filter: str = option("auto", "with --val: pick only from the records as like the --val examples as those "
                                "are like each other (the target task's, by the model's embeddings): on, off, or "
                                "auto (on with --val for the methods that load the model, except the reference method random)",
                                choices=("auto", "on", "off"))
    task: str = option("instruction", "task preset (math, summarization, instruction, classification) or a "
                     "task file (.yaml/.json)")
    input_field: str | None = option(None, "input field, or a template over fields such as '{instruction}\\n{input}'")
    output_field: str | None = option(None, "field holding the gold answer")
    instruction: str | None = option(None, "task instruction shown before the demonstrations (default: the task's)")
    metric: str | None = option(None, "metric", help_from="datawhisperer.metrics:metrics_help")
    model: str | None = option(None, "local model directory, .gguf file, or model id in the local HF cache "
                             "(default: the embedded SmolLM2-135M-Instruct)")
    backend: str = option("hf", "model backend (hf; fake runs the pipeline without a model, for tests)")
    device: str = option("auto", "auto, cpu, cuda or mps", choices=DEVICES)
    dtype: str = option("auto", "auto (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16, float16", choices=DTYPES)
    layer: int | None = option(None, "attention layer, 0-based; negative counts from the end "
                             "(default: round(0.4 x number of layers))")
    n_demos: int = option(5, "demonstrations per episode")
    n_queries: int = option(3, "queries per episode")
    rounds: int | str = option(1, "passes over the pool; each example is a demonstration at least once per round; "
                               "auto: play rounds until the run's split-half reliability reaches "
                               "--target-reliability, at most --max-rounds")
    target_reliability: float = option(0.8, "--rounds auto: stop once the projected reliability reaches this")
    max_rounds: int = option(8, "--rounds auto: the most rounds played")
    seed: int = option(0, "seed of the episode plan")
    val: str | None = option(None, "validation file to draw queries from (default: the pool's other fold)")
    query_source: str = option("auto", "where queries come from: auto, val, fold (2-fold split) or rest of the pool",
                             choices=("auto", "val", "fold", "rest"))
    query_mode: str = option("single", "single: each query in its own sequence after a shared demo prefix; "
                           "multi: all queries numbered in one prompt (the paper's)", choices=("single", "multi"))
    max_new_tokens: int | None = option(None, "longest answer generated (default: the task's)")
    max_length: int | None = option(None, "longest prompt + answer in tokens (default: the model's context)")
    scoring: str = option("generate", "generate: greedy answers scored by the metric (the paper's); "
                        "likelihood: no decoding, the gold answer's mean token probability", choices=SCORINGS)
    weighting: str = option(DEFAULT_WEIGHTING, "demonstration weights: paper (attention), uniform, debiased")
    estimator: str = option(DEFAULT_ESTIMATOR, "how episodes become scores: paper (the paper's: --n-demos demonstrations, "
                            "fresh queries, attention x score) or calibrated (each example alone before a fixed "
                            "panel of queries, gold-answer tokens standardised: stable across seeds)")
    panel: int = option(4, "calibrated: queries in the fixed panel (more: more reliable, slower; on BioInstruct 4 "
                        "agreed across seeds as well as 8, at 60% of its cost)")
    answer_tokens: int = option(32, "calibrated: gold-answer tokens scored per panel query; every estimator: the "
                                "answer tokens an example's embedding covers")
    coherence_weight: float = option(1.0, "calibrated: weight of each example's coherence (how much its own input "
                                     "raises the likelihood of its answer) beside its in-context score; 0 = none")
    method: str = option("datawhisperer", "selection method", help_from="datawhisperer.methods:methods_help")
    anchors: int = option(8, "nuggets: size of the fixed anchor set")
    episode_batch: int | None = option(None, "episodes played together in one batch (default: 4 for generate, 1 for "
                                     "likelihood; 16 on CUDA); the batches are fixed by the plan, so results never "
                                     "depend on how the work is spread")
    max_retries: int = option(3, "re-draws of a failed episode's queries before its demos go unscored by it")
    shard: str | None = option(None, "i/n: do only shard i of n of the work (episodes, or a baseline's examples) "
                             "into --out (for job arrays); combine the shards with `datawhisperer merge`")
    resume: bool = option(False, "continue a run in --out that was interrupted")
    overwrite: bool = option(False, "replace another run's files in --out")
    threads: int | None = option(None, "CPU threads for the model (default: the cores this process may use, shared "
                                 "among the ranks of this machine)")
    quiet: bool = option(False, "no progress bar or summary")

    def __post_init__(self) -> None:
        self.budget = checked_budgets(self.budget)
        from .strategies import STRATEGIES

        if self.strategy != "auto":
            STRATEGIES.get(self.strategy)
        self.strategy_options  # noqa: B018 (checks drop, strata and score-weight)
        if self.answer_tokens < 1:
            raise UserError(f"answer-tokens must be at least 1, got {self.answer_tokens}")
        self.rounds = _rounds(self.rounds)
        if not 0 < self.target_reliability <= 1:
            raise UserError(f"target-reliability must be in (0, 1], got {self.target_reliability}")
        for name in ("n_demos", "n_queries", "rounds", "max_rounds", "episode_batch", "threads"):
            if getattr(self, name) not in (None, "auto") and getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise UserError("max-retries must be >= 0")
        for name in ("max_new_tokens", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise UserError(f"{f.name.replace('_', '-')} must be one of {', '.join(choices)}, "
                                f"not {getattr(self, f.name)!r}{did_you_mean(getattr(self, f.name), choices)}")
        if self.shard is not None:
            from .distributed import parse_shard

            parse_shard(self.shard)
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite contradict each other")
        if self.scoring == "likelihood" and self.query_mode == "multi":
            raise UserError("--scoring likelihood scores each query's gold answer after its own query: "
                            "use it with --query-mode single")

    @property
    def strategy_options(self) -> StrategyOptions:
        return StrategyOptions(self.drop, self.strata, self.score_weight, self.target_filter == "on")

    @property
    def planned_rounds(self) -> int:
        """The rounds the episode plan holds: --rounds, or with auto the most that may be played."""
        return self.max_rounds if self.rounds == "auto" else self.rounds

    def to_dict(self) -> dict:
        """What run.json records. File paths are made absolute, so that the run's files can be found again
        from another directory (`report` shows the pool's records)."""
        values = asdict(self)
        for name in ("data", "val"):
            if values[name]:
                values[name] = os.path.abspath(values[name])
        return values


def _rounds(value: int | str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"rounds must be a whole number or auto, not {value!r}") from None


def default_episode_batch(scoring: str, device: str) -> int:
    """Batching episodes amortises decoding (memory-bound on CPUs) and fills GPUs; on a CPU a likelihood
    prefill is compute-bound already, and padding across episodes only adds work."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return 16
    return 4 if scoring == "generate" else 1
