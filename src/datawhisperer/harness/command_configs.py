"""The configurations of the harness commands: dataclasses validated on construction, whose fields
are the commands' flags. Kept free of heavy imports so that `--help` and bad flags answer at once.

`bench` runs select, finetune and evaluate for every cell; what it passes on to them is declared once,
in their configurations, and each cell's configuration is built from the bench's (`BenchConfig.select_config`,
`finetune_config`, `evaluate_config`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from ..errors import UserError
from ..registry import unknown_name_message
from ..select_config import SelectConfig, option
from ..selection import parse_budget


@dataclass
class FinetuneConfig:
    data: str = option("", "training records (any format `select` reads)", positional=True)
    out: str = option("", "directory for the LoRA adapter and finetune.json")
    model: str | None = option(None, "base model (default: the embedded SmolLM2-135M-Instruct)")
    task: str = option("instruction", "task preset or task file (fields and instruction)")
    input_field: str | None = option(None, "input field or template")
    output_field: str | None = option(None, "answer field")
    instruction: str | None = option(None, "instruction (default: the task's)")
    epochs: int = option(5, "passes over the data (the paper: 5)")
    lr: float = option(1e-4, "peak learning rate, linear decay (the paper: 1e-4)")
    batch_size: int = option(8, "examples per optimizer step (the paper: 8)")
    lora_r: int = option(16, "LoRA rank (alpha = 2r, all linear layers)")
    max_length: int = option(1024, "longest training sequence in tokens (prompts are trimmed from the left)")
    seed: int = option(0, "seed of shuffling and LoRA initialisation")
    device: str = option("auto", "auto, cpu, cuda or mps")
    dtype: str = option("auto", "auto (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16")
    threads: int | None = option(None, "CPU threads for the model (default: the cores this process may use)")
    quiet: bool = option(False, "no progress bar")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lora_r", "max_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise UserError("threads must be at least 1")
        if not self.lr > 0:
            raise UserError("lr must be positive")


@dataclass
class EvaluateConfig:
    model: str | None = option(None, "model or fine-tuned adapter directory (default: the embedded model)",
                             positional=True, nargs="?")
    data: str = option("", "test records")
    task: str = option("instruction", "task preset or task file")
    input_field: str | None = option(None, "input field or template")
    output_field: str | None = option(None, "answer field")
    instruction: str | None = option(None, "instruction (default: the task's)")
    metric: str | None = option(None, "metric (default: the task's)")
    generate_limit: int | None = option(None, "score generated answers on the first N records only (loss uses all)")
    max_new_tokens: int | None = option(None, "longest generated answer (default: the task's)")
    batch_size: int = option(16, "sequences per forward pass")
    max_length: int = option(1024, "longest prompt + answer for the loss")
    out: str | None = option(None, "directory for evaluation.json and predictions.jsonl (default: MODEL/eval)")
    device: str = option("auto", "auto, cpu, cuda or mps")
    dtype: str = option("auto", "auto, float32, bfloat16")
    threads: int | None = option(None, "CPU threads for the model (default: the cores this process may use)")
    quiet: bool = option(False, "no progress bar")

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_length", "max_new_tokens", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if self.generate_limit is not None and self.generate_limit < 0:
            raise UserError("generate-limit must be >= 0")


# --- bench: select, fine-tune and evaluate, cell by cell ------------------------------------------------

SELECT, FINETUNE, EVALUATE = "select", "finetune", "evaluate"  # the commands a bench cell runs
_COMMANDS = {SELECT: SelectConfig, FINETUNE: FinetuneConfig, EVALUATE: EvaluateConfig}
_STAGES = {SELECT: "selection", FINETUNE: "fine-tuning", EVALUATE: "evaluation"}


def passed_on(name: str, *commands: str, help: str | None = None) -> Any:
    """A bench option that is option `name` of `commands` (select, finetune, evaluate): its default and
    help are that option's, so each is declared once, beside the code that uses it."""
    owners = [next(f for f in fields(_COMMANDS[c]) if f.name == name) for c in commands]
    if any(f.default != owners[0].default for f in owners):
        raise TypeError(f"{name}: {', '.join(commands)} disagree on its default")
    text = help
    if text is None:  # the stage's own words, saying which stage an option of only some stages tunes
        text = owners[0].metadata["help"]
        if len(commands) < len(_COMMANDS):
            text = f"{' and '.join(_STAGES[c] for c in commands)}: {text}"
    return field(default=owners[0].default, metadata={"help": text, "passed_on": {c: name for c in commands}})


