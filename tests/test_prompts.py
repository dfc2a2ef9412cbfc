"""Golden-file tests of rendered episode prompts under several chat templates.

Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/test_prompts.py
"""

import os
from pathlib import Path

import pytest
from conftest import CHATML, byte_tokenizer

from datawhisperer.prompts import PromptBuilder
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


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_demo_spans_come_from_the_rendering_not_from_searching(mode):
    """An input that also occurs in the instruction and one-letter answers that occur in template text
    ('a' in 'assistant'): a text search finds them in the wrong place."""
    demos = [Example((("user", "label"),), "a"), Example((("user", "only"),), "b"),
             Example((("user", "s"),), "t")]
    builder = PromptBuilder(byte_tokenizer(CHATML), "Answer with the label only.", mode)
    prompt = builder.build(demos, [Example((("user", "label"),), "a")])
    for (lo, hi), demo in zip(prompt.demo_spans, demos):
        assert prompt.prefix[lo:hi] == f"{demo.text}<|im_end|>\n<|im_start|>assistant\n{demo.answer}"
    starts = [lo for lo, _ in prompt.demo_spans]
    assert starts == sorted(starts) and prompt.prefix.index("Answer with the label only.") < starts[0]


def test_demo_spans_with_a_template_without_system_role_and_the_instruction_in_the_first_turn():
    builder = PromptBuilder(byte_tokenizer(TEMPLATES["no_system_role"]), "Say the label: a or b.", "single")
    demos = [Example((("user", "a"),), "a"), Example((("user", "b"),), "b")]
    prompt = builder.build(demos, [Example((("user", "a"),), "a")])
    assert not builder.supports_system
    for (lo, hi), demo in zip(prompt.demo_spans, demos):
        assert prompt.prefix[lo:hi] == f"{demo.text}</turn>\n<turn>model\n{demo.answer}"


def test_system_role_probe_is_not_fooled_by_template_text():
    """An [INST]-style template that drops the system message still renders the letter 'S'."""
    template = ("{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{% endif %}{% endfor %}")
    builder = PromptBuilder(byte_tokenizer(template), "Be brief.", "single")
    assert not builder.supports_system
    assert "Be brief." in builder.build([DEMOS[0]], QUERIES[:1]).prefix


@pytest.mark.parametrize("template_name,lead", [("chatml", ""), ("plain", " "), ("headers_trimmed", "")])
def test_answer_lead_is_what_the_template_writes_before_an_answer(template_name, lead):
    builder = PromptBuilder(byte_tokenizer(TEMPLATES[template_name]), "Give the plural.", "single")
    prompt = builder.build(DEMOS, QUERIES[:1])
    assert prompt.answer_lead == lead
    if template_name == "plain":  # a demonstration renders as "Output: cats": the lead joins answers alike
        assert "Output:" + lead + DEMOS[0].answer in prompt.prefix
