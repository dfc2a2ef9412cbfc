import torch
from conftest import byte_tokenizer, tiny_model
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from datawhisperer import attention
from datawhisperer.backends.packing import answer_scores, logits_only_at, pack
from datawhisperer.backends.tokens import EncodedEpisode

EPISODES = [
    EncodedEpisode(prefix=[5, 6, 7, 8, 9], demo_spans=[(1, 3), (3, 5)], suffixes=[[20, 21, 22], [30, 31]],
                  query_lengths=[2, 1]),
    EncodedEpisode(prefix=[5, 6, 7], demo_spans=[(1, 3)], suffixes=[[40, 41, 42, 43]], query_lengths=[3]),
]


def test_pack_lays_out_each_suffix_after_the_prefix_seeing_only_the_prefix_and_itself():
    batch = pack(EPISODES, pad_id=0)
    assert batch.input_ids[0].tolist() == [5, 6, 7, 8, 9, 20, 21, 22, 30, 31]
    assert batch.input_ids[1].tolist() == [5, 6, 7, 40, 41, 42, 43, 0, 0, 0]
    assert batch.positions[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 5, 6]  # both suffixes start after the prefix
    mask = batch.mask[0, 0]
    assert mask[8].tolist() == [True] * 5 + [False] * 3 + [True, False]  # second suffix: prefix + itself
    assert mask[6].tolist() == [True] * 7 + [False] * 3
    assert batch.mask[1, 0, 8].tolist() == [False] * 8 + [True, False]  # padding sees itself only (no NaN rows)
    assert batch.column_map[0, :, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert batch.segment_weights[0, :, 0].tolist() == [0] * 5 + [1, 1, 0, 0, 0]
    assert batch.segment_weights[0, :, 1].tolist() == [0] * 8 + [1, 0]
    # the logit at column c predicts token c + 1: answers [22] and [31]; [43]
    assert batch.answer_columns[0].tolist() == [6, 8] and batch.answers[0] == [[22], [31]]
    assert batch.answer_columns[1, :1].tolist() == [5] and batch.answers[1] == [[43]]
    assert batch.layout.prefix_lengths == [5, 3] and batch.layout.segments == [[(5, 8), (8, 10)], [(3, 7)]]


def test_blockwise_attention_equals_attention_under_the_full_mask():
    torch.manual_seed(0)
    batch = pack(EPISODES, pad_id=0)
    query = torch.randn(2, 4, 10, 8)
    key, value = torch.randn(2, 2, 10, 8), torch.randn(2, 2, 10, 8)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    full = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(2, 1), value.repeat_interleave(2, 1), attn_mask=batch.mask).transpose(1, 2)
    blocks = attention._blockwise_attention(sdpa_attention_forward, module, query, key, value, batch.layout,
                                            0.0, None)
    real = batch.input_ids != 0
    real[0] = True
    assert torch.allclose(blocks[real], full[real], atol=1e-5)


def test_logits_only_at_projects_the_chosen_columns_and_scores_answers():
    tokenizer = byte_tokenizer()
    model = tiny_model("llama", tokenizer, seed=1)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    columns = torch.tensor([[1, 3], [0, 4]])
    with torch.no_grad():
        every = model(ids).logits
        with logits_only_at(model, columns):
            picked = model(ids, logits_to_keep=0).logits
    assert picked.shape == (2, 2, every.shape[-1])
    assert torch.allclose(picked[0], every[0, [1, 3]], atol=1e-5) and torch.allclose(picked[1], every[1, [0, 4]],
                                                                                     atol=1e-5)
    [[(prob, logprob, tokens)]] = answer_scores(picked[:1], [[[8, 9]]])
    expected = every[0, [1, 3]].log_softmax(-1)[[0, 1], [8, 9]]
    assert abs(logprob - float(expected.mean())) < 1e-5 and abs(prob - float(expected.exp().mean())) < 1e-5
    assert torch.allclose(torch.tensor(tokens), expected, atol=1e-5)
