"""Tokenizing an episode exactly as its whole text tokenizes.

A prompt is a shared prefix and one suffix per sequence, but tokenizing the two apart is not the
tokenization of their join for every tokenizer (SentencePiece-style `▁` tokenizers prepend a space
marker to each piece; a word cut at the boundary merges differently). So each whole sequence is
tokenized once, and the shared prefix is the run of leading tokens that every sequence has in common
and that lies inside the prefix text. The model therefore sees, for every sequence, exactly
tokenizer(prefix + suffix [+ answer]).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..prompts import EpisodePrompt


@dataclass
class EncodedEpisode:
    prefix: list[int]
    demo_spans: list[tuple[int, int]]  # token spans of the demonstrations inside the prefix
    suffixes: list[list[int]]  # the tokens after the prefix: the query, then the answer when one is scored
    query_lengths: list[int]  # leading tokens of each suffix that belong to the query

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(map(len, self.suffixes))

    def sequence(self, k: int) -> list[int]:
        return self.prefix + self.suffixes[k]


def encode_episode(tokenizer, prompt: EpisodePrompt, answers: list[str] | None = None,
                   max_answer_tokens: int | None = None) -> EncodedEpisode:
    """Token ids of every sequence of an episode, split into the shared prefix and the suffixes.

    answers: one per suffix, joined as the template joins a demonstration's (`prompt.answer_lead`);
    max_answer_tokens keeps only the answer's first tokens."""
    texts = [prompt.prefix + suffix for suffix in prompt.suffixes]
    if answers is not None:
        texts = [text + prompt.answer_lead + answer for text, answer in zip(texts, answers)]
    encoded = [tokenizer(text, add_special_tokens=False, return_offsets_mapping=True) for text in texts]
    ids = [e["input_ids"] for e in encoded]
    ends = [[end for _, end in e["offset_mapping"]] for e in encoded]
    shared = min(map(len, ids))
    for other in ids[1:]:
        shared = min(shared, common_prefix_length(ids[0], other))
    while shared > 0 and ends[0][shared - 1] > len(prompt.prefix):  # a token straddling the prefix's end
        shared -= 1
    starts = [start for start, _ in encoded[0]["offset_mapping"][:shared]]
    demo_spans = []
    for lo, hi in prompt.demo_spans:  # tokens overlapping the demonstration's characters
        inside = [t for t in range(shared) if ends[0][t] > lo and starts[t] < hi]
        if not inside:
            raise ValueError(f"demonstration characters {lo}:{hi} have no token in the shared prefix")
        demo_spans.append((inside[0], inside[-1] + 1))
    suffixes, query_lengths = [], []
    for k, sequence in enumerate(ids):
        query_end = len(prompt.prefix) + len(prompt.suffixes[k])
        # a token that holds any answer character is an answer token
        n_query = sum(1 for t in range(shared, len(sequence)) if ends[k][t] <= query_end)
        if answers is not None:
            n_query = max(1, n_query)  # the last query token predicts the first answer token
        suffix = sequence[shared:]
        if answers is not None and max_answer_tokens is not None:
            suffix = suffix[: n_query + max_answer_tokens]
        suffixes.append(suffix)
        query_lengths.append(n_query)
    return EncodedEpisode(ids[0][:shared], demo_spans, suffixes, query_lengths)


def completion_ids(tokenizer, context: str, continuation: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of context + continuation as one text, and where the continuation starts: the first token
    not shared with the context's own tokenization. Over max_length, the context loses its start (the
    continuation is what is scored or trained on)."""
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    start = common_prefix_length(context_ids, full_ids)
    if len(full_ids) > max_length:
        cut = len(full_ids) - max_length
        full_ids, start = full_ids[cut:], max(0, start - cut)
    return full_ids, start


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
