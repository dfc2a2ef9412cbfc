"""The captured attention equals what eager attention with output_attentions=True gives."""

import numpy as np
import pytest
import torch
from conftest import byte_tokenizer, tiny_model

from datawhisperer.backends.hf import HFBackend
from datawhisperer.backends.tokens import encode_episode
from datawhisperer.prompts import PromptBuilder
from datawhisperer.tasks import Example

DEMOS = [Example((("user", "apple pie"),), "apple pies"), Example((("user", "box"),), "boxes"),
         Example((("user", "a longer city name"),), "longer city names")]
QUERIES = [Example((("user", "dog"),), "dogs"), Example((("user", "the red fox of the hills"),), "foxes")]


def eager_mass(model, prefix_ids, suffix_ids, spans, layer):
    """Reference: full sequence, eager attention everywhere, output_attentions=True."""
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(torch.tensor([prefix_ids + suffix_ids]), output_attentions=True)
    finally:
        from datawhisperer.attention import ATTN_IMPLEMENTATION

        model.set_attn_implementation(ATTN_IMPLEMENTATION)
    attn = out.attentions[layer][0]  # [heads, q, kv]
    rows = attn[:, len(prefix_ids):, :]
    return np.array([float(rows[:, :, lo:hi].sum()) for lo, hi in spans])


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_captured_weights_equal_eager_output_attentions(arch, layer):
    tokenizer = byte_tokenizer()
    backend = HFBackend(preloaded=(tiny_model(arch, tokenizer), tokenizer), layer=layer, device="cpu")
    prompt = PromptBuilder(tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES)
    result = backend.run_episode(prompt, layer, max_new_tokens=2)
    encoded = encode_episode(tokenizer, prompt)
    prefix_ids, spans = encoded.prefix, encoded.demo_spans
    assert [hi - lo for lo, hi in spans] == result.demo_tokens
    for row, suffix_ids in enumerate(encoded.suffixes):  # suffixes differ in length: padding is exercised
        expected = eager_mass(backend.model, prefix_ids, suffix_ids, spans, layer)
        np.testing.assert_allclose(result.demo_mass[row], expected, rtol=1e-4, atol=1e-4)
        lengths = np.array(result.demo_tokens)
        got_w = result.demo_mass[row] / lengths
        want_w = expected / lengths
        np.testing.assert_allclose(got_w / got_w.sum(), want_w / want_w.sum(), atol=1e-4)


def test_capture_runs_only_in_the_chosen_layer_and_sdpa_elsewhere(monkeypatch):
    import datawhisperer.attention as attention

    calls = []
    original = attention.demo_attention_mass
    monkeypatch.setattr(attention, "demo_attention_mass", lambda *a, **k: calls.append(1) or original(*a, **k))
    tokenizer = byte_tokenizer()
    backend = HFBackend(preloaded=(tiny_model("llama", tokenizer), tokenizer), layer=1, device="cpu")
    assert backend.model.config._attn_implementation == attention.ATTN_IMPLEMENTATION
    prompt = PromptBuilder(tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES)
    backend.run_episode(prompt, 1, max_new_tokens=3)
    assert len(calls) == 1  # one layer, one (prefill) forward; decoding steps capture nothing
