"""The one interface every model backend implements (cf. lm-evaluation-harness's `LM`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..prompts import EpisodePrompt
from ..registry import Registry


@dataclass
class EpisodeResult:
    """What a backend returns for one episode.

    texts: one answer per suffix (generation), or None in likelihood scoring.
    token_scores: per suffix, the mean probability of the gold answer's tokens (likelihood scoring).
    demo_mass: [n_suffixes, n_demos] attention of the suffix tokens to each demonstration at the layer,
        summed over heads, query tokens and the demonstration's tokens.
    demo_tokens: the number of tokens of each demonstration.
    prompt_tokens: tokens processed in the prefill (prefix once + every suffix), for throughput figures.
    """

    demo_mass: np.ndarray
    demo_tokens: list[int]
    texts: list[str] | None = None
    token_scores: list[float] | None = None
    token_logprobs: list[float] | None = None  # per suffix, the gold answer's mean token log-probability
    answer_logprobs: list[list[float]] | None = None  # per suffix, the log-probability of each gold answer token
    embeddings: list[np.ndarray] | None = None  # per suffix, its mean hidden state at the layer (score, embed=True)
    truncated: list[bool] | None = None  # per suffix (generation): stopped by max_new_tokens, not by end of turn
    prompt_tokens: int = 0


@runtime_checkable
class Backend(Protocol):
    """A model as every caller sees it: the runner plays episodes with `generate` or `score`, the baselines use
    `score`, `loglikelihood` and `gradient_norms`. Every method takes a batch; the layer whose attention is
    read is chosen when the backend is built."""

    name: str
    tokenizer: Any  # has apply_chat_template (used by PromptBuilder) and, for real models, __call__
    layer: int  # the 0-based layer whose attention to the demonstrations is read
    num_layers: int
    max_length: int  # the longest sequence (prompt and answer) one row may hold
    description: dict  # what run.json records about the model

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompts: list[EpisodePrompt], max_new_tokens: int,
                 stop: tuple[str, ...] = ()) -> list[EpisodeResult]:
        """Per episode: greedy answers for every suffix after the shared prefix (`texts`, `truncated`), with the
        layer's attention to each demonstration. Each result equals what its episode yields alone."""

    def score(self, prompts: list[EpisodePrompt], answers: list[list[str]],
              max_answer_tokens: int | None = None, embed: bool = False) -> list[EpisodeResult]:
        """Per episode: each suffix followed by its gold answer (its first max_answer_tokens tokens), teacher-
        forced: `token_scores` and `token_logprobs`, with the same attention as `generate`; with `embed`, also
        `embeddings`: each suffix's mean hidden state at the layer over its query and answer tokens."""

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """For each (context, continuation): the continuation's summed log-probability and token count."""

    def gradient_norms(self, requests: list[tuple[str, str]]) -> list[float]:
        """For each (context, continuation): the norm of the gradient of the continuation's mean loss over every
        weight (GraNd); an over-long context loses its start."""


BACKENDS: Registry = Registry("backend")
BACKENDS.register("hf", "datawhisperer.backends.hf:HFBackend")
BACKENDS.register("fake", "datawhisperer.backends.fake:FakeBackend")


def load_backend(name: str, **kwargs) -> Backend:
    return BACKENDS.get(name)(**kwargs)
