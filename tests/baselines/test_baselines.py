import json

import numpy as np
import pytest
from conftest import checked, plural_records, write_jsonl

import datawhisperer
from datawhisperer.backends.fake import FakeBackend
from datawhisperer.cli import main

RECORDS = [{"text": f"word{i}", "label": " ".join(["x"] * (1 + i % 5))} for i in range(20)]


def run(method, **options):
    return datawhisperer.select(RECORDS, method=method, backend="fake", task="classification", quiet=True,
                                backend_instance=options.pop("backend_instance", None), **options)


def test_length_puts_shortest_answers_first():
    order = run("length").ranking()
    lengths = [len(RECORDS[i]["label"].split()) for i in order]
    assert lengths == sorted(lengths)


def test_random_is_seeded():
    assert run("random", seed=1).ranking().tolist() == run("random", seed=1).ranking().tolist()
    assert run("random", seed=1).ranking().tolist() != run("random", seed=2).ranking().tolist()


def test_perplexity_and_ifd_follow_their_definitions():
    backend = FakeBackend()
    ppl = run("perplexity", backend_instance=backend).scores
    ifd = run("ifd", backend_instance=backend).scores
    builder = datawhisperer.prompts.PromptBuilder(backend.tokenizer, "Answer with the label only.", "single")
    from datawhisperer.tasks import FieldMap, examples_from_records, load_task

    examples = examples_from_records(RECORDS, FieldMap().with_task_defaults(load_task("classification")))
    for i, example in enumerate(examples):
        [(total, n)] = backend.loglikelihood([builder.render_completion(example)])
        [(alone, m)] = backend.loglikelihood([("", example.answer)])
        assert ppl[i] == pytest.approx(-total / n)
        assert ifd[i] == pytest.approx((-total / n) / (-alone / m))


def test_nuggets_scores_are_shares_of_anchors_helped():
    scores = run("nuggets", backend_instance=FakeBackend(), anchors=4).scores
    shares = np.round(scores, 2)
    assert set(shares.tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_nuggets_reports_the_agreement_of_its_even_and_odd_anchors(tmp_path):
    from datawhisperer.baselines.base import MethodContext
    from datawhisperer.baselines.nuggets import nuggets_scores
    from datawhisperer.reliability import split_half
    from datawhisperer.select_config import SelectConfig

    inputs = checked(SelectConfig(task="classification", method="nuggets"), RECORDS)
    backend = FakeBackend()
    context = MethodContext(inputs.examples, inputs.instruction, 0, lambda: backend, options={"anchors": 4})
    measured = nuggets_scores(context, list(range(20)))
    even, odd = measured.halves  # two anchors each: shares 0, 0.5 or 1
    assert set(np.round(even, 2).tolist()) | set(np.round(odd, 2).tolist()) <= {0.0, 0.5, 1.0}
    assert not np.array_equal(np.round(even, 2), np.round(odd, 2))  # the halves measure apart
    assert np.abs(measured.scores - (even + odd) / 2).max() < 2e-3  # the whole is their mean (up to tie-breaks)
    pool = write_jsonl(tmp_path / "pool.jsonl", RECORDS)
    assert main(["select", pool, "--out", str(tmp_path / "o"), "--method", "nuggets", "--anchors", "4",
                 "--backend", "fake", "--task", "classification", "--quiet"]) == 0
    run_info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run_info["reliability"] == {"estimator": "nuggets", **split_half(even, odd, "anchors")}


@pytest.mark.parametrize("method", ["perplexity", "ifd", "nuggets", "grand", "random", "length"])
def test_every_baseline_writes_select_outputs_with_a_real_model(tmp_path, tiny_model_dir, method):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(10))
    out = tmp_path / method
    assert main(["select", pool, "--method", method, "--model", str(tiny_model_dir), "--task", "classification",
                 "--out", str(out), "--budget", "0.3", "--anchors", "3", "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(isinstance(r["score"], float) for r in rows)
    assert len((out / "selected-0.3.jsonl").read_text().splitlines()) == 3
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == method and info["selection_seconds"] >= 0
    if method == "grand":
        assert all(r["score"] > 0 for r in rows)


def test_unknown_method_suggests(capsys, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(10))
    assert main(["select", pool, "--method", "nugets", "--backend", "fake"]) == 2
    assert "did you mean 'nuggets'" in capsys.readouterr().err
