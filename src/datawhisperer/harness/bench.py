"""`datawhisperer bench`: select with each method, fine-tune on each subset, evaluate, compare.

Every cell (one selection, one fine-tune + evaluation, the full pool, zero-shot) writes its result
file atomically when it finishes; a rerun skips finished cells, so a long benchmark completes over
several sittings. Seeded methods select once per seed; deterministic ones once.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import EpisodeLog
from ..config import SelectConfig, _opt, budget_count, parse_budget
from ..data import atomic_write_json, load_table
from ..errors import UserError
from ..scoring import WEIGHTINGS, aggregate, ranking
from .common import load_for_training, load_task_data
from .evaluate import evaluate_model
from .finetune import FinetuneConfig, train_lora
from .tables import write_results

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
                              "perplexity, ifd, nuggets, grand, length; repeatable", repeat=True)
    budgets: list[str] = _opt(("0.05", "0.1"), "budgets; repeatable", repeat=True)
    seeds: list[int] = _opt((0, 1, 2), "seeds (selection for seeded methods, fine-tuning for all); repeatable",
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


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.pool_path = self._pool_file()
        self.train = load_task_data(str(self.pool_path), config.task, config.input_field, config.output_field)
        self.test = load_task_data(config.test, config.task, config.input_field, config.output_field)
        self.log = (lambda m: None) if config.quiet else (lambda m: print(m, flush=True))

    def _pool_file(self) -> Path:
        """The pool as used: a copy of the first N records when --pool-limit is set."""
        if not self.config.pool_limit:
            return Path(self.config.pool)
        path = self.out / "pool.jsonl"
        if not path.exists():
            records = load_table(self.config.pool).records[: self.config.pool_limit]
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        return path

    # --- selection -------------------------------------------------------------------------------------

    def selection(self, method: str, seed: int) -> tuple[list[int], float]:
        """(ranking, selection seconds) of a method, selecting once per seed where the method is seeded."""
        base, weighting, rounds = parse_method(method)
        seeded = base == "datawhisperer" or base in SEEDED_BASELINES
        key = f"datawhisperer-r{rounds}" if base == "datawhisperer" else base
        directory = self.out / "selections" / (f"{key}-s{seed}" if seeded else key)
        run_file = directory / "run.json"
        done = run_file.exists() and json.loads(run_file.read_text()).get("status") == "finished"
        if not done:
            self.log(f"[bench] selecting with {key} (seed {seed if seeded else '-'})")
            from ..runner import select

            select(SelectConfig(
                data=str(self.pool_path), out=str(directory), task=self.config.task,
                input_field=self.config.input_field, output_field=self.config.output_field,
                model=self.config.scorer_model or self.config.model, method=base, seed=seed if seeded else 0,
                rounds=rounds, n_demos=self.config.n_demos, n_queries=self.config.n_queries,
                max_new_tokens=self.config.select_max_new_tokens, scoring=self.config.scoring,
                device=self.config.device, resume=base == "datawhisperer", overwrite=base != "datawhisperer",
                quiet=self.config.quiet))
        info = json.loads(run_file.read_text())
        if base == "datawhisperer":
            outcomes = EpisodeLog(directory / "episodes.jsonl").read(repair=False)
            scores = aggregate(outcomes, len(self.train.examples), weighting).scores
        else:
            scores = np.array([row["score"] if row["score"] is not None else np.nan
                               for row in map(json.loads, (directory / "scores.jsonl").read_text().splitlines())])
        return ranking(scores).tolist(), float(info["selection_seconds"])

    # --- fine-tune + evaluate ----------------------------------------------------------------------------

    def train_and_evaluate(self, indices: list[int], seed: int) -> dict:
        config = self.config
        model, tokenizer, device, _ = load_for_training(config.model, config.device, log=lambda m: None)
        finetune_config = FinetuneConfig(data="-", out="-", epochs=config.epochs, lr=config.lr,
                                         batch_size=config.batch_size, lora_r=config.lora_r,
                                         max_length=config.max_length, seed=seed, quiet=config.quiet)
        from .common import builder_for

        examples = [self.train.examples[i] for i in indices]
        peft_model, stats = train_lora(model, tokenizer, builder_for(tokenizer, self.train.instruction), examples,
                                       finetune_config, device)
        merged = peft_model.merge_and_unload()
        metrics, _ = evaluate_model(merged, tokenizer, device, self.test, config.generate_limit,
                                    config.eval_max_new_tokens or self.test.task.max_new_tokens,
                                    config.eval_batch_size, config.max_length, progress=not config.quiet)
        return {**metrics, **stats}

    def cell(self, path: Path, compute) -> dict:
        result_file = path / "result.json"
        if result_file.exists():
            return json.loads(result_file.read_text())
        path.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = compute()
        result["cell_seconds"] = round(time.perf_counter() - start, 3)
        atomic_write_json(result_file, result)
        write_results(self.out, asdict(self.config))
        return result

    def zero_shot(self) -> dict:
        def compute() -> dict:
            self.log("[bench] zero-shot evaluation")
            model, tokenizer, device, _ = load_for_training(self.config.model, self.config.device, log=lambda m: None)
            metrics, _ = evaluate_model(model, tokenizer, device, self.test, self.config.generate_limit,
                                        self.config.eval_max_new_tokens or self.test.task.max_new_tokens,
                                        self.config.eval_batch_size, self.config.max_length,
                                        progress=not self.config.quiet)
            return metrics

        return self.cell(self.out / "zero_shot", compute)

    def full(self, seed: int) -> dict:
        def compute() -> dict:
            self.log(f"[bench] full pool, seed {seed}")
            return {"seed": seed, **self.train_and_evaluate(list(range(len(self.train.examples))), seed)}

        return self.cell(self.out / "full" / f"s{seed}", compute)

    def method_cell(self, method: str, budget: str, seed: int) -> dict:
        def compute() -> dict:
            order, selection_seconds = self.selection(method, seed)
            count = budget_count(parse_budget(budget), len(self.train.examples))
            self.log(f"[bench] {method} budget {budget} seed {seed}: fine-tuning on {count} examples")
            chosen = order[:count]
            return {"method": method, "budget": float(budget), "seed": seed, "selection_seconds": selection_seconds,
                    "selected": chosen, **self.train_and_evaluate(chosen, seed)}

        return self.cell(self.out / "cells" / f"{method}-b{budget}-s{seed}", compute)

    def run(self) -> None:
        write_results(self.out, asdict(self.config))
        self.zero_shot()
        seeds = self.config.seeds
        if self.config.full and seeds:
            self.full(seeds[0])  # the STR denominator first
        for seed in seeds:
            for budget in self.config.budgets:
                for method in self.config.methods:
                    self.method_cell(method, budget, seed)
        if self.config.full:
            for seed in seeds[1:]:
                self.full(seed)
        write_results(self.out, asdict(self.config))
        self.log(f"[bench] done: {self.out / 'results.md'}")


def bench(config: BenchConfig) -> None:
    Bench(config).run()
