"""The transformers backend: greedy answers after a shared demonstration prefix, with the chosen
layer's attention read during the same prefill (see attention.py).

Per episode: one forward pass over the prefix (instruction + demonstrations) fills a KV cache;
the cache is repeated for the suffixes, which are prefilled together (padding sits between the
prefix and each suffix, so every suffix ends at the batch's last position); then a plain greedy
loop decodes, dropping rows as they finish.
"""

from __future__ import annotations

import inspect
import time

import numpy as np
import torch

from .. import attention
from ..config import resolve_layer
from ..errors import UserError
from ..models import context_length_of, load_config, load_model, model_files, num_layers_of, resolve_model
from ..prompts import EpisodePrompt
from .base import EpisodeResult


def pick_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


class HFBackend:
    name = "hf"

    def __init__(self, model: str | None = None, device: str = "auto", dtype: str = "auto",
                 layer: int | None = None, max_length: int | None = None, log=print,
                 preloaded: tuple | None = None) -> None:
        if preloaded is not None:  # (model, tokenizer) built by the caller, e.g. tests
            self.model, self.tokenizer = preloaded
            self.source_name = type(self.model).__name__
            config = self.model.config
        else:
            files = model_files(model, log=log)
            self.source_name = files.name
            config = load_config(files)
        self.num_layers = num_layers_of(config)
        self.layer = resolve_layer(layer, self.num_layers)  # checked before any weights load
        context = context_length_of(config) or 4096
        self.max_length = min(max_length, context) if max_length else context
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        if preloaded is None:
            self.model, self.tokenizer = load_model(files, self.dtype)
        self.model.to(device=self.device, dtype=self.dtype).eval()
        self.model.set_attn_implementation(attention.ATTN_IMPLEMENTATION)
        if not self.tokenizer.is_fast:
            raise UserError("the model's tokenizer has no fast (Rust) version; token offsets are needed")
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"  # renamed in 5.x
        self.pad_id = self._pad_id()
        self.eos_ids = self._eos_ids()
        self.timing = {"prefill_seconds": 0.0, "prefill_tokens": 0, "decode_seconds": 0.0, "decode_steps": 0}
        self.description = {"model": self.source_name, "architecture": type(self.model).__name__,
                            "num_layers": self.num_layers, "layer": self.layer, "device": str(self.device),
                            "dtype": str(self.dtype).removeprefix("torch."), "max_length": self.max_length,
                            "parameters": sum(p.numel() for p in self.model.parameters())}

    @staticmethod
    def preflight(model: str | None = None, **_ignored) -> None:
        """Fail fast on a model that cannot be found, before any output directory is touched."""
        resolve_model(model)

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def _eos_ids(self) -> set[int]:
        ids = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config, self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            ids.update(value if isinstance(value, (list, tuple, set)) else [value] if value is not None else [])
        return {int(i) for i in ids}

    # --- tokenisation -------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode_prefix(self, prompt: EpisodePrompt) -> tuple[list[int], list[tuple[int, int]]]:
        encoded = self.tokenizer(prompt.prefix, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        starts = np.array([a for a, _ in offsets])
        ends = np.array([b for _, b in offsets])
        spans = []
        for lo, hi in prompt.demo_spans:  # tokens overlapping the demonstration's characters
            inside = np.nonzero((ends > lo) & (starts < hi))[0]
            spans.append((int(inside[0]), int(inside[-1]) + 1))
        return ids, spans

    # --- the episode --------------------------------------------------------------------------------

    @torch.inference_mode()
    def _prefill(self, prompt: EpisodePrompt, suffix_ids: list[list[int]], layer: int,
                 query_lengths: list[int] | None = None, all_logits: bool = False):
        """Prefix once, then all suffixes together, capturing the layer's demo attention.

        query_lengths: how many leading tokens of each suffix are query tokens whose attention counts
        (default: all of them).
        """
        started = time.perf_counter()
        prefix_ids, spans = self._encode_prefix(prompt)
        n_prefix, batch = len(prefix_ids), len(suffix_ids)
        cache = _new_cache(self.model)
        self.model(torch.tensor([prefix_ids], device=self.device), use_cache=True, logits_to_keep=1,
                   **{self._cache_kwarg: cache})
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        width = max(len(s) for s in suffix_ids)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, n_prefix + width), dtype=torch.long)
        mask[:, :n_prefix] = 1
        positions = torch.zeros((batch, width), dtype=torch.long)
        for row, ids in enumerate(suffix_ids):  # pad on the left of each suffix, after the prefix
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, n_prefix + width - len(ids):] = 1
            positions[row, width - len(ids):] = torch.arange(n_prefix, n_prefix + len(ids))
        column_map = torch.zeros(n_prefix, len(spans))
        for d, (lo, hi) in enumerate(spans):
            column_map[lo:hi, d] = 1.0
        rows = torch.zeros((batch, width))
        for row, ids in enumerate(suffix_ids):
            counted = len(ids) if query_lengths is None else query_lengths[row]
            rows[row, width - len(ids): width - len(ids) + counted] = 1.0
        request = attention.CaptureRequest(layer, column_map, rows)
        with attention.capture(request):
            out = self.model(input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=True, **{self._cache_kwarg: cache},
                             logits_to_keep=width if all_logits else 1)
        demo_tokens = [hi - lo for lo, hi in spans]
        prompt_tokens = n_prefix + sum(len(s) for s in suffix_ids)
        self.timing["prefill_seconds"] += time.perf_counter() - started
        self.timing["prefill_tokens"] += prompt_tokens
        return out.logits, cache, mask, positions[:, -1], request.mass.cpu().double().numpy(), demo_tokens, \
            prompt_tokens

    def run_episode(self, prompt: EpisodePrompt, layer: int, max_new_tokens: int,
                    stop: tuple[str, ...] = ()) -> EpisodeResult:
        suffix_ids = [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in prompt.suffixes]
        logits, cache, mask, last_pos, mass, demo_tokens, n_tokens = self._prefill(prompt, suffix_ids, layer)
        texts = self._greedy(logits[:, -1], cache, mask.to(self.device), last_pos.to(self.device),
                             max_new_tokens, stop)
        return EpisodeResult(mass, demo_tokens, texts=texts, prompt_tokens=n_tokens)

    @torch.inference_mode()
    def _greedy(self, logits, cache, mask, last_pos, max_new_tokens: int, stop: tuple[str, ...]) -> list[str]:
        started = time.perf_counter()
        batch = logits.shape[0]
        generated: list[list[int]] = [[] for _ in range(batch)]
        active = list(range(batch))  # original row of each live batch row
        next_tokens = logits.argmax(-1)
        for step in range(max_new_tokens):
            keep = []
            for live, row in enumerate(active):
                token = int(next_tokens[live])
                finished = token in self.eos_ids
                if not finished:
                    generated[row].append(token)
                    finished = bool(stop) and _hits_stop(self.tokenizer, generated[row], stop)
                if not finished:
                    keep.append(live)
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, last_pos, next_tokens = mask[index], last_pos[index], next_tokens[index]
                active = [active[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            last_pos = last_pos + 1
            out = self.model(next_tokens.unsqueeze(1), attention_mask=mask, position_ids=last_pos.unsqueeze(1),
                             use_cache=True, **{self._cache_kwarg: cache})
            next_tokens = out.logits[:, -1].argmax(-1)
            self.timing["decode_steps"] += 1
        self.timing["decode_seconds"] += time.perf_counter() - started
        return [_cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stop) for ids in generated]

    def score_answers(self, prompt: EpisodePrompt, answers: list[str], layer: int) -> EpisodeResult:
        """Each suffix followed by its gold answer, teacher-forced: the mean probability of the answer's
        tokens, from the same prefill that yields the attention (which counts the query tokens only)."""
        suffix_ids, answer_ids = [], []
        for suffix, answer in zip(prompt.suffixes, answers):
            query = self.tokenizer(suffix, add_special_tokens=False)["input_ids"]
            full = self.tokenizer(suffix + answer, add_special_tokens=False)["input_ids"]
            n_query = _common_prefix_length(query, full)
            suffix_ids.append(full)
            answer_ids.append((n_query, full[n_query:]))
        logits, _, _, _, mass, demo_tokens, n_tokens = self._prefill(
            prompt, suffix_ids, layer, query_lengths=[n for n, _ in answer_ids], all_logits=True)
        width = logits.shape[1]
        scores, logprobs = [], []
        for row, (ids, (n_query, gold)) in enumerate(zip(suffix_ids, answer_ids)):
            if not gold:
                scores.append(0.0)
                logprobs.append(float("-inf"))
                continue
            offset = width - len(ids)  # left padding of this row
            # logits at position p predict token p+1
            picked = logits[row, offset + n_query - 1: offset + len(ids) - 1].float().log_softmax(-1)
            token_logprobs = picked.gather(-1, torch.tensor(gold, device=picked.device).unsqueeze(-1))
            scores.append(float(token_logprobs.exp().mean()))
            logprobs.append(float(token_logprobs.mean()))
        return EpisodeResult(mass, demo_tokens, token_scores=scores, token_logprobs=logprobs, prompt_tokens=n_tokens)

    def loglikelihood(self, requests: list[tuple[str, str]], batch_size: int = 8) -> list[tuple[float, int]]:
        """Summed log-probability of each continuation after its context."""
        sequences = []
        for context, continuation in requests:
            ctx = self.tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
            full = self.tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            start = max(1, _common_prefix_length(ctx, full))  # the first token has nothing to predict it
            sequences.append((full[: self.max_length], min(start, self.max_length)))
        return continuation_logprobs(self.model, sequences, self.pad_id, self.device, batch_size)


@torch.inference_mode()
def continuation_logprobs(model, sequences: list[tuple[list[int], int]], pad_id: int, device,
                          batch_size: int = 8) -> list[tuple[float, int]]:
    """For each (token ids, start): the summed log-probability of ids[start:] and its length.
    Right-padded batches of similar lengths."""
    results: list[tuple[float, int]] = [(0.0, 0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
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
    return results


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _new_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _hits_stop(tokenizer, ids: list[int], stop: tuple[str, ...]) -> bool:
    tail = tokenizer.decode(ids[-16:], skip_special_tokens=True)
    return any(s in tail for s in stop)


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    for s in stop:
        if s in text:
            text = text[: text.index(s)]
    return text.strip()

