"""`datawhisperer subset`: re-selection from a finished run, with no model, equals what `select` wrote."""

import json

import numpy as np
import pytest
from conftest import labelled_records, write_jsonl

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.cli import main
from datawhisperer.rundir import RunDirectory
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig


def classification_pool(tmp_path, n: int = 60) -> str:
    records = [dict(r, label=r["label"] if i % 3 else "thing") for i, r in enumerate(labelled_records(n))]
    return write_jsonl(tmp_path / "pool.jsonl", records)


@pytest.mark.parametrize("strategy", ["top", "stratified", "diverse"])
def test_reselecting_with_the_runs_own_strategy_writes_select_s_files_byte_for_byte(tmp_path, strategy, capsys):
    pool = classification_pool(tmp_path)
    out = tmp_path / "run"
    select(SelectConfig(pool, out=str(out), task="classification", estimator="calibrated", panel=4, seed=3,
                        strategy=strategy, drop=0.1, quiet=True, budget=["0.25", "7"]), backend=FakeBackend())
    assert main(["subset", str(out), "--budget", "0.25", "--budget", "7"]) == 0
    again = out / f"subset-{strategy}"
    for name in ("selected-0.25.jsonl", "selected-7.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    info = json.loads((again / "subset.json").read_text())
    assert info["strategy"] == strategy and info["seed"] == 3 and info["drop"] == 0.1
    assert "written to" in capsys.readouterr().out


def test_another_strategy_and_a_scores_file_from_elsewhere(tmp_path):
    pool = classification_pool(tmp_path, 40)
    scores = tmp_path / "mine.jsonl"
    values = np.linspace(-1, 1, 40)
    scores.write_text("".join(json.dumps({"index": i, "score": float(v)}) + "\n" for i, v in enumerate(values)))
    out = tmp_path / "picked"
    assert main(["subset", "--scores", str(scores), "--data", pool, "--task", "classification", "--budget", "10",
                 "--strategy", "stratified",
                 "--drop", "0.5", "--out", str(out), "--quiet"]) == 0
    picked = [json.loads(line) for line in (out / "selected-10.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in open(pool)]
    indices = [records.index(r) for r in picked]
    assert len(indices) == 10 and min(indices) >= 20  # the lower half of the scores was dropped


@pytest.mark.parametrize("args,message", [
    (["--budget", "39", "--strategy", "stratified", "--drop", "0.5"], "can pick from"),
    (["--budget", "0.2", "--strategy", "diverse"], "needs the examples' embeddings"),
    (["--budget", "500"], "more examples than the pool's 40"),
    (["--budget", "0.2", "--strategy", "strat"], "did you mean 'stratified'"),
    ([], "give at least one --budget"),
])
def test_what_cannot_be_met_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, args, message):
    pool = classification_pool(tmp_path, 40)
    out = tmp_path / "run"
    select(SelectConfig(pool, out=str(out), task="classification", quiet=True, estimator="paper", n_demos=3,
                        n_queries=2, rounds=2, strategy="top"), backend=FakeBackend())  # no embeddings
    assert len(set(RunDirectory(out).scores().tolist())) > 30  # few ties: the drop bites
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["subset", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.rglob("*")) == before


REVIEWS = [("The battery lasts all week and the screen is sharp", "positive"),
           ("Arrived broken and support never answered", "negative"),
           ("Comfortable, quiet and cheaper than the shop down the road", "positive"),
           ("The strap snapped on the second day", "negative"),
           ("Exactly as described, would order again", "positive"),
           ("Smells of plastic and the lid does not close", "negative")]


def review_pool(tmp_path) -> tuple[str, list[str]]:
    """66 short reviews of our own, 36 positive and 30 negative."""
    records = [{"text": f"{text} ({k})", "label": label} for k in range(11) for text, label in REVIEWS]
    records = [r for r in records if not (r["label"] == "negative" and r["text"].endswith("(10)"))] + \
        [{"text": f"Fine for the price ({k})", "label": "positive"} for k in range(3)]
    return write_jsonl(tmp_path / "reviews.jsonl", records), [r["label"] for r in records]


@pytest.mark.parametrize("strategy", ["top", "stratified", "diverse"])
def test_a_classification_subset_keeps_each_label_s_share_within_five_points(tmp_path, strategy):
    pool, labels = review_pool(tmp_path)
    share = labels.count("positive") / len(labels)
    out = tmp_path / "run"
    select(SelectConfig(pool, out=str(out), task="classification", estimator="calibrated", panel=4, quiet=True,
                        strategy=strategy, budget=["0.25", "0.5", "20"]), backend=FakeBackend())
    assert main(["subset", str(out), "--budget", "12", "--strategy", "stratified", "--out", str(tmp_path / "again"),
                 "--quiet"]) == 0
    for path in [*out.glob("selected-*.jsonl"), tmp_path / "again" / "selected-12.jsonl"]:
        chosen = [json.loads(line)["label"] for line in path.read_text().splitlines()]
        assert abs(chosen.count("positive") / len(chosen) - share) <= 0.05, path.name
    # unbalanced, the same scores drop a class's share by more than that for at least one budget
    unbalanced = tmp_path / "unbalanced"
    assert main(["subset", str(out), "--budget", "0.25", "--budget", "0.5", "--budget", "20", "--balance", "off",
                 "--out", str(unbalanced), "--quiet"]) == 0
    drifts = [abs([json.loads(line)["label"] for line in p.read_text().splitlines()].count("positive")
                  / len(p.read_text().splitlines()) - share) for p in unbalanced.glob("selected-*.jsonl")]
    assert max(drifts) > 0.05


def test_overwrite_replaces_the_earlier_re_selection_s_subsets_and_no_others(tmp_path):
    pool = classification_pool(tmp_path, 40)
    scores = tmp_path / "mine.jsonl"
    scores.write_text("".join(json.dumps({"index": i, "score": float(i)}) + "\n" for i in range(40)))
    out = tmp_path / "picked"
    common = ["subset", "--scores", str(scores), "--data", pool, "--task", "classification", "--out", str(out),
              "--quiet", "--balance", "off"]
    assert main([*common, "--budget", "10", "--budget", "0.5"]) == 0
    assert main([*common, "--budget", "5"]) == 2  # subsets here already
    assert main([*common, "--budget", "5", "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("selected-*")) == ["selected-5.jsonl"]
    picked = [json.loads(line) for line in (out / "selected-5.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in open(pool)]
    assert sorted(records.index(r) for r in picked) == [35, 36, 37, 38, 39]


def test_length_balance_through_subset_spreads_a_short_answer_score_over_every_length(tmp_path):
    answers = [" ".join(["step"] * (1 + k % 25)) for k in range(100)]
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": f"Task {k}", "input": "", "output": a}
                                                  for k, a in enumerate(answers)])
    scores = tmp_path / "short-first.jsonl"  # a score that favours short answers, as the calibrated one does
    scores.write_text("".join(json.dumps({"index": i, "score": -len(a) + i / 1000}) + "\n"
                              for i, a in enumerate(answers)))
    common = ["subset", "--scores", str(scores), "--data", pool, "--budget", "10", "--quiet"]
    words = {}
    for balance in ("answer-length", "off"):
        assert main([*common, "--balance", balance, "--out", str(tmp_path / balance)]) == 0
        picked = (tmp_path / balance / "selected-10.jsonl").read_text().splitlines()
        words[balance] = sorted(len(json.loads(line)["output"].split()) for line in picked)
    assert words["off"] == [1] * 4 + [2] * 4 + [3] * 2
    assert len(words["answer-length"]) == 10 and min(words["answer-length"]) == 1 and max(words["answer-length"]) >= 21
    assert sum(w > 5 for w in words["answer-length"]) == 8  # two from each length fifth


def test_a_run_saved_before_auto_meant_answer_lengths_reselects_as_it_selected(tmp_path):
    answers = [" ".join(["step"] * (1 + k % 60)) for k in range(120)]  # 60 distinct answers: not labels
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": f"Task {k}", "input": "", "output": a}
                                                  for k, a in enumerate(answers)])
    runs = {}
    for balance in ("off", "auto"):
        out = tmp_path / balance
        select(SelectConfig(pool, out=str(out), task="instruction", n_demos=3, n_queries=2, seed=1, quiet=True,
                            budget=["10"], balance=balance), backend=FakeBackend())
        runs[balance] = out
    assert (runs["off"] / "selected-10.jsonl").read_bytes() != (runs["auto"] / "selected-10.jsonl").read_bytes()
    info_file = runs["off"] / "run.json"
    info = json.loads(info_file.read_text())
    info["config"]["balance"] = "auto"  # as a run of then wrote it: auto, no groups for these answers
    del info["balanced_by"]
    info_file.write_text(json.dumps(info))
    for run in runs.values():
        assert main(["subset", str(run), "--budget", "10", "--out", str(run / "again"), "--quiet"]) == 0
        assert (run / "again" / "selected-10.jsonl").read_bytes() == (run / "selected-10.jsonl").read_bytes()
    assert json.loads((runs["off"] / "again" / "subset.json").read_text())["balance"] == "off"
