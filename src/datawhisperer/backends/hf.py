"""The transformers backend: greedy answers after a shared demonstration prefix, with the chosen
layer's attention read during the same prefill (see attention.py).

Per episode: one forward pass over the prefix (instruction + demonstrations) fills a KV cache;
the cache is repeated for the suffixes, which are prefilled together (padding sits between the
prefix and each suffix, so every suffix ends at the batch's last position); then a plain greedy
loop decodes, dropping rows as they finish.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass

import torch

from .. import attention
from ..errors import UserError
from ..models import load_config, load_model, model_files, num_layers_of, resolve_layer, resolve_model
from ..prompts import EpisodePrompt
from .base import EpisodeResult
from .causal_lm import (
    HiddenStates,
    continuation_logprobs,
    end_token_ids,
    gradient_norms,
    pad_id_of,
    pick_device,
    pick_dtype,
)
from .model_config import read_config, sliding_window_of, usable_length
from .packing import answer_scores, logits_only_at, pack
from .tokens import EncodedEpisode, common_prefix_length, completion_ids, encode_episode

LOGLIKELIHOOD_BATCH = 8  # sequences per forward pass in loglikelihood


class HFBackend:
    """The `Backend` interface (base.py) over a transformers causal LM; `model`, `device`, `pad_id`, `eos_ids`
    and `timing` are this backend's own, for its tests and benchmarks/speed.py."""

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
        self.sliding_window = sliding_window_of(config)
        self.max_length = usable_length(config, max_length)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        if preloaded is None:
            self.model, self.tokenizer = load_model(files, self.dtype)
        self.model.to(device=self.device, dtype=self.dtype).eval()
        self.model.set_attn_implementation(attention.implementation_for(self.model))
        if not self.tokenizer.is_fast:
            raise UserError("the model's tokenizer has no fast (Rust) version; token offsets are needed")
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"  # renamed in 5.x
        self.pad_id = pad_id_of(self.tokenizer)
        self.eos_ids = set(end_token_ids(self.model, self.tokenizer))
        self.timing = {"prefill_seconds": 0.0, "prefill_tokens": 0, "decode_seconds": 0.0, "decode_steps": 0}
        self.description = {"model": self.source_name, "architecture": type(self.model).__name__,
                            "num_layers": self.num_layers, "layer": self.layer, "device": str(self.device),
                            "dtype": str(self.dtype).removeprefix("torch."), "max_length": self.max_length,
                            "parameters": sum(p.numel() for p in self.model.parameters()),
                            **({"sliding_window": self.sliding_window} if self.sliding_window else {})}

    @staticmethod
    def preflight(model: str | None = None, layer: int | None = None, max_length: int | None = None,
                  **_ignored) -> None:
        """Fail fast, before any weights load or any output directory is touched: a model that cannot be found,
        a layer outside it, a --max-length beyond its sliding window."""
        config = read_config(resolve_model(model))
        resolve_layer(layer, num_layers_of(config))
        usable_length(config, max_length)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # --- episodes ---------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _prefill(self, encoded: list[EncodedEpisode]) -> _Prefilled:
        """Prefixes once each, then every suffix of every episode together, capturing the layer's attention.

        Row layout: [left padding, prefix of its episode, padding, suffix]; the mask hides the padding and
        positions count real tokens only, so each row computes what it would alone.
        """
        started = time.perf_counter()
        width_prefix = max(len(e.prefix) for e in encoded)
        n_episodes = len(encoded)
        pre_ids = torch.full((n_episodes, width_prefix), self.pad_id, dtype=torch.long)
        pre_mask = torch.zeros((n_episodes, width_prefix), dtype=torch.long)
        pre_pos = torch.zeros((n_episodes, width_prefix), dtype=torch.long)
        for e, episode in enumerate(encoded):
            n = len(episode.prefix)
            pre_ids[e, width_prefix - n:] = torch.tensor(episode.prefix)
            pre_mask[e, width_prefix - n:] = 1
            pre_pos[e, width_prefix - n:] = torch.arange(n)
        cache = _new_cache(self.model)
        self.model(pre_ids.to(self.device), attention_mask=pre_mask.to(self.device),
                   position_ids=pre_pos.to(self.device), use_cache=True, logits_to_keep=1,
                   **{self._cache_kwarg: cache})
        owner = [e for e, episode in enumerate(encoded) for _ in episode.suffixes]  # episode of each row
        if owner != list(range(n_episodes)):
            cache.batch_select_indices(torch.tensor(owner, device=self.device))
        flat = [ids for episode in encoded for ids in episode.suffixes]
        width = max(len(ids) for ids in flat)
        rows = len(flat)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.cat([pre_mask[owner], torch.zeros((rows, width), dtype=torch.long)], dim=1)
        positions = torch.zeros((rows, width), dtype=torch.long)
        query_rows = torch.zeros((rows, width))
        n_demos = max(len(e.demo_spans) for e in encoded)
        column_map = torch.zeros((rows, width_prefix, n_demos))
        for row, ids in enumerate(flat):
            episode = encoded[owner[row]]
            prefix_len = len(episode.prefix)
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width_prefix + width - len(ids):] = 1
            positions[row, width - len(ids):] = torch.arange(prefix_len, prefix_len + len(ids))
            query_rows[row, width - len(ids):] = 1.0
            for d, (lo, hi) in enumerate(episode.demo_spans):
                column_map[row, width_prefix - prefix_len + lo: width_prefix - prefix_len + hi, d] = 1.0
        request = attention.CaptureRequest(self.layer, column_map, query_rows)
        with attention.capture(request):
            out = self.model(input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=True, logits_to_keep=1,
                             **{self._cache_kwarg: cache})
        mass = request.mass.cpu().double().numpy()
        results = []
        for e, episode in enumerate(encoded):
            mine = [r for r in range(rows) if owner[r] == e]
            results.append(EpisodeResult(mass[mine][:, : len(episode.demo_spans)],
                                         [hi - lo for lo, hi in episode.demo_spans], prompt_tokens=episode.length))
        self.timing["prefill_seconds"] += time.perf_counter() - started
        self.timing["prefill_tokens"] += sum(r.prompt_tokens for r in results)
        return _Prefilled(out.logits, cache, mask, positions[:, -1], owner, results)

    def generate(self, prompts: list[EpisodePrompt], max_new_tokens: int,
                 stop: tuple[str, ...] = ()) -> list[EpisodeResult]:
        """Greedy answers for several episodes in one batch (each row computes what it would alone)."""
        encoded = [encode_episode(self.tokenizer, p) for p in prompts]
        results: list[EpisodeResult] = []
        for batch in self._window_batches(encoded, max_new_tokens):
            state = self._prefill(batch)
            texts, truncated = self._greedy(state.logits[:, -1], state.cache, state.mask.to(self.device),
                                            state.last_positions.to(self.device), max_new_tokens, stop)
            for e, result in enumerate(state.results):
                result.texts = [t for t, owner in zip(texts, state.owner) if owner == e]
                result.truncated = [t for t, owner in zip(truncated, state.owner) if owner == e]
            results.extend(state.results)
        return results

    def _window_batches(self, encoded: list[EncodedEpisode], max_new_tokens: int) -> list[list[EncodedEpisode]]:
        """With a sliding window, batches whose padded rows (prefix, suffix, answer) stay inside the window, so
        that it never binds (every episode alone already fits: see usable_length); otherwise one batch."""
        if not self.sliding_window:
            return [encoded]
        batches: list[list[EncodedEpisode]] = []
        for episode in encoded:
            candidate = [*batches[-1], episode] if batches else [episode]
            width = max(len(e.prefix) for e in candidate) + max(len(s) for e in candidate for s in e.suffixes)
            if batches and width + max_new_tokens <= self.max_length:
                batches[-1] = candidate
            else:
                batches.append([episode])
        return batches

    @torch.inference_mode()
    def _greedy(self, logits, cache, mask, last_pos, max_new_tokens: int,
                stop: tuple[str, ...]) -> tuple[list[str], list[bool]]:
        """Greedy answers and, per row, whether max_new_tokens cut it before an end token or stop string."""
        started = time.perf_counter()
        batch = logits.shape[0]
        generated: list[list[int]] = [[] for _ in range(batch)]
        truncated = [True] * batch
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
                if finished:
                    truncated[row] = False
                else:
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
        texts = [_cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stop) for ids in generated]
        return texts, truncated

    @torch.inference_mode()
    def score(self, prompts: list[EpisodePrompt], answers: list[list[str]],
              max_answer_tokens: int | None = None, embed: bool = False) -> list[EpisodeResult]:
        """Each suffix followed by its gold answer, teacher-forced: the mean probability (and mean log-probability)
        of the answer's tokens, from the same pass that yields the attention (which counts query tokens only).
        Episodes are packed one per row (see packing.py). max_answer_tokens: score only the answer's first
        tokens (as generation only sees that many). embed: also each suffix's mean hidden state at the layer
        (over its query and answer tokens), from the same pass."""
        started = time.perf_counter()
        episodes = [encode_episode(self.tokenizer, prompt, episode_answers, max_answer_tokens)
                    for prompt, episode_answers in zip(prompts, answers)]
        batch = pack(episodes, self.pad_id)
        request = attention.CaptureRequest(self.layer, batch.column_map, batch.segment_weights)
        hidden = HiddenStates(self.model, self.layer) if embed else contextlib.nullcontext()
        with attention.capture(request), attention.packed(batch.layout), logits_only_at(self.model,
                                                                                         batch.answer_columns), hidden:
            logits = self.model(batch.input_ids.to(self.device), attention_mask=batch.mask.to(self.device),
                                position_ids=batch.positions.to(self.device), use_cache=False, logits_to_keep=0).logits
        mass = request.mass.cpu().double().numpy()
        results = []
        for row, (episode, scores) in enumerate(zip(episodes, answer_scores(logits, batch.answers))):
            results.append(EpisodeResult(mass[row, : len(episode.suffixes), : len(episode.demo_spans)],
                                         [hi - lo for lo, hi in episode.demo_spans], prompt_tokens=episode.length,
                                         token_scores=[p for p, _, _ in scores],
                                         token_logprobs=[lp for _, lp, _ in scores],
                                         answer_logprobs=[tokens for _, _, tokens in scores]))
            if embed:
                results[-1].embeddings = [hidden.value[row, start:stop].float().mean(0).cpu().numpy()
                                          for start, stop in batch.layout.segments[row]]
        self.timing["prefill_seconds"] += time.perf_counter() - started
        self.timing["prefill_tokens"] += sum(e.length for e in episodes)
        return results

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """Summed log-probability of each continuation after its context (an over-long sequence loses its end)."""
        sequences = []
        for context, continuation in requests:
            ctx = self.tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
            full = self.tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            start = max(1, common_prefix_length(ctx, full))  # the first token has nothing to predict it
            sequences.append((full[: self.max_length], min(start, self.max_length)))
        return continuation_logprobs(self.model, sequences, self.pad_id, self.device, LOGLIKELIHOOD_BATCH)

    def gradient_norms(self, requests: list[tuple[str, str]]) -> list[float]:
        """GraNd's norms on the sequences fine-tuning trains on (an over-long context loses its start)."""
        sequences = [completion_ids(self.tokenizer, context, continuation, self.max_length)
                     for context, continuation in requests]
        return gradient_norms(self.model, sequences, self.device)


@dataclass
class _Prefilled:
    logits: torch.Tensor
    cache: object
    mask: torch.Tensor
    last_positions: torch.Tensor
    owner: list[int]  # the episode of each batch row
    results: list[EpisodeResult]


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

