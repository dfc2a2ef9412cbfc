"""What fine-tuning, evaluation and the baselines share: task resolution and model loading."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backends.causal_lm import pick_device, pick_dtype
from ..backends.tokens import completion_ids
from ..data import load_table
from ..errors import UserError
from ..metrics import Metric, resolve_metric
from ..models import load_model, model_files
from ..prompts import PromptBuilder
from ..tasks import Example, FieldMap, TaskSpec, examples_from_records, load_task


@dataclass
class TaskData:
    task: TaskSpec
    examples: list[Example]
    records: list[dict]
    metric: Metric
    instruction: str


def load_task_data(path: str, task: str, input_field: str | None = None, output_field: str | None = None,
                   instruction: str | None = None, metric: str | None = None, limit: int | None = None) -> TaskData:
    spec = load_task(task)
    table = load_table(path)
    if len(table) == 0:
        raise UserError(f"{path} holds no records")
    records = table.records[:limit] if limit else table.records
    fields = FieldMap(input_field, output_field).with_task_defaults(spec)
    return TaskData(spec, examples_from_records(records, fields), records, resolve_metric(metric or spec.metric),
                    instruction or spec.instruction)


def load_for_training(model: str | None, device: str = "auto", dtype: str = "auto", log=print):
    """(model, tokenizer, device, name) with plain SDPA attention, ready for LoRA or evaluation."""
    files = model_files(model, log=log)
    torch_device = pick_device(device)
    model_obj, tokenizer = load_model(files, pick_dtype(dtype, torch_device), torch_device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model_obj, tokenizer, torch_device, files.name


def builder_for(tokenizer, instruction: str) -> PromptBuilder:
    return PromptBuilder(tokenizer, instruction, "single")


def encode_completion(tokenizer, builder: PromptBuilder, example: Example, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + completion, and where the completion starts (for answer-only loss)."""
    prompt, completion = builder.render_completion(example)
    return completion_ids(tokenizer, prompt, completion, max_length)  # keeps the answer, trims the prompt


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
