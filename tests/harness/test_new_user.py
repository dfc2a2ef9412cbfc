"""What a new user meets first (issue 19): budgets as counts and percentages in bench, missing extras found at
once, the help that lists every method, report and evaluate details."""

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import labelled_records, plural_records, write_jsonl

from datawhisperer.cli import main


def test_bench_takes_a_percentage_and_a_count_of_examples(tmp_path, tiny_model_dir):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(16))
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(4))
    out = tmp_path / "bench"
    assert main(["bench", "--pool", pool, "--test", test, "--out", str(out), "--task", "classification", "--model",
                 str(tiny_model_dir), "--methods", "random", "--methods", "length", "--budgets", "25%", "--budgets",
                 "3", "--seeds", "0", "--epochs", "1", "--lora-r", "2", "--eval-max-new-tokens", "2",
                 "--generate-limit", "2", "--no-full", "--quiet"]) == 0
    cells = {p.name: json.loads((p / "result.json").read_text()) for p in (out / "cells").iterdir()}
    assert cells["random-b25%-s0"]["examples"] == 4 and cells["random-b3-s0"]["examples"] == 3
    assert cells["length-b3-s0"]["budget"] == 3 and cells["length-b25%-s0"]["budget"] == 0.25
    assert "| random | 3 |" in (out / "results.md").read_text()


@pytest.mark.parametrize("command,extra", [
    (["bench", "--pool", "POOL", "--test", "POOL", "--out", "OUT"], "peft, matplotlib"),
    (["finetune", "POOL", "--out", "OUT", "--task", "classification"], "peft"),
    (["report", "RUN"], "matplotlib"),
])
def test_a_missing_extra_is_named_before_any_work(tmp_path, capsys, monkeypatch, command, extra):
    """On a core install (no `train` extra), bench used to run its selections and then end in a traceback."""
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(8))
    run = tmp_path / "run"
    assert main(["select", pool, "--backend", "fake", "--task", "classification", "--n-demos", "2", "--n-queries",
                 "2", "--out", str(run), "--quiet"]) == 0
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("peft", "matplotlib") else real(name, *a))
    args = [{"POOL": pool, "OUT": str(tmp_path / "out"), "RUN": str(run)}.get(a, a) for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"needs {extra}" in err and "pip install 'datawhisperer[train]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (run / "report.html").exists()


def test_bench_help_lists_every_method_from_the_registries(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    methods = text.split("--methods METHODS [METHODS ...] methods:")[1].split("--budgets")[0]  # its help alone
    for name in ("datawhisperer-calibrated", "datawhisperer-paper", "rds", "nuggets", "random", "stratified",
                 "diverse"):
        assert name in methods


def test_evaluate_of_a_hub_id_writes_under_eval_here_not_under_the_id(tmp_path, monkeypatch):
    from datawhisperer.harness.evaluate import default_out

    monkeypatch.chdir(tmp_path)
    assert default_out("HuggingFaceTB/SmolLM2-135M-Instruct") == Path("eval") / "HuggingFaceTB--SmolLM2-135M-Instruct"
    (tmp_path / "adapter").mkdir()
    assert default_out(str(tmp_path / "adapter")) == tmp_path / "adapter" / "eval"
    assert default_out(None) == Path("eval") / "embedded"


def test_the_loss_pass_of_evaluate_shows_a_progress_bar(tmp_path, tiny_model_dir, capsys):
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(5))
    assert main(["evaluate", str(tiny_model_dir), "--data", test, "--task", "classification", "--generate-limit", "1",
                 "--max-new-tokens", "2", "--out", str(tmp_path / "eval"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "loss: 100%" in err and "generating: 100%" in err
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["threads"] == 1


def test_the_report_of_a_small_pool_shows_no_example_twice_and_a_calibrated_run_its_coherence(tmp_path):
    import re

    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(12))
    run = tmp_path / "run"
    assert main(["select", pool, "--backend", "fake", "--task", "classification", "--estimator", "calibrated",
                 "--panel", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    top, bottom = page.split("<h2>Top examples</h2>")[1].split("<h2>Bottom examples</h2>")
    indices = [re.findall(r"<tr><td>(\d+)</td>", part) for part in (top, bottom)]
    assert len(indices[0]) + len(indices[1]) == 12 and not set(indices[0]) & set(indices[1])
    assert "Coherence of each example" in page and "demonstration position" not in page
