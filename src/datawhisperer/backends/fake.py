"""A deterministic backend with no model: for tests and dry runs of the whole pipeline.

It renders prompts with a real Jinja chat template, counts whitespace tokens, answers each query
by echoing it (or by a caller's `answer_fn`), and gives each demonstration an attention mass that
depends only on its text and slot.
"""

from __future__ import annotations

import hashlib
import re

import jinja2
import numpy as np

from ..config import resolve_layer
from ..prompts import EpisodePrompt
from .base import EpisodeResult

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


class FakeTokenizer:
    """Just enough of a tokenizer for PromptBuilder: a chat template and apply_chat_template."""

    def __init__(self, chat_template: str | None = CHATML) -> None:
        self.chat_template = chat_template
        self.bos_token = None
        self._env = jinja2.Environment(keep_trailing_newline=True)

    def apply_chat_template(self, messages, chat_template=None, tokenize=False, add_generation_prompt=False):
        template = self._env.from_string(chat_template or self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=self.bos_token)


def _stable_unit(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def echo_answer(suffix: str) -> str:
    """The query's own text: the suffix up to the end of its turn."""
    return re.split(r"<\|im_end\|>|\nOutput:", suffix)[0].strip()


class FakeBackend:
    name = "fake"

    def __init__(self, model: str | None = None, layer: int | None = None, max_length: int | None = None,
                 num_layers: int = 4, answer_fn=echo_answer, chat_template: str | None = CHATML, **_ignored):
        self.tokenizer = FakeTokenizer(chat_template)
        self.num_layers = num_layers
        self.layer = resolve_layer(layer, num_layers)
        self.max_length = max_length or 100_000
        self.answer_fn = answer_fn
        self.description = {"model": "fake", "num_layers": num_layers, "layer": self.layer, "device": "none"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _attention(self, prompt: EpisodePrompt, n_rows: int) -> tuple[np.ndarray, list[int]]:
        tokens = [max(1, self.count_tokens(prompt.prefix[lo:hi])) for lo, hi in prompt.demo_spans]
        per_token = [0.5 + _stable_unit(prompt.prefix[lo:hi]) + 0.1 * slot
                     for slot, (lo, hi) in enumerate(prompt.demo_spans)]
        mass = np.array([[p * n for p, n in zip(per_token, tokens)]] * n_rows, dtype=np.float64)
        return mass, tokens

    def run_episode(self, prompt: EpisodePrompt, layer: int, max_new_tokens: int,
                    stop: tuple[str, ...] = ()) -> EpisodeResult:
        mass, tokens = self._attention(prompt, len(prompt.suffixes))
        texts = [self.answer_fn(suffix) for suffix in prompt.suffixes]
        return EpisodeResult(mass, tokens, texts=texts, prompt_tokens=self.count_tokens(prompt.prefix))

    def run_episodes(self, prompts: list[EpisodePrompt], layer: int, max_new_tokens: int,
                     stop: tuple[str, ...] = ()) -> list[EpisodeResult]:
        return [self.run_episode(p, layer, max_new_tokens, stop) for p in prompts]

    def score_answers_batch(self, prompts: list[EpisodePrompt], answers: list[list[str]], layer: int,
                            max_answer_tokens: int | None = None) -> list[EpisodeResult]:
        return [self.score_answers(p, a, layer, max_answer_tokens) for p, a in zip(prompts, answers)]

    def score_answers(self, prompt: EpisodePrompt, answers: list[str], layer: int,
                      max_answer_tokens: int | None = None) -> EpisodeResult:
        if max_answer_tokens:
            answers = [" ".join(a.split()[:max_answer_tokens]) for a in answers]
        mass, tokens = self._attention(prompt, len(prompt.suffixes))
        scores = [0.01 + 0.98 * _stable_unit(prompt.prefix + suffix + answer)
                  for suffix, answer in zip(prompt.suffixes, answers)]
        return EpisodeResult(mass, tokens, token_scores=scores, token_logprobs=[float(np.log(s)) for s in scores],
                             prompt_tokens=self.count_tokens(prompt.prefix))

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """A deterministic stand-in: -(words) x a hash-derived per-word loss."""
        results = []
        for context, continuation in requests:
            n = max(1, self.count_tokens(continuation))
            results.append((-n * (0.5 + _stable_unit(context + "|" + continuation)), n))
        return results