@dataclass
class BenchConfig:
    """The bench's own options, and the options it passes on to each stage (`passed_on`). The field names
    are the flags and the keys of protocol.json, so they stay as they are (`select_max_new_tokens`)."""

    pool: str = option("", "the pool to select from")
    test: str = option("", "the test set")
    out: str = option("", "benchmark directory (cells accumulate here; rerun to continue)")
    task: str = passed_on("task", SELECT, FINETUNE, EVALUATE)
    input_field: str | None = passed_on("input_field", SELECT, FINETUNE, EVALUATE)
    output_field: str | None = passed_on("output_field", SELECT, FINETUNE, EVALUATE)
    methods: list[str] = option((), "methods", repeat=True, help_from="datawhisperer.harness.command_configs:methods_help")
    budgets: list[str] = option(("0.05", "0.1"), "budgets: fractions of the pool or numbers of examples; one or more",
                                repeat=True)
    val: str | None = passed_on("val", SELECT, help="target-task examples the selectors are given (select's --val)")
    drop: float = passed_on("drop", SELECT)
    strata: int = passed_on("strata", SELECT)
    score_weight: float = passed_on("score_weight", SELECT)
    balance: str = passed_on("balance", SELECT)
    composition_field: str | None = option(None, "a record field to tally in every subset (its values' shares go "
                                           "into results.md), e.g. a marker of broken or off-task records")
    seeds: list[int] = option((0, 1, 2), "seeds (selection for seeded methods, fine-tuning for all); one or more",
                            repeat=True)
    model: str | None = passed_on("model", FINETUNE, EVALUATE, help="the model fine-tuned and evaluated "
                                  "(default: the embedded SmolLM2)")
    scorer_model: str | None = option(None, "the model that selects (default: --model); a smaller one is the "
                                    "paper's weak-to-strong setting")
    pool_limit: int | None = option(None, "use the first N pool records")
    generate_limit: int | None = passed_on("generate_limit", EVALUATE)
    n_demos: int = passed_on("n_demos", SELECT)
    n_queries: int = passed_on("n_queries", SELECT)
    select_max_new_tokens: int | None = passed_on("max_new_tokens", SELECT)
    scoring: str = passed_on("scoring", SELECT)
    epochs: int = passed_on("epochs", FINETUNE)
    lr: float = passed_on("lr", FINETUNE)
    batch_size: int = passed_on("batch_size", FINETUNE)
    lora_r: int = passed_on("lora_r", FINETUNE)
    max_length: int = passed_on("max_length", FINETUNE, EVALUATE, help="longest training / loss sequence in tokens")
    eval_max_new_tokens: int | None = passed_on("max_new_tokens", EVALUATE)
    eval_batch_size: int = passed_on("batch_size", EVALUATE)
    full: bool = option(True, "also fine-tune on the full pool (needed for STR)")
    select_only: bool = option(False, "run the selections only (the fine-tunes in a later sitting)")
    device: str = passed_on("device", SELECT, FINETUNE, EVALUATE)
    threads: int | None = passed_on("threads", SELECT, FINETUNE, EVALUATE, help="CPU threads for the models "
                                    "(default: the cores this process may use)")
    quiet: bool = passed_on("quiet", SELECT, FINETUNE, EVALUATE, help="no progress bars or [bench] lines")

    def __post_init__(self) -> None:
        from ..methods import bench_names

        self.methods, self.budgets, self.seeds = list(self.methods), list(self.budgets), [int(s) for s in self.seeds]
        self.methods = self.methods or bench_names()
        for raw in self.budgets:
            parse_budget(raw)
        for method in self.methods:
            parse_method(method)
        if not self.pool or not self.test or not self.out:
            raise UserError("bench needs --pool, --test and --out")
        # every passed-on option is checked now, by its stage's rules, not when the first cell needs it
        self._build(SELECT)
        self.finetune_config(seed=0)
        self.evaluate_config()

    def select_config(self, method: str, seed: int, data: str, out: str) -> SelectConfig:
        """One selection run of `method` from `data` into `out`; a method that draws nothing at random
        selects once, with seed 0. A run the bench was stopped in resumes where it stopped."""
        parsed = parse_method(method)
        return self._build(SELECT, data=data, out=out, model=self.scorer_model or self.model, method=parsed.base,
                           seed=seed if parsed.seeded else 0, rounds=parsed.rounds, resume=True,
                           strategy=parsed.strategy, target_filter=parsed.target_filter,
                           **({"estimator": parsed.estimator} if parsed.estimator else {}))

    def finetune_config(self, seed: int) -> FinetuneConfig:
        """The fine-tune of one cell (its examples come from the selection, not from a file)."""
        return self._build(FINETUNE, seed=seed)

    def evaluate_config(self) -> EvaluateConfig:
        """The evaluation of every fine-tuned model, and of the base model zero-shot, on --test."""
        return self._build(EVALUATE, data=self.test)

    def _build(self, command: str, **extra: Any) -> Any:
        values = {f.metadata["passed_on"][command]: getattr(self, f.name) for f in fields(self)
                  if command in f.metadata.get("passed_on", {})}
        try:
            return _COMMANDS[command](**{**values, **extra})
        except UserError as exc:  # the stage names its own option; the user typed the bench's flag
            message = str(exc)
            for f in fields(self):
                name = f.metadata.get("passed_on", {}).get(command)
                if name and name != f.name:
                    message = re.sub(rf"(?<![\w-]){name.replace('_', '-')}(?![\w-])", f.name.replace("_", "-"),
                                     message)
            raise UserError(message) from None


