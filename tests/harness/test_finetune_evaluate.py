import json

import pytest
import torch
from conftest import byte_tokenizer, plural_records, write_jsonl

from datawhisperer.cli import main
from datawhisperer.harness.task_model import builder_for, encode_completion
from datawhisperer.tasks import Example


def test_loss_covers_the_answer_and_end_of_turn_only():
    tokenizer = byte_tokenizer()
    builder = builder_for(tokenizer, "Pluralise.")
    ids, start = encode_completion(tokenizer, builder, Example((("user", "cat"),), "cats"), max_length=512)
    assert tokenizer.decode(ids[start:]) == "cats<|im_end|>\n"
    assert tokenizer.decode(ids[:start]).endswith("<|im_start|>assistant\n")
    trimmed, trimmed_start = encode_completion(tokenizer, builder, Example((("user", "cat " * 50),), "cats"), 30)
    assert len(trimmed) == 30 and tokenizer.decode(trimmed[trimmed_start:]) == "cats<|im_end|>\n"


def test_finetune_then_evaluate(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "train.jsonl", plural_records(8))
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(6))
    adapter = tmp_path / "adapter"
    assert main(["finetune", data, "--out", str(adapter), "--model", str(tiny_model_dir), "--task", "classification",
                 "--epochs", "4", "--lr", "5e-3", "--batch-size", "4", "--lora-r", "4", "--quiet"]) == 0
    info = json.loads((adapter / "finetune.json").read_text())
    assert (adapter / "adapter_config.json").exists() and info["steps"] == 8 and info["finetune_seconds"] > 0
    assert info["final_loss"] < info["first_loss"]  # it learns the (repeated) training answers
    out = tmp_path / "eval"
    assert main(["evaluate", str(adapter), "--data", test, "--task", "classification", "--out", str(out),
                 "--max-new-tokens", "4", "--generate-limit", "4", "--quiet"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["n_loss"] == 6 and result["n_generate"] == 4 and 0 <= result["score"] <= 100
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    base = tmp_path / "base-eval"
    assert main(["evaluate", str(tiny_model_dir), "--data", test, "--task", "classification", "--out", str(base),
                 "--max-new-tokens", "2", "--generate-limit", "0", "--quiet"]) == 0
    # the fine-tuned model fits the plurals better than the random base model
    assert result["loss"] < json.loads((base / "evaluation.json").read_text())["loss"]


def test_evaluation_loss_is_the_mean_answer_cross_entropy(tmp_path, tiny_model_dir):
    from datawhisperer.harness.evaluate import answer_losses
    from datawhisperer.harness.task_model import load_for_training, load_task_data

    test = write_jsonl(tmp_path / "test.jsonl", plural_records(3))
    data = load_task_data(test, "classification")
    model, tokenizer, device, _ = load_for_training(str(tiny_model_dir), "cpu", log=lambda m: None)
    builder = builder_for(tokenizer, data.instruction)
    losses = answer_losses(model, tokenizer, builder, data.examples, batch_size=2, max_length=512, device=device)
    for loss, example in zip(losses, data.examples):
        ids, start = encode_completion(tokenizer, builder, example, 512)
        labels = torch.tensor([[-100] * start + ids[start:]])
        with torch.no_grad():
            expected = model(input_ids=torch.tensor([ids]), labels=labels).loss
        assert loss == pytest.approx(float(expected), abs=1e-4)


def test_answer_loss_equals_the_causal_lm_loss(tiny_model_dir):
    from datawhisperer.harness.finetune import answer_loss
    from datawhisperer.harness.task_model import load_for_training

    model, _, _, _ = load_for_training(str(tiny_model_dir), "cpu", log=lambda m: None)
    torch.manual_seed(0)
    input_ids = torch.randint(0, 200, (3, 12))
    labels = input_ids.clone()
    labels[0, :7], labels[1, :4], labels[2, :9] = -100, -100, -100
    labels[1, 10:] = -100  # right padding
    mask = torch.ones_like(input_ids)
    mask[1, 10:] = 0
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        assert float(answer_loss(model, input_ids, mask, labels)) == pytest.approx(float(expected), abs=1e-5)


def test_micro_batches_stay_within_the_token_budget_and_a_batch_that_fits_is_one():
    from datawhisperer.harness.finetune import micro_batches

    assert micro_batches([100, 200, 300, 400], 4096) == [[0, 1, 2, 3]]
    runs = micro_batches([300, 500, 900, 1000, 1024, 1024, 1024, 1024], 2048)
    assert sorted(r for run in runs for r in run) == list(range(8)) and len(runs) == 4
    assert runs[0] == [0, 1] and runs[1] == [2, 3]
    assert micro_batches([5000, 10], 4096) == [[0], [1]]  # a row over the budget goes alone


def test_a_batch_cut_into_micro_batches_has_the_whole_batch_s_loss_and_gradient(tiny_model_dir, monkeypatch):
    from datawhisperer.harness import finetune
    from datawhisperer.harness.task_model import load_for_training

    model, _, _, _ = load_for_training(str(tiny_model_dir), "cpu", log=lambda m: None)
    model.eval()  # no dropout: the two passes must see the same network
    torch.manual_seed(0)
    batch = [(torch.randint(1, 200, (n,)).tolist(), start) for n, start in ((9, 4), (14, 6), (20, 15), (25, 3))]

    def step(budget):
        monkeypatch.setattr(finetune, "MICRO_BATCH_TOKENS", budget)
        model.zero_grad(set_to_none=True)
        loss = finetune.batch_step(model, batch, 0, "cpu")
        return loss, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    (whole, whole_grad), (cut, cut_grad) = step(4096), step(40)
    assert len(finetune.micro_batches([len(ids) for ids, _ in batch], 40)) == 3
    assert cut == pytest.approx(whole, rel=1e-5) and whole > 0
    assert torch.allclose(cut_grad, whole_grad, rtol=1e-4, atol=1e-6)
