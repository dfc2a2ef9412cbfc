"""`evaluate`'s greedy answers stop where the model's own configuration says a turn ends."""

import pytest
import torch

from datawhisperer.backends.causal_lm import end_token_ids
from datawhisperer.harness.evaluate import generate_answers
from datawhisperer.harness.task_model import builder_for
from datawhisperer.tasks import Example
from datawhisperer.testing import byte_tokenizer, tiny_model

EXAMPLE = Example((("user", "cat"),), "cats")


def _generate(model, tokenizer, builder) -> list[int]:
    """model.generate's greedy tokens, with the model's own end tokens."""
    ids = torch.tensor([tokenizer(builder.build_zero_shot(EXAMPLE), add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                             pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("declared_in", ["generation_config", "config"])
def test_generation_stops_at_every_declared_end_token(declared_in):
    """Like Llama-3 (eos [<|end_of_text|>, <|eot_id|>]): a second end token the tokenizer does not name."""
    tokenizer = byte_tokenizer()
    model = tiny_model("llama", tokenizer)
    builder = builder_for(tokenizer, "Pluralise.")
    model.generation_config.eos_token_id = None
    free = _generate(model, tokenizer, builder)
    assert len(free) == 8 and tokenizer.eos_token_id not in free
    k = next(k for k in range(2, 8) if free[k] not in free[:k])  # the first token not seen before, past two
    stop = free[k]
    getattr(model, declared_in).eos_token_id = [tokenizer.eos_token_id, stop]
    assert end_token_ids(model, tokenizer) == [tokenizer.eos_token_id, stop]
    [answer] = generate_answers(model, tokenizer, builder, [EXAMPLE], max_new_tokens=8, batch_size=1, device="cpu",
                                progress=False)
    assert answer == tokenizer.decode(free[:k], skip_special_tokens=True).strip()
    if declared_in == "generation_config":  # the same answer as the model's own generate, less its end token
        reference = _generate(model, tokenizer, builder)
        assert reference[-1] == stop and answer == tokenizer.decode(reference[:-1]).strip()


def test_end_tokens_are_gathered_once_each_in_declaration_order():
    tokenizer = byte_tokenizer()
    model = tiny_model("llama", tokenizer)
    model.generation_config.eos_token_id = [7, tokenizer.eos_token_id]
    model.config.eos_token_id = 9
    assert end_token_ids(model, tokenizer) == [7, tokenizer.eos_token_id, 9]
