"""The configurations of the harness commands: dataclasses validated on construction, whose fields
are the commands' flags. Kept free of heavy imports so that `--help` and bad flags answer at once."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _opt, parse_budget
from ..errors import UserError
from ..scoring import WEIGHTINGS


@dataclass
class FinetuneConfig:
    data: str = _opt("", "training records (any format `select` reads)", positional=True)
    out: str = _opt("", "directory for the LoRA adapter and finetune.json")
    model: str | None = _opt(None, "base model (default: the embedded SmolLM2-135M-Instruct)")
    task: str = _opt("instruction", "task preset or task file (fields and instruction)")
    input_field: str | None = _opt(None, "input field or template")
    output_field: str | None = _opt(None, "answer field")
    instruction: str | None = _opt(None, "instruction (default: the task's)")
    epochs: int = _opt(5, "passes over the data (the paper: 5)")
    lr: float = _opt(1e-4, "peak learning rate, linear decay (the paper: 1e-4)")
    batch_size: int = _opt(8, "examples per optimizer step (the paper: 8)")
    lora_r: int = _opt(16, "LoRA rank (alpha = 2r, all linear layers)")
    max_length: int = _opt(1024, "longest training sequence in tokens (prompts are trimmed from the left)")
    seed: int = _opt(0, "seed of shuffling and LoRA initialisation")
    device: str = _opt("auto", "auto, cpu, cuda or mps")
    dtype: str = _opt("auto", "auto (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16")
    quiet: bool = _opt(False, "no progress bar")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lora_r", "max_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:
            raise UserError("lr must be positive")


@dataclass
class EvaluateConfig:
    model: str | None = _opt(None, "model or fine-tuned adapter directory (default: the embedded model)",
                             positional=True, nargs="?")
    data: str = _opt("", "test records")
    task: str = _opt("instruction", "task preset or task file")
    input_field: str | None = _opt(None, "input field or template")
    output_field: str | None = _opt(None, "answer field")
    instruction: str | None = _opt(None, "instruction (default: the task's)")
    metric: str | None = _opt(None, "metric (default: the task's)")
    generate_limit: int | None = _opt(None, "score generated answers on the first N records only (loss uses all)")
    max_new_tokens: int | None = _opt(None, "longest generated answer (default: the task's)")
    batch_size: int = _opt(16, "sequences per forward pass")
    max_length: int = _opt(1024, "longest prompt + answer for the loss")
    out: str | None = _opt(None, "directory for evaluation.json and predictions.jsonl (default: MODEL/eval)")
    device: str = _opt("auto", "auto, cpu, cuda or mps")
    dtype: str = _opt("auto", "auto, float32, bfloat16")
    quiet: bool = _opt(False, "no progress bar")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError("batch-size must be at least 1")
        if self.generate_limit is not None and self.generate_limit < 0:
            raise UserError("generate-limit must be >= 0")


ALL_METHODS = ("datawhisperer-paper", "datawhisperer-uniform", "datawhisperer-debiased", "random", "perplexity",
               "ifd", "nuggets", "grand", "length")
SEEDED_BASELINES = {"random", "nuggets"}


@dataclass
class BenchConfig:
    pool: str = _opt("", "the pool to select from")
    test: str = _opt("", "the test set")
    out: str = _opt("", "benchmark directory (cells accumulate here; rerun to continue)")
    task: str = _opt("instruction", "task preset or task file")
    input_field: str | None = _opt(None, "input field or template")
    output_field: str | None = _opt(None, "answer field")
    methods: list[str] = _opt(ALL_METHODS, "methods: datawhisperer-<paper|uniform|debiased>[-r<rounds>], random, "
                              "perplexity, ifd, nuggets, grand, length; one or more", repeat=True)
    budgets: list[str] = _opt(("0.05", "0.1"), "budgets; one or more", repeat=True)
    seeds: list[int] = _opt((0, 1, 2), "seeds (selection for seeded methods, fine-tuning for all); one or more",
                            repeat=True)
    model: str | None = _opt(None, "the model fine-tuned and evaluated (default: the embedded SmolLM2)")
    scorer_model: str | None = _opt(None, "the model that selects (default: --model); a smaller one is the "
                                    "paper's weak-to-strong setting")
    pool_limit: int | None = _opt(None, "use the first N pool records")
    generate_limit: int | None = _opt(None, "score generated answers on the first N test records (loss uses all)")
    n_demos: int = _opt(5, "selection: demonstrations per episode")
    n_queries: int = _opt(3, "selection: queries per episode")
    select_max_new_tokens: int | None = _opt(None, "selection: longest answer (default: the task's)")
    scoring: str = _opt("generate", "selection: generate or likelihood")
    epochs: int = _opt(5, "fine-tuning epochs")
    lr: float = _opt(1e-4, "fine-tuning learning rate")
    batch_size: int = _opt(8, "fine-tuning batch size")
    lora_r: int = _opt(16, "LoRA rank")
    max_length: int = _opt(1024, "longest training / loss sequence")
    eval_max_new_tokens: int | None = _opt(None, "evaluation: longest generated answer (default: the task's)")
    eval_batch_size: int = _opt(16, "evaluation batch size")
    full: bool = _opt(True, "also fine-tune on the full pool (needed for STR)")
    device: str = _opt("auto", "auto, cpu, cuda or mps")
    quiet: bool = _opt(False, "less output")

    def __post_init__(self) -> None:
        self.methods, self.budgets, self.seeds = list(self.methods), list(self.budgets), [int(s) for s in self.seeds]
        for raw in self.budgets:
            parse_budget(raw)
        for method in self.methods:
            parse_method(method)
        if not self.pool or not self.test or not self.out:
            raise UserError("bench needs --pool, --test and --out")


def parse_method(name: str) -> tuple[str, str | None, int]:
    """'datawhisperer-debiased-r3' -> ('datawhisperer', 'debiased', 3); 'ifd' -> ('ifd', None, 1)."""
    if name.startswith("datawhisperer"):
        parts = name.split("-")[1:]
        rounds = 1
        if parts and parts[-1].startswith("r") and parts[-1][1:].isdigit():
            rounds = int(parts.pop()[1:])
        weighting = parts[0] if parts else "paper"
        WEIGHTINGS.get(weighting)
        return "datawhisperer", weighting, rounds
    from ..baselines import METHODS

    METHODS.get(name)
    return name, None, 1


@dataclass
class ReportConfig:
    run_dir: str = _opt("", "a `select` output directory or a `bench` directory", positional=True)
    out: str | None = _opt(None, "HTML file to write (default: RUN_DIR/report.html)")
    examples: int = _opt(10, "how many top and bottom examples to show")
