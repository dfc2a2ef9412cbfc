"""Packed episodes for likelihood scoring: one row per episode, one forward pass, no KV cache.

A row holds the episode's prefix and then every suffix (query + gold answer) back to back. A 4D
boolean mask lets each suffix see the prefix and itself only, and position ids restart after the
prefix for every suffix, so each suffix computes exactly what it would after the prefix alone. Against
prefix-then-suffixes with a repeated cache, this drops the padding between suffixes and the second
call, and every matrix product sees all the episode's tokens at once (better throughput on CPUs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..attention import PackedLayout
from .tokens import EncodedEpisode


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [rows, width]
    positions: torch.Tensor  # [rows, width]
    mask: torch.Tensor  # [rows, 1, width, width] bool, True where a position may attend
    column_map: torch.Tensor  # [rows, width, n_demos] 0/1: the key positions of each demonstration
    segment_weights: torch.Tensor  # [rows, width, n_suffixes] 1.0 at the query tokens of each suffix
    answer_columns: torch.Tensor  # [rows, n_answer_tokens] the columns whose logits predict answer tokens
    answers: list[list[list[int]]]  # per row, per suffix: the gold answer tokens, in answer_columns order
    layout: PackedLayout  # the same blocks as the mask, for attention that skips what is masked


def pack(episodes: list[EncodedEpisode], pad_id: int) -> PackedBatch:
    """Lay episodes out one per row (right-padded); padding positions attend to themselves only."""
    rows, width = len(episodes), max(e.length for e in episodes)
    n_demos = max(1, max(len(e.demo_spans) for e in episodes))
    n_suffixes = max(len(e.suffixes) for e in episodes)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    positions = torch.zeros((rows, width), dtype=torch.long)
    mask = torch.zeros((rows, 1, width, width), dtype=torch.bool)
    mask[:, 0] = torch.eye(width, dtype=torch.bool)  # keeps padding rows finite (a fully masked row gives NaN)
    column_map = torch.zeros((rows, width, n_demos))
    segment_weights = torch.zeros((rows, width, n_suffixes))
    columns: list[list[int]] = []
    answers: list[list[list[int]]] = []
    layout = PackedLayout(width, [len(e.prefix) for e in episodes], [])
    for row, episode in enumerate(episodes):
        p = len(episode.prefix)
        input_ids[row, :p] = torch.tensor(episode.prefix, dtype=torch.long)
        positions[row, :p] = torch.arange(p)
        mask[row, 0, :p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
        for d, (lo, hi) in enumerate(episode.demo_spans):
            column_map[row, lo:hi, d] = 1.0
        start, row_columns, row_answers, segments = p, [], [], []
        for s, (ids, n_query) in enumerate(zip(episode.suffixes, episode.query_lengths)):
            stop = start + len(ids)
            input_ids[row, start:stop] = torch.tensor(ids, dtype=torch.long)
            positions[row, start:stop] = torch.arange(p, p + len(ids))
            mask[row, 0, start:stop, :p] = True
            mask[row, 0, start:stop, start:stop] = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
            segment_weights[row, start: start + n_query, s] = 1.0
            row_columns.extend(range(start + n_query - 1, stop - 1))  # logits at column c predict token c + 1
            row_answers.append(ids[n_query:])
            segments.append((start, stop))
            start = stop
        layout.segments.append(segments)
        columns.append(row_columns)
        answers.append(row_answers)
    n_answer = max(1, max(map(len, columns)))
    answer_columns = torch.zeros((rows, n_answer), dtype=torch.long)
    for row, row_columns in enumerate(columns):
        answer_columns[row, : len(row_columns)] = torch.tensor(row_columns, dtype=torch.long)
    return PackedBatch(input_ids, positions, mask, column_map, segment_weights, answer_columns, answers, layout)


@contextlib.contextmanager
def logits_only_at(model, columns: torch.Tensor) -> Iterator[None]:
    """Project only the given columns ([rows, k]) to the vocabulary: the projection is the costliest matmul
    per token, and a pre-hook on the output embeddings keeps whatever the model does after it (softcapping,
    scaling) intact. Call the model with logits_to_keep=0 so it hands every position to the head."""
    head = model.get_output_embeddings()

    def gather(module, args):
        hidden = args[0]
        index = columns.to(hidden.device).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return (hidden.gather(1, index), *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def answer_scores(logits: torch.Tensor, answers: list[list[list[int]]]) -> list[list[tuple[float, float, list[float]]]]:
    """Per row and suffix: (mean probability, mean log-probability, each token's log-probability) of the gold
    answer's tokens. logits: [rows, k, vocab], the columns of PackedBatch.answer_columns."""
    scores = []
    for row, row_answers in enumerate(answers):
        targets = [t for ids in row_answers for t in ids]
        picked = torch.zeros(0)
        if targets:
            logprobs = logits[row, : len(targets)].float().log_softmax(-1)
            picked = logprobs.gather(-1, torch.tensor(targets, device=logprobs.device).unsqueeze(-1))[:, 0].cpu()
        row_scores, start = [], 0
        for ids in row_answers:
            if not ids:
                row_scores.append((0.0, float("-inf"), []))
                continue
            part = picked[start: start + len(ids)]
            row_scores.append((float(part.exp().mean()), float(part.mean()), part.tolist()))
            start += len(ids)
        scores.append(row_scores)
    return scores
