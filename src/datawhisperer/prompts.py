"""Rendering episodes with the tokenizer's own chat template.

An episode prompt is a shared prefix (instruction + demonstrations) and one suffix per
sequence: in `single` mode each query is its own sequence after the prefix; in `multi` mode
(the paper's) all queries are numbered in one final user turn. No model's special tokens are
written here: the template decides them. Tokenizers without a chat template get PLAIN_TEMPLATE.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import UserError
from .tasks import Example

QUERY_MODES = ("single", "multi")

# For base models without a chat template: plain "Input:/Output:" blocks.
PLAIN_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Input: {{ m['content'] }}\n"
    "{% else %}Output: {{ m['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Output:{% endif %}"
)
PLAIN_STOP = ("\nInput:",)

MULTI_INSTRUCTION = (
    "You will get {n} inputs, numbered [1] to [{n}]. Answer every one of them in order. "
    "Start each answer on a new line with its number in brackets, like [1]."
)

_SENTINEL = "\u27e6datawhisperer-query\u27e7"
_SYSTEM_PROBE = "\u27e6datawhisperer-system\u27e7"
_ANSWER_PROBE = "\u27e6datawhisperer-answer\u27e7"
# Marks around each demonstration in a probe render: the template itself says where each one lands.
_MARK = re.compile("\u27e6(/?)datawhisperer-demo-(\\d+)\u27e7")


def _open_mark(d: int) -> str:
    return f"\u27e6datawhisperer-demo-{d}\u27e7"


def _close_mark(d: int) -> str:
    return f"\u27e6/datawhisperer-demo-{d}\u27e7"


@dataclass(frozen=True)
class EpisodePrompt:
    """Text of one episode: a shared prefix, the character span of each demonstration in it,
    and the suffixes (one per sequence) that follow the prefix. `answer_lead` is what the template
    writes between the end of a suffix (the generation prompt) and an answer (" " for the plain template)."""

    prefix: str
    demo_spans: tuple[tuple[int, int], ...]
    suffixes: tuple[str, ...]
    answer_lead: str = ""


class PromptBuilder:
    def __init__(self, tokenizer, instruction: str, mode: str = "single") -> None:
        if mode not in QUERY_MODES:
            raise UserError(f"query mode must be one of {QUERY_MODES}, not {mode!r}")
        self.tokenizer = tokenizer
        self.instruction = instruction
        self.mode = mode
        self.template = getattr(tokenizer, "chat_template", None) or PLAIN_TEMPLATE
        self.uses_plain_template = self.template == PLAIN_TEMPLATE
        self.supports_system = self._supports_system()
        self.answer_lead = self._answer_lead()

    @property
    def stop(self) -> tuple[str, ...]:
        return PLAIN_STOP if self.uses_plain_template else ()

    def _apply(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.template, tokenize=False, add_generation_prompt=generation_prompt)

    def _supports_system(self) -> bool:
        probe = [{"role": "system", "content": _SYSTEM_PROBE}, {"role": "user", "content": "U"}]
        try:
            return _SYSTEM_PROBE in self._apply(probe, True)
        except Exception:  # templates signal "no system role" by raising
            return False

    def _answer_lead(self) -> str:
        """The text a template puts between the generation prompt and an assistant answer."""
        user = [{"role": "user", "content": "U"}]
        try:
            prompt = self._apply(user, True)
            full = self._apply([*user, {"role": "assistant", "content": _ANSWER_PROBE}], False)
        except Exception:  # a template that cannot render a lone exchange: no lead
            return ""
        if not full.startswith(prompt) or _ANSWER_PROBE not in full:
            return ""
        return full[len(prompt): full.index(_ANSWER_PROBE)]

    def _messages(self, instruction: str, demos: list[Example], last_user: list[tuple[str, str]],
                  marked: bool = False) -> list[dict]:
        turns: list[tuple[str, str]] = []
        for d, demo in enumerate(demos):
            # stripped, so that a template that trims content renders exactly what the marks enclose
            demo_turns = [[role, content.strip()] for role, content in demo.turns]
            demo_turns.append(["assistant", demo.answer.strip()])
            if marked:
                demo_turns[0][1] = _open_mark(d) + demo_turns[0][1]
                demo_turns[-1][1] += _close_mark(d)
            turns.extend((role, content) for role, content in demo_turns)
        turns.extend(last_user)
        messages = [{"role": role, "content": content} for role, content in turns]
        if not instruction:
            return messages
        if self.supports_system:
            return [{"role": "system", "content": instruction}, *messages]
        messages[0] = {"role": "user", "content": f"{instruction}\n\n{messages[0]['content']}"}
        return messages

    def _instruction_for(self, n_queries: int) -> str:
        if self.mode == "multi":
            return f"{self.instruction}\n\n{MULTI_INSTRUCTION.format(n=n_queries)}".strip()
        return self.instruction

    def build(self, demos: list[Example], queries: list[Example]) -> EpisodePrompt:
        """Render one episode. Demonstration spans cover each demo's input through its answer; they come
        from a render in which the template itself placed marks around each demonstration."""
        instruction = self._instruction_for(len(queries))
        if self.mode == "multi":
            block = "\n\n".join(f"[{k}] {q.text}" for k, q in enumerate(queries, start=1))
            query_turns = [[("user", block)]]
        else:
            query_turns = [list(q.turns) for q in queries]
        probe_turns = [("user", _SENTINEL)]
        probe = self._apply(self._messages(instruction, demos, probe_turns), True)
        unmarked, spans = _unmark(self._apply(self._messages(instruction, demos, probe_turns, marked=True), True),
                                  len(demos))
        if unmarked != probe:
            raise UserError("the chat template changes the text of a demonstration depending on its content; "
                            "cannot tell where each demonstration lies in the prompt")
        fulls = [self._apply(self._messages(instruction, demos, turns), True) for turns in query_turns]
        prefix = os.path.commonprefix([probe, *fulls])[: probe.index(_SENTINEL)]
        if any(hi > len(prefix) for _, hi in spans):
            raise UserError("the chat template renders the query before a demonstration's end")
        return EpisodePrompt(prefix, spans, tuple(full[len(prefix):] for full in fulls), self.answer_lead)

    def build_zero_shot(self, example: Example) -> str:
        """The prompt for one example with no demonstrations (fine-tuning and evaluation)."""
        return self._apply(self._messages(self.instruction, [], list(example.turns)), True)

    def render_completion(self, example: Example) -> tuple[str, str]:
        """(prompt, completion) for training and loss: the completion is the answer as the template
        closes an assistant turn (end-of-turn tokens included), so the model learns to stop."""
        prompt = self.build_zero_shot(example)
        full = self._apply(self._messages(self.instruction, [], [*example.turns, ("assistant", example.answer)]), False)
        if not full.startswith(prompt):  # templates that render the last turn differently
            return prompt, example.answer
        return prompt, full[len(prompt):].rstrip("\n") if self.uses_plain_template else full[len(prompt):]


def _unmark(text: str, n_demos: int) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Remove the demonstration marks from a probe render; return the clean text and each demo's span in it."""
    pieces, bounds, last, position = [], {}, 0, 0
    for match in _MARK.finditer(text):
        pieces.append(text[last: match.start()])
        position += match.start() - last
        bounds[(int(match.group(2)), bool(match.group(1)))] = position
        last = match.end()
    pieces.append(text[last:])
    spans = []
    for d in range(n_demos):
        if (d, False) not in bounds or (d, True) not in bounds:
            raise UserError(f"the chat template dropped demonstration {d}; cannot locate it in the prompt")
        spans.append((bounds[(d, False)], bounds[(d, True)]))
    return "".join(pieces), tuple(spans)
