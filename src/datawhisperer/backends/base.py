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
    truncated: list[bool] | None = None  # per suffix (generation): stopped by max_new_tokens, not by end of turn
    prompt_tokens: int = 0


@runtime_checkable
class Backend(Protocol):
    name: str
    tokenizer: Any  # has apply_chat_template (used by PromptBuilder)
    num_layers: int
    max_length: int
    description: dict

    def count_tokens(self, text: str) -> int: ...

    def run_episode(self, prompt: EpisodePrompt, layer: int, max_new_tokens: int,
                    stop: tuple[str, ...] = ()) -> EpisodeResult:
        """Greedy answers for every suffix after the shared prefix, with the layer's demo attention."""

    def run_episodes(self, prompts: list[EpisodePrompt], layer: int, max_new_tokens: int,
                     stop: tuple[str, ...] = ()) -> list[EpisodeResult]:
        """Several episodes in one batch; each result must equal what run_episode gives for it alone."""

    def score_answers(self, prompt: EpisodePrompt, answers: list[str], layer: int,
                      max_answer_tokens: int | None = None) -> EpisodeResult:
        """Teacher-forced: each suffix followed by its gold answer (its first max_answer_tokens tokens);
        mean token probability, same attention."""

    def score_answers_batch(self, prompts: list[EpisodePrompt], answers: list[list[str]], layer: int,
                            max_answer_tokens: int | None = None) -> list[EpisodeResult]:
        """score_answers for several episodes in one batch."""

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """For each (context, continuation): the continuation's summed log-probability and token count."""


BACKENDS: Registry = Registry("backend")
BACKENDS.register("hf", "datawhisperer.backends.hf:HFBackend")
BACKENDS.register("fake", "datawhisperer.backends.fake:FakeBackend")


def load_backend(name: str, **kwargs) -> Backend:
    return BACKENDS.get(name)(**kwargs)
