import json

import numpy as np
import pytest
from conftest import plural_records, write_jsonl

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
