"""A deterministic backend with no model: for tests and dry runs of the whole pipeline.

It renders prompts with a real Jinja chat template and counts whitespace tokens. Each query is
answered with the answer of one demonstration of its prompt, chosen by a hash of prefix and query
(or by a caller's `answer_fn`): with labels from a small set some answers are right, so episode
scores vary, and they change whenever the demonstrations, their order or the query change. Each
demonstration gets an attention mass that depends only on its text, its slot and the query.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import jinja2
import numpy as np

from ..models import resolve_layer
from ..prompts import PLAIN_TEMPLATE, EpisodePrompt
from .base import EpisodeResult

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

_USER, _ANSWER = "\u27e6fake-user\u27e7", "\u27e6fake-answer\u27e7"
_NUMBERED_QUERY = re.compile(r"^\[(\d+)\] ", re.MULTILINE)  # multi mode's "[k] query" lines


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


def _stable_index(text: str, n: int) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16) % n


def echo_answer(suffix: str) -> str:
    """The query's own text: the suffix up to the end of its turn."""
    return re.split(r"<\|im_end\|>|\nOutput:", suffix)[0].strip()


def cut_answer(text: str, max_new_tokens: int, stop: tuple[str, ...] = ()) -> tuple[str, bool]:
    """What generation would keep: up to the first stop string, at most max_new_tokens whitespace
    tokens (then truncated=True), as a model stops at its token limit."""
    for s in stop:
        if s and s in text:
            text = text[:text.index(s)]
    tokens = list(re.finditer(r"\S+", text))
    if len(tokens) > max_new_tokens:
        return text[:tokens[max_new_tokens - 1].end()], True
    return text, False


def word_vector(text: str, dim: int = 16) -> np.ndarray:
    """A stand-in for a hidden state: hashed word counts, so equal texts embed alike and similar ones close."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[_stable_index(word, dim)] += 1.0
    return vector


class FakeBackend:
    name = "fake"

    def __init__(self, model: str | None = None, layer: int | None = None, max_length: int | None = None,
                 num_layers: int = 4, answer_fn: Callable[[str], str] | None = None,
                 chat_template: str | None = CHATML, **_ignored):
        self.tokenizer = FakeTokenizer(chat_template)
        self.num_layers = num_layers
        self.layer = resolve_layer(layer, num_layers)
        self.max_length = max_length or 100_000
        self.answer_fn = answer_fn
        self.description = {"model": "fake", "num_layers": num_layers, "layer": self.layer, "device": "none"}
        self._markers = self._assistant_markers()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _assistant_markers(self) -> tuple[str, str] | None:
        """The text the template writes between a user turn and an assistant answer, and after the answer."""
        messages = [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER}]
        try:
            rendered = self.tokenizer.apply_chat_template(messages, chat_template=self.tokenizer.chat_template
                                                          or PLAIN_TEMPLATE)
            before, after = rendered.split(_ANSWER)
            return before.split(_USER)[1], after
        except Exception:  # an odd template: fall back to each span's last line
            return None

    def demo_answers(self, prompt: EpisodePrompt) -> list[str]:
        """The answer of each demonstration: its span's text after the template's assistant opener."""
        answers = []
        for lo, hi in prompt.demo_spans:
            text = prompt.prefix[lo:hi]
            if self._markers and self._markers[0] in text:
                opener, closer = self._markers
                text = text[text.rindex(opener) + len(opener):]
                if closer.strip() and text.rstrip().endswith(closer.strip()):  # spans that include the closer
                    text = text.rstrip()[:-len(closer.strip())]
            else:
                text = text.strip().splitlines()[-1] if text.strip() else ""
            answers.append(text.strip())
        return answers

    def _answer(self, prompt: EpisodePrompt, suffix: str) -> str:
        if self.answer_fn is not None:
            return self.answer_fn(suffix)
        answers = self.demo_answers(prompt)
        if not answers:
            return echo_answer(suffix)
        numbers = _NUMBERED_QUERY.findall(suffix)
        if numbers:  # multi mode: one numbered answer per numbered query
            return "\n".join(f"[{k}] {answers[_stable_index(prompt.prefix + suffix + k, len(answers))]}"
                             for k in numbers)
        return answers[_stable_index(prompt.prefix + "\x00" + suffix, len(answers))]

    def _attention(self, prompt: EpisodePrompt) -> tuple[np.ndarray, list[int]]:
        demos = [prompt.prefix[lo:hi] for lo, hi in prompt.demo_spans]
        tokens = [max(1, self.count_tokens(demo)) for demo in demos]
        # per query row: a part fixed by the demo and its slot, and a part that depends on the query
        mass = np.array([[(0.5 + _stable_unit(demo) + 0.1 * slot + 0.5 * _stable_unit(demo + "\x00" + suffix)) * n
                          for slot, (demo, n) in enumerate(zip(demos, tokens))]
                         for suffix in prompt.suffixes], dtype=np.float64).reshape(len(prompt.suffixes), len(demos))
        return mass, tokens

    def generate(self, prompts: list[EpisodePrompt], max_new_tokens: int,
                 stop: tuple[str, ...] = ()) -> list[EpisodeResult]:
        results = []
        for prompt in prompts:
            mass, tokens = self._attention(prompt)
            cut = [cut_answer(self._answer(prompt, suffix), max_new_tokens, stop) for suffix in prompt.suffixes]
            results.append(EpisodeResult(mass, tokens, texts=[text for text, _ in cut],
                                         truncated=[flag for _, flag in cut],
                                         prompt_tokens=self.count_tokens(prompt.prefix)))
        return results

    def score(self, prompts: list[EpisodePrompt], answers: list[list[str]],
              max_answer_tokens: int | None = None, embed: bool = False) -> list[EpisodeResult]:
        results = []
        for prompt, episode_answers in zip(prompts, answers):
            if max_answer_tokens:
                episode_answers = [" ".join(a.split()[:max_answer_tokens]) for a in episode_answers]
            mass, tokens = self._attention(prompt)
            per_token = [[float(np.log(0.01 + 0.98 * _stable_unit(f"{prompt.prefix}{suffix}|{k}|{word}")))
                          for k, word in enumerate(answer.split() or [""])]
                         for suffix, answer in zip(prompt.suffixes, episode_answers)]
            scores = [0.01 + 0.98 * _stable_unit(prompt.prefix + suffix + answer)
                      for suffix, answer in zip(prompt.suffixes, episode_answers)]
            results.append(EpisodeResult(mass, tokens, token_scores=scores,
                                         token_logprobs=[float(np.log(s)) for s in scores],
                                         answer_logprobs=per_token, prompt_tokens=self.count_tokens(prompt.prefix)))
            if embed:
                results[-1].embeddings = [word_vector(f"{suffix} {answer}")
                                          for suffix, answer in zip(prompt.suffixes, episode_answers)]
        return results

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """A deterministic stand-in: -(words) x a hash-derived per-word loss."""
        results = []
        for context, continuation in requests:
            n = max(1, self.count_tokens(continuation))
            results.append((-n * (0.5 + _stable_unit(context + "|" + continuation)), n))
        return results

    def gradient_norms(self, requests: list[tuple[str, str]]) -> list[float]:
        """A deterministic stand-in: (1 + words of the continuation) x a hash-derived factor."""
        return [(1 + self.count_tokens(continuation)) * (0.5 + _stable_unit("grad|" + context + "|" + continuation))
                for context, continuation in requests]
