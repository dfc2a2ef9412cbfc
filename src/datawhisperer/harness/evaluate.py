"""`datawhisperer evaluate`: the task metric on greedy answers, and the mean cross-entropy of the
gold answers (the paper's objective; one teacher-forced pass per example, far less noisy).

It evaluates any loaded transformers model (a fine-tuned one handed over by `bench` too), so it works on the
model itself, with the plain-model operations the backend uses as well (backends/causal_lm.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backends.causal_lm import continuation_logprobs, end_token_ids, pad_id_of
from ..data import atomic_write_json, atomic_write_text
from ..errors import UserError
from ..extras import require
from ..threads import apply_threads
from .command_configs import EvaluateConfig
from .task_model import TaskData, builder_for, encode_completion, load_for_training, load_task_data


def answer_losses(model, tokenizer, builder, examples, batch_size: int, max_length: int, device,
                  progress: bool = False) -> list[float]:
    """Mean per-token cross-entropy of each gold answer after its zero-shot prompt."""
    sequences = [encode_completion(tokenizer, builder, e, max_length) for e in examples]
    sums = continuation_logprobs(model, sequences, pad_id_of(tokenizer), device, batch_size,
                                 progress="loss" if progress else None)
    return [-total / max(n, 1) for total, n in sums]


@torch.inference_mode()
def generate_answers(model, tokenizer, builder, examples, max_new_tokens: int, batch_size: int, device,
                     progress: bool = True) -> list[str]:
    """Greedy answers, left-padded batches of similar length."""
    prompts = [builder.build_zero_shot(e) for e in examples]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    answers = [""] * len(encoded)
    pad = pad_id_of(tokenizer)
    eos = end_token_ids(model, tokenizer)
    ends = set(eos)
    bar = tqdm(total=len(encoded), disable=not progress, desc="generating", unit="example", dynamic_ncols=True)
    for begin in range(0, len(order), batch_size):
        rows = order[begin: begin + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[r, width - len(encoded[i]):] = 1
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos or None)
        for r, i in enumerate(rows):
            tokens = out[r, width:].tolist()
            # an end token need not be a special token, so cut at it rather than rely on skipping specials
            stop = next((t for t, token in enumerate(tokens) if token in ends), len(tokens))
            answers[i] = tokenizer.decode(tokens[:stop], skip_special_tokens=True).strip()
        bar.update(len(rows))
    bar.close()
    return answers


def evaluate_model(model, tokenizer, device, data: TaskData, generate_limit: int | None, max_new_tokens: int,
                   batch_size: int, max_length: int, progress: bool = True) -> tuple[dict, list[dict]]:
    builder = builder_for(tokenizer, data.instruction)
    start = time.perf_counter()
    model.eval()
    losses = answer_losses(model, tokenizer, builder, data.examples, batch_size, max_length, device, progress)
    loss_seconds = time.perf_counter() - start
    limit = len(data.examples) if generate_limit is None else min(generate_limit, len(data.examples))
    generated = data.examples[:limit]
    answers = generate_answers(model, tokenizer, builder, generated, max_new_tokens, batch_size, device, progress)
    scores = [data.metric(a, e.answer) for a, e in zip(answers, generated)]
    numeric = [0.0 if s is None else float(s) for s in scores]  # an unparseable answer is wrong at test time
    predictions = [{"index": i, "prediction": a, "reference": e.answer, "score": s, "loss": losses[i]}
                   for i, (a, e, s) in enumerate(zip(answers, generated, scores))]
    metrics = {
        "score": round(100 * float(np.mean(numeric)), 4) if numeric else None,
        "loss": round(float(np.mean(losses)), 6),
        "n_loss": len(losses), "n_generate": limit,
        "unparseable": sum(s is None for s in scores),
        "mean_answer_words": round(float(np.mean([len(a.split()) for a in answers])), 3) if answers else None,
        "mean_reference_words": round(float(np.mean([len(e.answer.split()) for e in generated])), 3) if generated
        else None,
        "loss_seconds": round(loss_seconds, 3),
        "evaluate_seconds": round(time.perf_counter() - start, 3),
    }
    return metrics, predictions


def default_out(model: str | None) -> Path:
    """MODEL/eval for a model directory; for a hub id or a file, eval/<its name> here (a hub id is no path)."""
    if model and Path(model).is_dir():
        return Path(model) / "eval"
    name = Path(model).stem if model and Path(model).is_file() else (model or "embedded")
    return Path("eval") / name.replace("/", "--")


def evaluate(config: EvaluateConfig) -> dict:
    if not config.data:
        raise UserError("give the test records with --data")
    if config.model and (Path(config.model) / "adapter_config.json").exists():
        require("peft", command="evaluate of a fine-tuned adapter")
    threads = apply_threads(config.threads)
    data = load_task_data(config.data, config.task, config.input_field, config.output_field, config.instruction,
                          config.metric)
    model, tokenizer, device, name = load_for_training(config.model, config.device, config.dtype,
                                                       log=(lambda m: None) if config.quiet else print)
    metrics, predictions = evaluate_model(model, tokenizer, device, data, config.generate_limit,
                                          config.max_new_tokens or data.task.max_new_tokens, config.batch_size,
                                          config.max_length, progress=not config.quiet)
    out = Path(config.out) if config.out else default_out(config.model)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n"
                                                         for p in predictions))
    info = {"model": name, "data": config.data, "task": data.task.name, "metric": config.metric or data.task.metric,
            "threads": threads, **metrics}
    atomic_write_json(out / "evaluation.json", info)
    if not config.quiet:
        print(f"{name} on {config.data}: score {metrics['score']} ({info['metric']} x100, {metrics['n_generate']} "
              f"examples), loss {metrics['loss']:.4f} ({metrics['n_loss']} examples); written to {out}")
    return info