class BenchMethod(NamedTuple):
    base: str  # a selection method's registry name
    weighting: str | None  # Data Whisperer's demonstration weighting (the paper estimator); None otherwise
    rounds: int
    estimator: str | None = None  # Data Whisperer's estimator (estimators.py); None for a baseline
    strategy: str = "top"  # how the budget is filled from the run's scores (strategies.py)
    target_filter: str = "auto"  # a name ending in -unfiltered: off (ontask.py)

    @property
    def run_name(self) -> str:
        """The selection run this method reads: the weightings share one run per round count."""
        if self.weighting is not None:
            return f"{self.base}-r{self.rounds}"
        return f"{self.base}-{self.estimator}" if self.estimator else self.base

    @property
    def seeded(self) -> bool:
        """Draws at random, so selects once per seed (else once for every seed)."""
        from ..methods import METHODS

        return METHODS.get(self.base).seeded


def parse_method(name: str) -> BenchMethod:
    """The one parser of bench method names, asking each registry entry: 'datawhisperer-debiased-r3' ->
    ('datawhisperer', 'debiased', 3), 'datawhisperer-calibrated' -> the calibrated estimator, 'ifd' ->
    ('ifd', None, 1); a trailing '-<strategy>' fills the budget with that strategy
    ('datawhisperer-calibrated-stratified', 'rds-diverse'); a last '-unfiltered' turns the target filter off."""
    from ..methods import METHODS, bench_names
    from ..strategies import STRATEGIES

    base, _, last = name.rpartition("-")
    if base and last == "unfiltered" and not base.endswith("-unfiltered"):
        return parse_method(base)._replace(target_filter="off")
    if base and last in STRATEGIES and not base.endswith("-unfiltered"):  # one spelling: the strategy, then -unfiltered
        return parse_method(base)._replace(strategy=last)
    for method in METHODS.names():
        parts = METHODS.get(method).parse_bench_name(name)
        if parts is not None:
            return BenchMethod(**parts)
    raise UserError(unknown_name_message("method", name, sorted(bench_names())))


def methods_help() -> str:
    """`bench --methods`' help, from the registries."""
    from ..methods import bench_names
    from ..strategies import STRATEGIES

    return (f"methods: {', '.join(bench_names())} (datawhisperer alone: the default configuration); Data "
            f"Whisperer's weightings also take -r<rounds>; any other name may end in -<strategy> "
            f"({', '.join(STRATEGIES.names())}; without one, top), then -unfiltered (with --val, pick from all records, "
            f"not only those like the --val examples); one or more (default: all)")


@dataclass
class ReportConfig:
    run_dir: str = option("", "a `select` output directory or a `bench` directory", positional=True)
    out: str | None = option(None, "HTML file to write (default: RUN_DIR/report.html)")
    examples: int = option(10, "how many top and bottom examples to show")
