"""A plain causal LM in PyTorch, with no attention read: where it runs, when its answers end, how likely a
continuation is, how steep the loss of one is. Shared by the transformers backend and the harness (which
evaluates and fine-tunes models it loads with models.load_model), so neither reaches into the other."""

from __future__ import annotations

import torch

from ..errors import UserError


def pick_device(device: str) -> torch.device:
    """"auto": the current CUDA device if there is one, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """"auto": bfloat16 on CUDA, float32 elsewhere (CPUs are slow and imprecise in half precision)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def pad_id_of(tokenizer) -> int:
    """The token that fills padding: the tokenizer's pad, else its end of sequence, else 0 (always masked)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def end_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the generation config, the model config and the tokenizer may each
    declare one or a list (Llama-3 chat models end turns with <|eot_id|>, not the tokenizer's eos)."""
    declared = [getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                getattr(model.config, "eos_token_id", None),
                getattr(getattr(model.config, "text_config", None), "eos_token_id", None),
                tokenizer.eos_token_id]
    ids: list[int] = []
    for value in declared:
        for token in value if isinstance(value, (list, tuple)) else [value]:
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return ids


@torch.inference_mode()
def continuation_logprobs(model, sequences: list[tuple[list[int], int]], pad_id: int, device,
                          batch_size: int = 8, progress: str | None = None) -> list[tuple[float, int]]:
    """For each (token ids, start): the summed log-probability of ids[start:] and its length.
    Right-padded batches of similar lengths; `progress`: a progress bar's label."""
    from tqdm.auto import tqdm

    results: list[tuple[float, int]] = [(0.0, 0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    bar = tqdm(total=len(order), desc=progress, unit="example", dynamic_ncols=True, disable=progress is None)
    for begin in range(0, len(order), batch_size):
        rows = order[begin: begin + batch_size]
        width = max(len(sequences[i][0]) for i in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            tokens = sequences[i][0]
            ids[r, : len(tokens)] = torch.tensor(tokens)
            mask[r, : len(tokens)] = 1
        # logits only where a continuation token is predicted: the vocabulary projection is costly
        first = min(max(sequences[i][1], 1) - 1 for i in rows)
        keep = torch.arange(first, width - 1, device=device)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep).logits.float()
        targets = ids[:, first + 1:].to(device).unsqueeze(-1)
        logprobs = logits.log_softmax(-1).gather(-1, targets)[..., 0]
        for r, i in enumerate(rows):
            tokens, start = sequences[i]
            picked = logprobs[r, max(start, 1) - 1 - first: len(tokens) - 1 - first]
            results[i] = (float(picked.sum()), int(picked.numel()))
        bar.update(len(rows))
    bar.close()
    return results


def gradient_norms(model, sequences: list[tuple[list[int], int]], device) -> list[float]:
    """For each (token ids, start): the L2 norm, over every floating-point weight, of the gradient of the mean
    cross-entropy of ids[start:] (at least the last token carries the loss). The weights stay untouched."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    norms = []
    try:
        for ids, start in sequences:
            start = max(1, min(start, len(ids) - 1))
            input_ids = torch.tensor([ids], device=device)
            labels = input_ids.clone()
            labels[:, :start] = -100
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                model(input_ids=input_ids, labels=labels).loss.backward()
            squared = sum(float(p.grad.float().pow(2).sum()) for p in params if p.grad is not None)
            norms.append(squared ** 0.5)
    finally:
        model.zero_grad(set_to_none=True)
        for p in params:
            p.requires_grad_(False)
    return norms


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's stack of decoder layers: the longest ModuleList whose length is the configured depth."""
    depth = getattr(model.config, "num_hidden_layers", None) or getattr(
        getattr(model.config, "text_config", None), "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and (depth is None or len(m) == depth)]
    if not lists:
        raise UserError("cannot find this model's decoder layers to read its hidden states")
    return max(lists, key=len)


class HiddenStates:
    """The output hidden states of one decoder layer during a forward pass (a forward hook; nothing else of the
    model changes). `value` is [rows, width, hidden] after the pass."""

    def __init__(self, model, layer: int) -> None:
        self.module = decoder_layers(model)[layer]
        self.value: torch.Tensor | None = None
        self._handle = None

    def __enter__(self) -> HiddenStates:
        def keep(module, args, output):
            self.value = (output[0] if isinstance(output, tuple) else output).detach()

        self._handle = self.module.register_forward_hook(keep)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
