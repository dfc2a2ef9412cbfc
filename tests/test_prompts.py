"""Golden-file tests of rendered episode prompts under several chat templates.

Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/test_prompts.py
"""

import os
from pathlib import Path

import pytest
from conftest import CHATML, byte_tokenizer

from datawhisperer.prompts import PromptBuilder, parse_numbered_answers
from datawhisperer.tasks import Example

GOLDEN = Path(__file__).parent / "golden"

# Written for these tests in the style of common families (not copied from any model).
TEMPLATES = {
    "chatml": CHATML,
    "headers_trimmed": (
        "<|begin|>{% for m in messages %}<|header|>{{ m['role'] }}<|/header|>\n\n{{ m['content'] | trim }}<|eot|>"
        "{% endfor %}{% if add_generation_prompt %}<|header|>assistant<|/header|>\n\n{% endif %}"),
    "no_system_role": (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}</turn>\n"
        "{% endfor %}{% if add_generation_prompt %}<turn>model\n{% endif %}"),
    "plain": None,  # no chat template: the plain Input/Output fallback
}

DEMOS = [Example((("user", "cat"),), "cats"), Example((("user", "box"),), "boxes"),
         Example((("user", "Hi"), ("assistant", "Hello!"), ("user", "city")), "cities")]
QUERIES = [Example((("user", "dog"),), "dogs"), Example((("user", "fox"),), "foxes")]


def render(template_name: str, mode: str) -> str:
    builder = PromptBuilder(byte_tokenizer(TEMPLATES[template_name]), "Give the plural of the noun.", mode)
    prompt = builder.build(DEMOS, QUERIES)
    marked, last = [], 0
    for lo, hi in prompt.demo_spans:
        marked += [prompt.prefix[last:lo], "\u27ea", prompt.prefix[lo:hi], "\u27eb"]
        last = hi
    marked.append(prompt.prefix[last:])
    parts = ["".join(marked)] + [f"\n=== suffix {k} ===\n{s}" for k, s in enumerate(prompt.suffixes)]
    return "".join(parts)


@pytest.mark.parametrize("mode", ["single", "multi"])
@pytest.mark.parametrize("template_name", list(TEMPLATES))
def test_rendered_prompt_matches_golden_file(template_name, mode):
    text = render(template_name, mode)
    path = GOLDEN / f"{template_name}-{mode}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("template_name", list(TEMPLATES))
def test_prefix_plus_suffix_is_the_full_template_rendering(template_name):
    tokenizer = byte_tokenizer(TEMPLATES[template_name])
    builder = PromptBuilder(tokenizer, "Give the plural of the noun.", "single")
    prompt = builder.build(DEMOS, QUERIES)
    for query, suffix in zip(QUERIES, prompt.suffixes):
        messages = builder._messages(builder.instruction, DEMOS, list(query.turns))
        full = tokenizer.apply_chat_template(messages, chat_template=builder.template, tokenize=False,
                                             add_generation_prompt=True)
        assert prompt.prefix + suffix == full
    for (lo, hi), demo in zip(prompt.demo_spans, DEMOS):
        assert prompt.prefix[lo:hi].startswith(demo.turns[0][1]) and prompt.prefix[lo:hi].endswith(demo.answer)


def test_no_model_specific_tokens_in_the_code():
    source = (Path(__file__).parents[1] / "src" / "datawhisperer" / "prompts.py").read_text(encoding="utf-8")
    for token in ("<|im_start|>", "<|start_header_id|>", "[INST]", "<start_of_turn>"):
        assert token not in source


@pytest.mark.parametrize("text,expected", [
    ("[1] cats\n[2] boxes", ["cats", "boxes"]),
    ("1. cats\n2) boxes", ["cats", "boxes"]),
    ("Answer 1: cats\nAnswer 2: boxes", ["cats", "boxes"]),
    ("Sure!\n[1] cats are many\nmore text\n[2] boxes\n[2] dup", ["cats are many\nmore text", "boxes"]),
    ("[1] cats", None),
    ("[1] cats\n[2]", None),
    ("cats, boxes", None),
])
def test_parse_numbered_answers(text, expected):
    assert parse_numbered_answers(text, 2) == expected
