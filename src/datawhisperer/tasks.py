"""Tasks as data: which fields form the input and the answer, the instruction, the metric.

A preset is a `TaskSpec` registry entry; a user's own task is a YAML/JSON file with the same
keys (`--task my_task.yaml`). Records are chat style (`messages` or ShareGPT `conversations`), TRL's
prompt/completion pairs, or plain fields named by the task or the user.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import UserError
from .registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    input_field: str  # a field name or a template over several fields, e.g. "{instruction}\n{input}"
    output_field: str
    metric: str
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"task {self.name!r}: max_new_tokens must be >= 1")
        object.__setattr__(self, "stop", tuple(self.stop))


TASKS: Registry[TaskSpec] = Registry("task")

for _spec in (
    TaskSpec(
        name="math",
        instruction=("Solve the math word problem. Reason step by step, then give the final answer "
                     "on the last line as '#### <number>'."),
        input_field="question",
        output_field="answer",
        metric="numeric_match",
        max_new_tokens=256,
        description="GSM8K style: the final number after '####'; numeric exact match",
    ),
    TaskSpec(
        name="summarization",
        instruction="Summarize the dialogue in a few sentences.",
        input_field="dialogue",
        output_field="summary",
        metric="rouge_l",
        max_new_tokens=128,
        description="free-text summary; ROUGE-L F1",
    ),
    TaskSpec(
        name="instruction",
        instruction="Follow the instruction and answer the input.",
        input_field="{instruction}\n{input}",
        output_field="output",
        metric="rouge_l",
        max_new_tokens=128,
        description="instruction / input / output records (Alpaca, BioInstruct); ROUGE-L F1",
    ),
    TaskSpec(
        name="classification",
        instruction="Answer with the label only.",
        input_field="text",
        output_field="label",
        metric="label_match",
        max_new_tokens=16,
        description="short labels; normalised exact label match",
    ),
):
    TASKS.register(_spec.name, _spec)


def load_task(name_or_path: str) -> TaskSpec:
    """A preset name, or a .yaml/.yml/.json file declaring a TaskSpec."""
    if name_or_path.endswith((".yaml", ".yml", ".json")):
        path = Path(name_or_path)
        if not path.exists():
            raise UserError(f"task file not found: {path}")
        try:
            if path.suffix == ".json":
                spec = json.loads(path.read_text(encoding="utf-8"))
            else:
                import yaml

                spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise UserError(f"{path}: cannot parse task file: {exc}") from None
        if not isinstance(spec, dict):
            raise UserError(f"{path}: a task file must be a mapping of TaskSpec fields")
        known = {f.name for f in fields(TaskSpec)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise UserError(f"{path}: unknown task keys {unknown} (known: {sorted(known)})")
        spec.setdefault("name", path.stem)
        try:
            return TaskSpec(**spec)
        except TypeError as exc:
            raise UserError(f"{path}: {exc}") from None
    return TASKS.get(name_or_path)


@dataclass(frozen=True)
class Example:
    """One (input, answer) pair ready for prompting.

    `turns` are the chat turns before the answer (alternating user/assistant, ending with user).
    """

    turns: tuple[tuple[str, str], ...]
    answer: str

    @property
    def text(self) -> str:
        """The input flattened to text (used where one string is needed, e.g. numbered queries)."""
        return "\n\n".join(content for _, content in self.turns)


CHAT_FIELDS = ("messages", "conversations")  # OpenAI / TRL style; ShareGPT / LLaMA-Factory style
ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "bot", "chatbot"})


@dataclass(frozen=True)
class FieldMap:
    """How to turn a record into an Example.

    Unless the user named an input field, a record with a chat list (`messages`, `conversations`) is read
    as a chat, and one with `prompt` and `completion` (TRL's prompt-completion type) as that pair.
    """

    input_field: str | None = None
    output_field: str | None = None
    chat_allowed: bool = True

    def with_task_defaults(self, task: TaskSpec) -> FieldMap:
        return replace(self, input_field=self.input_field or task.input_field,
                       output_field=self.output_field or task.output_field,
                       chat_allowed=self.input_field is None)

    def to_example(self, record: dict, index: int) -> Example:
        if self.chat_allowed:
            for name in CHAT_FIELDS:
                if name in record:
                    return _chat_example(record[name], index, name)
            if "prompt" in record and "completion" in record:
                return _prompt_completion_example(record["prompt"], record["completion"], index)
        user_turn = ("user", _render_input(self.input_field or "", record, index))
        return Example((user_turn,), _field(record, self.output_field or "", index))


def _field(record: dict, name: str, index: int) -> str:
    if name not in record:
        raise UserError(f"record {index} has no field {name!r} (it has: {', '.join(map(str, record)) or 'none'}); "
                        "set --input-field/--output-field")
    value = record[name]
    if value is None:
        raise UserError(f"record {index}: field {name!r} is null")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) \
        if isinstance(value, (dict, list)) else str(value)


def template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise UserError(f"bad input template {template!r}: {exc}") from None


def _render_input(template: str, record: dict, index: int) -> str:
    names = template_fields(template)
    if not names:  # a plain field name
        return _field(record, template, index).strip()
    values = {name: _field(record, name, index) for name in names}
    text = template.format(**values)
    # an empty optional part (e.g. Alpaca's blank "input") must not leave stray blank lines
    lines = [line.rstrip() for line in text.strip().split("\n")]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


def _chat_example(messages: object, index: int, name: str) -> Example:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"record {index}: field {name!r} must be a non-empty list of {{role, content}} turns")
    turns: list[tuple[str, str]] = []
    for t, message in enumerate(messages):
        role, content = _turn(message, index, t, name)
        role = "assistant" if role in ASSISTANT_ROLES else "user"  # system/tool text joins the user side
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n\n" + content)
        else:
            turns.append((role, content))
    if turns[-1][0] != "assistant":
        raise UserError(f"record {index}: the last turn of {name!r} must be the assistant's answer")
    answer = turns.pop()[1]
    if not turns:
        raise UserError(f"record {index}: {name!r} has an answer but no input turn")
    if turns[0][0] != "user":
        turns.insert(0, ("user", ""))
    return Example(tuple(turns), answer)


def _turn(message: object, index: int, t: int, name: str) -> tuple[str, str]:
    """(role, text) of one turn: {role, content} or ShareGPT's {from, value}; content may be a list of parts."""
    if isinstance(message, dict):
        for role_key, content_key in (("role", "content"), ("from", "value")):
            if role_key in message and content_key in message:
                return str(message[role_key]).lower(), _text(message[content_key], index, t, name)
    raise UserError(f"record {index}: turn {t} of {name!r} needs 'role' and 'content' (or 'from' and 'value')")


def _text(content: object, index: int, t: int, name: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)  # OpenAI-style content parts, text only
    raise UserError(f"record {index}: turn {t} content of {name!r} must be text (or a list of text parts)")


def _prompt_completion_example(prompt: object, completion: object, index: int) -> Example:
    if isinstance(prompt, str) and isinstance(completion, str):
        return Example((("user", prompt.strip()),), completion)
    if isinstance(prompt, list) and isinstance(completion, list):
        return _chat_example(prompt + completion, index, "prompt + completion")
    raise UserError(f"record {index}: 'prompt' and 'completion' must both be text or both be lists of turns")


def examples_from_records(records: list[dict], field_map: FieldMap) -> list[Example]:
    """Convert and validate every record before any model is loaded."""
    return [field_map.to_example(record, i) for i, record in enumerate(records)]
