"""`datawhisperer finetune`: LoRA fine-tuning with the same chat rendering as selection, loss on the
answer tokens only. A plain PyTorch loop over PEFT: nothing hidden, runs on CPU and GPU alike."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data import atomic_write_json
from ..errors import UserError
from ..extras import require
from ..threads import apply_threads
from .command_configs import FinetuneConfig
from .task_model import builder_for, encode_completion, load_for_training, load_task_data, seed_everything

MICRO_BATCH_TOKENS = 4096  # rows x width per forward pass: a batch of long records is cut, not held at once


def answer_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the answer tokens (labels != -100), the same as transformers' causal-LM loss (mean,
    or sum), but projecting to the vocabulary only from the first column that predicts an answer token."""
    first = int((labels != -100).any(dim=0).nonzero()[0])
    keep = torch.arange(max(first - 1, 0), labels.shape[1] - 1, device=input_ids.device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    targets = labels[:, keep + 1]
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=-100, reduction=reduction)


def micro_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive runs of a batch's rows whose padded size (rows x longest) stays within `budget` tokens (a
    row longer than that alone); a batch within it is one run, so its step is what it was without the cut."""
    runs: list[list[int]] = []
    for row, length in enumerate(lengths):
        if runs and (len(runs[-1]) + 1) * max(length, *(lengths[r] for r in runs[-1])) <= budget:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs


def padded(batch: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, labels) of encoded rows, right-padded; labels only on the answer tokens."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, answer_start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, answer_start: len(ids)] = torch.tensor(ids[answer_start:])
        mask[row, : len(ids)] = 1
    return input_ids, mask, labels


def batch_step(model, batch: list[tuple[list[int], int]], pad: int, device) -> float:
    """Backpropagate the batch's mean answer-token loss, one micro-batch at a time (each micro-batch's token sum
    over the whole batch's answer tokens, so the gradient is the whole batch's); returns that loss."""
    runs = micro_batches([len(ids) for ids, _ in batch], MICRO_BATCH_TOKENS)
    answer_tokens = sum(len(ids) - start for ids, start in batch)
    total = 0.0
    for run in runs:
        tensors = [t.to(device) for t in padded([batch[r] for r in run], pad)]
        if len(runs) == 1:  # the mean itself: a batch that fits steps exactly as it did before the cut existed
            loss = answer_loss(model, *tensors)
        else:
            loss = answer_loss(model, *tensors, "sum") / answer_tokens
        loss.backward()
        total += float(loss.detach())
    return total


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Random batches of similar lengths (less padding): shuffle, sort within windows of 8 batches,
    cut into batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = 8 * batch_size
    batches = []
    for begin in range(0, len(order), window):
        chunk = sorted(order[begin: begin + window], key=lambda i: lengths[i])
        batches += [chunk[k: k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def train_lora(model, tokenizer, builder, examples, config: FinetuneConfig, device) -> tuple[object, dict]:
    """Wrap `model` with LoRA adapters and train them; returns (peft model, stats)."""
    from peft import LoraConfig, get_peft_model
    from transformers import get_linear_schedule_with_warmup

    generator = seed_everything(config.seed)
    model.train()
    peft_model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.05,
                                                  target_modules="all-linear", task_type="CAUSAL_LM"))
    encoded = [encode_completion(tokenizer, builder, e, config.max_length) for e in examples]
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=total_steps)
    pad = tokenizer.pad_token_id
    losses: list[float] = []
    bar = tqdm(total=total_steps, disable=config.quiet, desc="fine-tuning", unit="step", dynamic_ncols=True)
    start = time.perf_counter()
    for _ in range(config.epochs):
        for batch_ids in length_grouped_batches([len(ids) for ids, _ in encoded], config.batch_size, generator):
            losses.append(batch_step(peft_model, [encoded[i] for i in batch_ids], pad, device))
            torch.nn.utils.clip_grad_norm_(peft_model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    peft_model.eval()
    stats = {"finetune_seconds": round(time.perf_counter() - start, 3), "examples": len(encoded),
             "steps": total_steps, "first_loss": losses[0] if losses else None,
             "final_loss": sum(losses[-steps_per_epoch:]) / max(1, len(losses[-steps_per_epoch:])),
             "train_tokens": sum(len(ids) for ids, _ in encoded) * config.epochs}
    return peft_model, stats


def finetune(config: FinetuneConfig) -> dict:
    if not config.out:
        raise UserError("give --out for the adapter")
    require("peft", command="finetune")
    threads = apply_threads(config.threads)
    data = load_task_data(config.data, config.task, config.input_field, config.output_field, config.instruction)
    model, tokenizer, device, name = load_for_training(config.model, config.device, config.dtype,
                                                       log=(lambda m: None) if config.quiet else print)
    builder = builder_for(tokenizer, data.instruction)
    peft_model, stats = train_lora(model, tokenizer, builder, data.examples, config, device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"base_model": name, "config": asdict(config), "threads": threads, **stats}
    atomic_write_json(out / "finetune.json", info)
    if not config.quiet:
        print(f"Fine-tuned on {stats['examples']} examples for {config.epochs} epochs ({stats['steps']} steps) in "
              f"{stats['finetune_seconds']:.1f}s; final loss {stats['final_loss']:.3f}. Adapter in {out} "
              f"(evaluate it with: datawhisperer evaluate {out} --data TEST).")
    return info
