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
    [result] = backend.generate([prompt], max_new_tokens=2)
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
    backend.generate([prompt], max_new_tokens=3)
    assert len(calls) == 1  # one layer, one (prefill) forward; decoding steps capture nothing


def test_a_fully_masked_row_with_zero_weight_adds_nothing():
    """Padding rows can be masked everywhere: softmax gives NaN there, which a zero row weight must cancel."""
    import datawhisperer.attention as attention

    torch.manual_seed(0)
    query, key = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    mask = torch.ones(1, 1, 3, 5, dtype=torch.bool)
    mask[0, 0, 0] = False  # row 0 sees nothing (a padding row)
    columns = torch.zeros(5, 2)
    columns[0:2, 0], columns[2:4, 1] = 1.0, 1.0
    rows = torch.tensor([[0.0, 1.0, 1.0]])
    mass = attention.demo_attention_mass(query, key, mask, None, columns, rows)
    assert torch.isfinite(mass).all()
    reference = torch.softmax(query[0, :, 1:] @ key[0].transpose(-1, -2) / 2.0, dim=-1)  # rows 1 and 2, no mask
    expected = torch.stack([reference[..., 0:2].sum(), reference[..., 2:4].sum()])
    assert torch.allclose(mass[0], expected, atol=1e-5)
