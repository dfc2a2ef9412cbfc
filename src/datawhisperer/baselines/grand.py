"""GraNd (Paul et al., 2021): the norm of the loss gradient of each example at the pretrained model.
Large norms mark examples the model finds hard; they are selected first."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..harness.common import encode_completion


def grand_scores(context) -> np.ndarray:
    backend, builder = context.backend, context.builder
    model, tokenizer = backend.model, backend.tokenizer
    params = [p for p in model.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    scores = np.zeros(len(context.examples))
    try:
        for i, example in enumerate(tqdm(context.examples, desc="grand", unit="example", dynamic_ncols=True,
                                         disable=context.options.get("quiet", False))):
            # the sequence fine-tuning trains on: an over-long prompt loses its start, the answer start stays aligned
            ids, start = encode_completion(tokenizer, builder, example, backend.max_length)
            start = max(1, min(start, len(ids) - 1))  # at least one answer token carries the loss
            input_ids = torch.tensor([ids], device=backend.device)
            labels = input_ids.clone()
            labels[:, :start] = -100
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                model(input_ids=input_ids, labels=labels).loss.backward()
            squared = sum(float(p.grad.float().pow(2).sum()) for p in params if p.grad is not None)
            scores[i] = squared ** 0.5
    finally:
        model.zero_grad(set_to_none=True)
        for p in params:
            p.requires_grad_(False)
    return scores
