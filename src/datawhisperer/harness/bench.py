"""`datawhisperer bench`: select with each method, fine-tune on each subset, evaluate, compare.

Every cell (one selection, one fine-tune + evaluation, the full pool, zero-shot) writes its result
file atomically when it finishes; a rerun skips finished cells, so a long benchmark completes over
several sittings. Seeded methods select once per seed; deterministic ones once.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from .. import ontask
from ..balance import balance_groups, concrete_balance
from ..data import atomic_write_json, atomic_write_text, load_table, table_from_records
from ..errors import UserError
from ..extras import require
from ..fingerprint import content_hash
from ..methods import METHODS
from ..rundir import describe_differences
from ..selection import Selection, parse_budget
from ..strategies import needs_embeddings
from ..threads import apply_threads
from .agreement import method_scores, selection_dir
from .command_configs import BenchConfig, parse_method
from .evaluate import evaluate_model
from .finetune import train_lora
from .tables import POOL_TOKENS, write_results
from .task_model import builder_for, encode_completion, load_for_training, load_task_data

# What a cell's record of its configuration lacked before the key existed, and what it meant then.
ADDED_RESOLVED = {"target_filter": "off"}

# What a sitting may change without making its cells incomparable with the ones already on disk.
PER_SITTING = ("out", "methods", "budgets", "seeds", "full", "device", "quiet", "eval_batch_size", "select_only",
               "threads")


def _comparable(settings: dict, data: dict) -> dict:
    """Data by content, not by path: the same files under another path are the same benchmark."""
    return {**{k: v for k, v in settings.items() if k not in data}, **{f"{k} (content)": v for k, v in data.items()}}


def _with_new_defaults(saved: dict) -> dict:
    """A protocol saved before an option existed measured with that option's default."""
    defaults = {f.name: f.default for f in fields(BenchConfig) if f.name not in PER_SITTING}
    return {**{k: v for k, v in defaults.items() if not isinstance(v, (list, tuple))}, **saved}


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        if not config.select_only:  # found now, not after the first selection
            require("peft", "matplotlib", command="bench")
        self.threads = apply_threads(config.threads)
        if not Path(config.pool).exists():
            raise UserError(f"--pool {config.pool} does not exist")
        answers = [e.answer for e in load_task_data(config.pool, config.task, config.input_field,
                                                    config.output_field).examples][: config.pool_limit or None]
        # a protocol holds the balance its pool came to (on, answer-length, off), never a rule that may change
        self.config = config = replace(config, balance=concrete_balance(answers, config.balance))
        self.out = Path(config.out)
        self.protocol = self._check_protocol(answers)
        self.pool_path = self._pool_file()
        self.train = load_task_data(str(self.pool_path), config.task, config.input_field, config.output_field)
        self.test = load_task_data(config.test, config.task, config.input_field, config.output_field)
        self.log = (lambda m: None) if config.quiet else (lambda m: print(m, flush=True))

    def _check_protocol(self, answers: list[str]) -> dict:
        """Refuse to add cells measured under other settings or data to a benchmark directory."""
        settings = {k: v for k, v in asdict(self.config).items() if k not in PER_SITTING}
        files = [name for name in ("pool", "test", "val") if settings[name]]
        for name in files:
            if not Path(settings[name]).exists():
                raise UserError(f"--{name} {settings[name]} does not exist")
        data = {name: content_hash(settings[name]) for name in files}
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "protocol.json"
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            saved_settings = {"balance": "off", **saved["settings"]}  # saved before --balance existed: no groups
            if saved_settings["balance"] == "auto":  # saved before auto meant answer-length fifths
                saved_settings["balance"] = concrete_balance(answers, "auto", saved_before_length_auto=True)
            before, now = _comparable(_with_new_defaults(saved_settings), saved["data"]), _comparable(settings, data)
            if before != now:
                raise UserError(f"{self.out} holds a benchmark run with other settings "
                                f"({describe_differences(before, now)}): use another --out, or the same "
                                "settings to continue it")
        else:
            atomic_write_json(path, {"settings": settings, "data": data})
        return settings

    def _pool_file(self) -> Path:
        """The pool as used: a copy of the first N records when --pool-limit is set."""
        if not self.config.pool_limit:
            return Path(self.config.pool)
        path = self.out / "pool.jsonl"
        if not path.exists():
            records = load_table(self.config.pool).records[: self.config.pool_limit]
            atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return path

    # --- selection -------------------------------------------------------------------------------------

    def selection(self, method: str, seed: int) -> tuple[Selection, float]:
        """The selection a method's cells pick from, and its seconds; seeded methods select once per seed. A
        strategy that needs embeddings a finished run lacks resumes it to compute only those."""
        parsed = parse_method(method)
        run = selection_dir(self.out, parsed, seed)
        # the target filter resolved as `select` resolves it, so that the subsets below pick as its own would
        config = replace(self.config.select_config(method, seed, data=str(self.pool_path), out=str(run.path)),
                         target_filter=self.target_filter(parsed))
        lacks_embeddings = run.embeddings()[0] is None or (self.config.val and run.embeddings()[1] is None)
        if not run.finished() or (needs_embeddings(config, METHODS.get(parsed.base)) and lacks_embeddings):
            self.log(f"[bench] selecting with {parsed.run_name} (seed {seed if parsed.seeded else '-'})")
            from ..runner import select

            select(config)
        info = run.info()
        pool, targets = run.embeddings()
        groups = balance_groups([e.answer for e in self.train.examples], config.balance)
        selection = Selection(table_from_records(self.train.records), method_scores(run, parsed),
                              np.zeros(len(self.train.examples)), info, pool, targets, parsed.strategy,
                              config.strategy_options, seed, groups)
        # a selection finished over several sittings costs what each sitting spent on it
        seconds = float(info["selection_seconds"]) + float(info.get("resumed_episode_seconds", 0.0)) \
            + float(info.get("resumed_part_seconds", 0.0))
        return selection, seconds

    def target_filter(self, parsed) -> str:
        """'on' or 'off': the method name's setting, resolved as `select` resolves it."""
        return ontask.resolve(parsed.target_filter, bool(self.config.val), METHODS.get(parsed.base))

    # --- fine-tune + evaluate ----------------------------------------------------------------------------

    def train_and_evaluate(self, indices: list[int], seed: int) -> dict:
        config = self.config
        model, tokenizer, device, model_name = load_for_training(config.model, config.device, log=lambda m: None)
        finetune_config = config.finetune_config(seed)
        examples = [self.train.examples[i] for i in indices]
        peft_model, stats = train_lora(model, tokenizer, builder_for(tokenizer, self.train.instruction), examples,
                                       finetune_config, device)
        merged = peft_model.merge_and_unload()
        metrics, _ = self.evaluate(merged, tokenizer, device)
        return {"model": model_name, **metrics, **stats}

    def pool_tokens(self) -> None:
        """The tokens a full-pool fine-tune trains on (all epochs), in pool_tokens.json: without a full-pool cell,
        STR is estimated from the cells' own fine-tune speed (tables.py)."""
        path = self.out / POOL_TOKENS
        if path.exists():
            return
        _, tokenizer, _, _ = load_for_training(self.config.model, "cpu", log=lambda m: None)
        builder = builder_for(tokenizer, self.train.instruction)
        config = self.config.finetune_config(seed=0)
        tokens = sum(len(encode_completion(tokenizer, builder, e, config.max_length)[0]) for e in self.train.examples)
        atomic_write_json(path, {"train_tokens": tokens * config.epochs, "examples": len(self.train.examples)})

    def evaluate(self, model, tokenizer, device) -> tuple[dict, list]:
        ev = self.config.evaluate_config()
        return evaluate_model(model, tokenizer, device, self.test, ev.generate_limit,
                              ev.max_new_tokens or self.test.task.max_new_tokens, ev.batch_size, ev.max_length,
                              progress=not ev.quiet)

    def cell(self, path: Path, compute, resolved: dict | None = None) -> dict:
        result_file = path / "result.json"
        if result_file.exists():
            result = json.loads(result_file.read_text())
            recorded = {**ADDED_RESOLVED, **result["resolved"]} if "resolved" in result else resolved
            if resolved and recorded != resolved:  # a name whose meaning has changed
                raise UserError(f"{path} was measured as {recorded}, which its name now means "
                                f"{resolved}: move it away or use another --out")
            return result
        path.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = compute()
        result["cell_seconds"] = round(time.perf_counter() - start, 3)
        atomic_write_json(result_file, result)
        write_results(self.out, self.protocol)
        return result

    def zero_shot(self) -> dict:
        def compute() -> dict:
            self.log("[bench] zero-shot evaluation")
            model, tokenizer, device, _ = load_for_training(self.config.model, self.config.device, log=lambda m: None)
            metrics, _ = self.evaluate(model, tokenizer, device)
            return metrics

        return self.cell(self.out / "zero_shot", compute)

    def full(self, seed: int) -> dict:
        def compute() -> dict:
            self.log(f"[bench] full pool, seed {seed}")
            return {"seed": seed, **self.train_and_evaluate(list(range(len(self.train.examples))), seed)}

        return self.cell(self.out / "full" / f"s{seed}", compute)

    def method_cell(self, method: str, budget: str, seed: int) -> dict:
        def compute() -> dict:
            selection, selection_seconds = self.selection(method, seed)
            chosen = selection.chosen(budget)
            self.log(f"[bench] {method} budget {budget} seed {seed}: fine-tuning on {len(chosen)} examples")
            tally = {} if not self.config.composition_field else {"composition": composition(
                [self.train.records[i] for i in chosen], self.config.composition_field)}
            return {"method": method, "resolved": resolved, "budget": parse_budget(budget), "seed": seed,
                    "selection_seconds": selection_seconds, "selected": chosen, **tally,
                    **self.train_and_evaluate(chosen, seed)}

        parsed = parse_method(method)
        resolved = {**parsed._asdict(), "target_filter": self.target_filter(parsed)}
        return self.cell(self.out / "cells" / f"{method}-b{budget}-s{seed}", compute, resolved)

    def run(self) -> None:
        if self.config.select_only:
            for seed in self.config.seeds:
                for method in self.config.methods:
                    self.selection(method, seed)
            self.log("[bench] selections done")
            return
        write_results(self.out, self.protocol)
        self.pool_tokens()
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
        write_results(self.out, self.protocol)
        self.log(f"[bench] done: {self.out / 'results.md'}")


def composition(records: list[dict], name: str) -> dict[str, int]:
    """How many of the records hold each value of a field (its absence counts as the value None)."""
    counts: dict[str, int] = {}
    for record in records:
        key = json.dumps(record.get(name))
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def bench(config: BenchConfig) -> None:
    Bench(config).run()
