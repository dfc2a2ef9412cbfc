"""Every model family, tokenizer kind and template: what `select` records equals a plain reference.

Tiny random models of several architectures (sliding windows and soft-capping included), each with a
tokenizer of its family's kind built here: byte-level BPE, or a SentencePiece-style BPE with the `▁`
space marker (Llama-2, Mistral, Gemma, Phi-3), whose pieces do not tokenize apart as they do together.
The references run eager attention on exactly tokenizer(whole text).
"""

import numpy as np
import pytest
import torch
from conftest import CHATML, byte_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from datawhisperer.backends.hf import HFBackend
from datawhisperer.backends.tokens import encode_episode
from datawhisperer.prompts import PromptBuilder
from datawhisperer.tasks import Example

# Written for these tests in the style of each family (not copied from any model).
INST = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}"
        "{% else %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}")
TURNS = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
         "{{ raise_exception('System role not supported') }}{% endif %}<start_of_turn>"
         "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] | trim }}<end_of_turn>\n"
         "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
PIPES = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
SPECIALS = ["<start_of_turn>", "<end_of_turn>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
WINDOW = 128

DEMOS = [Example((("user", "the cat sat"),), "the cats sat"), Example((("user", "one box"),), "two boxes"),
         Example((("user", "a city"),), "many cities")]
QUERIES = [Example((("user", "a dog"),), "two dogs"), Example((("user", "the red fox ran"),), "the red foxes ran")]
CORPUS = ["Give the plural of each noun phrase. the cat sat the cats sat one box two boxes a city many cities",
          "a dog two dogs the red fox ran the red foxes ran Input: Output: [INST] [/INST] user model assistant"]


def sentencepiece_tokenizer(chat_template):
    """A `▁` BPE like Llama-2/Mistral/Gemma's (prepend the marker to the first piece only), trained here."""
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    alphabet = [chr(c) for c in range(32, 127)] + ["\n", "\u2581"]
    trainer = trainers.BpeTrainer(vocab_size=260, special_tokens=["<unk>", "<s>", "</s>", "<pad>", *SPECIALS],
                                  initial_alphabet=alphabet, show_progress=False)
    core.train_from_iterator(CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>", additional_special_tokens=SPECIALS)
    tokenizer.chat_template = chat_template
    return tokenizer


def build(config_cls, model_cls, tokenizer, **extra):
    torch.manual_seed(0)
    config = config_cls(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False, **extra)
    return model_cls(config).eval()


FAMILIES = {
    "llama-bytebpe": lambda: (LlamaConfig, LlamaForCausalLM, byte_tokenizer(CHATML), {}),
    "qwen2-bytebpe": lambda: (Qwen2Config, Qwen2ForCausalLM, byte_tokenizer(CHATML), {}),
    "mistral-window": lambda: (MistralConfig, MistralForCausalLM, sentencepiece_tokenizer(INST),
                               {"sliding_window": WINDOW}),
    "gemma2-window-softcap": lambda: (Gemma2Config, Gemma2ForCausalLM, sentencepiece_tokenizer(TURNS),
                                      {"sliding_window": WINDOW, "head_dim": 16, "query_pre_attn_scalar": 16,
                                       "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0}),
    "phi3-window": lambda: (Phi3Config, Phi3ForCausalLM, sentencepiece_tokenizer(PIPES),
                            {"sliding_window": WINDOW, "original_max_position_embeddings": 1024}),
    "base-no-template": lambda: (LlamaConfig, LlamaForCausalLM, sentencepiece_tokenizer(None), {}),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    config_cls, model_cls, tokenizer, extra = FAMILIES[request.param]()
    model = build(config_cls, model_cls, tokenizer, **extra)
    backend = HFBackend(preloaded=(model, tokenizer), device="cpu", layer=1)
    prompts = [PromptBuilder(tokenizer, "Give the plural of each noun phrase.", "single").build(DEMOS[:k], QUERIES)
               for k in (3, 2)]
    return request.param, backend, prompts


def joint_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def eager_forward(model, ids, **kwargs):
    """The reference: eager attention everywhere, the whole sequence at once."""
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return model(torch.tensor([ids]), **kwargs)
    finally:
        model.set_attn_implementation(implementation)


def test_sequences_are_the_joint_tokenization_and_fit_the_window(family):
    name, backend, prompts = family
    for prompt in prompts:
        encoded = encode_episode(backend.tokenizer, prompt)
        for k, suffix in enumerate(prompt.suffixes):
            assert encoded.sequence(k) == joint_ids(backend.tokenizer, prompt.prefix + suffix)
            assert len(encoded.sequence(k)) + 8 < backend.max_length
    if "window" in name:
        assert backend.max_length == WINDOW - 1


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_recorded_attention_equals_eager_output_attentions_on_the_exact_tokens(family, layer):
    _, backend, prompts = family
    backend = HFBackend(preloaded=(backend.model, backend.tokenizer), device="cpu", layer=layer)  # the layer read
    results = backend.generate(prompts, max_new_tokens=3)  # two episodes in one batch: padding
    for prompt, result in zip(prompts, results):
        encoded = encode_episode(backend.tokenizer, prompt)
        assert result.demo_tokens == [hi - lo for lo, hi in encoded.demo_spans]
        for k, suffix in enumerate(prompt.suffixes):
            ids = joint_ids(backend.tokenizer, prompt.prefix + suffix)
            attentions = eager_forward(backend.model, ids, output_attentions=True).attentions[layer][0]
            rows = attentions[:, len(encoded.prefix):, :]
            expected = [float(rows[:, :, lo:hi].sum()) for lo, hi in encoded.demo_spans]
            assert max(expected) > 0
            np.testing.assert_allclose(result.demo_mass[k], expected, rtol=1e-4, atol=1e-5)


def test_likelihood_equals_a_plain_forward_pass_over_the_joint_text(family):
    _, backend, prompts = family
    answers = [q.answer for q in QUERIES]
    results = backend.score(prompts, [answers, answers])
    for prompt, result in zip(prompts, results):
        for k, (suffix, answer) in enumerate(zip(prompt.suffixes, answers)):
            query_text = prompt.prefix + suffix
            encoded = backend.tokenizer(query_text + prompt.answer_lead + answer, add_special_tokens=False,
                                        return_offsets_mapping=True)
            ids = encoded["input_ids"]
            first = next(t for t, (_, end) in enumerate(encoded["offset_mapping"]) if end > len(query_text))
            logits = eager_forward(backend.model, ids).logits[0].float()
            logprobs = logits[first - 1:-1].log_softmax(-1).gather(-1, torch.tensor(ids[first:]).unsqueeze(-1))
            assert result.token_logprobs[k] == pytest.approx(float(logprobs.mean()), abs=2e-5)
            np.testing.assert_allclose(result.answer_logprobs[k], logprobs[:, 0].tolist(), atol=2e-5)


def test_generation_equals_model_generate_on_the_joint_tokens(family):
    _, backend, prompts = family
    results = backend.generate(prompts, max_new_tokens=6)
    model, tokenizer = backend.model, backend.tokenizer
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        for prompt, result in zip(prompts, results):
            for k, suffix in enumerate(prompt.suffixes):
                ids = joint_ids(tokenizer, prompt.prefix + suffix)
                with torch.no_grad():
                    out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                         pad_token_id=tokenizer.pad_token_id)
                new = out[0, len(ids):].tolist()
                assert result.texts[k] == tokenizer.decode(new, skip_special_tokens=True).strip()
                assert result.truncated[k] == (len(new) == 6 and new[-1] not in backend.eos_ids)
    finally:
        model.set_attn_implementation(implementation)


@pytest.mark.parametrize("family_name", ["mistral-window", "phi3-window", "gemma2-window-softcap"])
@pytest.mark.parametrize("scoring", ["generate", "likelihood"])
def test_select_keeps_episodes_inside_a_short_sliding_window(tmp_path, family_name, scoring):
    """Episodes longer than the window used to end in a traceback; now demonstrations are dropped until every
    sequence fits inside the window, where windowed attention is exactly full attention."""
    from datawhisperer.runner import select
    from datawhisperer.scoring import EpisodeOutcome
    from datawhisperer.select_config import SelectConfig

    config_cls, model_cls, tokenizer, extra = FAMILIES[family_name]()
    window = 96 if family_name.startswith("gemma2") else 64  # its template spends more tokens per turn
    model = build(config_cls, model_cls, tokenizer, **{**extra, "sliding_window": window})
    backend = HFBackend(preloaded=(model, tokenizer), device="cpu", layer=2)
    records = [{"text": f"the red fox ran {i}" if i % 2 else "a city", "label": "the red foxes ran"}
               for i in range(12)]
    config = SelectConfig(estimator="paper", task="classification", n_demos=4, n_queries=2, out=str(tmp_path / "run"),
                          instruction="Give the plural of each noun phrase.", max_new_tokens=4, scoring=scoring,
                          quiet=True, budget=["0.5"])
    select(config, records=records, backend=backend)
    import json

    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"
    outcomes = [EpisodeOutcome.from_dict(json.loads(line))
                for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert any(o.dropped for o in outcomes)  # the prompts did not fit as drawn
    # (a random model's answers run to the token limit, so generated episodes fail; their weights are recorded)
    outcome = next(o for o in outcomes if len(o.demos) > 1)
    examples = [Example((("user", r["text"]),), r["label"]) for r in records]
    prompt = PromptBuilder(tokenizer, config.instruction, "single").build(
        [examples[i] for i in outcome.demos], [examples[q] for q in outcome.queries])
    encoded = encode_episode(tokenizer, prompt)
    masses = []
    for suffix in prompt.suffixes:
        ids = joint_ids(tokenizer, prompt.prefix + suffix)
        assert len(ids) + 4 < window
        rows = eager_forward(model, ids, output_attentions=True).attentions[2][0][:, len(encoded.prefix):, :]
        masses.append([float(rows[:, :, lo:hi].sum()) for lo, hi in encoded.demo_spans])
    mass = np.sum(masses, axis=0) / np.array([hi - lo for lo, hi in encoded.demo_spans])
    np.testing.assert_allclose(outcome.weights, mass / mass.sum(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family_name", ["mistral-window", "phi3-window", "gemma2-window-softcap"])
@pytest.mark.parametrize("scoring", ["generate", "likelihood"])
def test_a_window_too_short_for_the_instruction_and_one_query_is_refused_before_any_episode(tmp_path, capsys,
                                                                                           family_name, scoring):
    """A 24-token window cannot hold the instruction and a query: every episode would fail. The run is refused
    in one line naming the limit, with a non-zero exit, and the output directory is left as it was."""
    import json

    from datawhisperer.cli import main

    config_cls, model_cls, tokenizer, extra = FAMILIES[family_name]()
    model_dir = tmp_path / "model"
    build(config_cls, model_cls, tokenizer, **{**extra, "sliding_window": 24}).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    capsys.readouterr()  # the save's own progress bar
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": f"the red fox ran {i}", "label": "the red foxes ran"}) + "\n"
                            for i in range(12)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["select", str(pool), "--model", str(model_dir), "--task", "classification", "--out", str(out),
                 "--instruction", "Give the plural of each noun phrase.", "--max-new-tokens", "4", "--scoring",
                 scoring, "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds 23 tokens per sequence (its sliding window of 24 tokens, less one)" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
