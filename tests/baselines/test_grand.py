"""GraNd's score is the gradient norm of the answer's loss, also when the prompt must be truncated."""

import pytest
import torch

from datawhisperer.backends.hf import HFBackend
from datawhisperer.baselines.base import MethodContext
from datawhisperer.baselines.grand import grand_scores
from datawhisperer.prompts import PromptBuilder
from datawhisperer.tasks import Example
from datawhisperer.testing import byte_tokenizer, tiny_model

MAX_LENGTH = 48
INSTRUCTION = "Pluralise."


def _answer_gradient_norm(model, tokenizer, example: Example) -> float:
    """The reference: the last MAX_LENGTH tokens, loss on exactly the completion's tokens (one token per byte
    with this tokenizer, so the completion's tokens are the last ones of the joint tokenization)."""
    prompt, completion = PromptBuilder(tokenizer, INSTRUCTION, "single").render_completion(example)
    ids = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"][-MAX_LENGTH:]
    n_answer = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
    assert n_answer < len(ids)
    input_ids = torch.tensor([ids])
    labels = torch.full_like(input_ids, -100)
    labels[0, -n_answer:] = input_ids[0, -n_answer:]
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for p in model.parameters():
            p.requires_grad_(True)
        model(input_ids=input_ids, labels=labels).loss.backward()
    norm = sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None) ** 0.5
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return norm


def test_grand_scores_the_answer_also_when_the_prompt_is_truncated():
    tokenizer = byte_tokenizer()
    model = tiny_model("llama", tokenizer)
    examples = [Example((("user", "cat"),), "cats"),  # fits
                Example((("user", "a very long input about a cat " * 3),), "cats")]  # the prompt overflows
    builder = PromptBuilder(tokenizer, INSTRUCTION, "single")
    lengths = [len(tokenizer("".join(builder.render_completion(e)))["input_ids"]) for e in examples]
    assert lengths[0] <= MAX_LENGTH < lengths[1]
    backend = HFBackend(preloaded=(model, tokenizer), max_length=MAX_LENGTH, device="cpu")
    context = MethodContext(examples, INSTRUCTION, seed=0, load_backend=lambda: backend)
    scores = grand_scores(context, [0, 1])
    expected = [_answer_gradient_norm(model, tokenizer, e) for e in examples]
    assert scores.tolist() == pytest.approx(expected, rel=1e-4)
