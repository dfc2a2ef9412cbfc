"""The target filter: with --val, the subsets come from the records of the --val examples' task."""

import json

import numpy as np
import pytest
from conftest import assert_varied, labelled_records, write_jsonl

from datawhisperer import ontask
from datawhisperer.backends.fake import FakeBackend
from datawhisperer.cli import main
from datawhisperer.errors import UserError
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig
from datawhisperer.strategies import STRATEGIES, Candidates, StrategyOptions, pick


def two_tasks(rng, n_task: int = 40, n_other: int = 40, n_val: int = 12, dim: int = 8):
    """Embeddings of two tasks (clusters around two directions, same spread), interleaved in the pool (the
    target task's at even indices, while both last), and --val examples of the first; and which are on-task."""
    task, other = np.eye(dim)[0] * 3.0, np.eye(dim)[1] * 3.0
    rows = [task + rng.normal(size=(n_task, dim)), other + rng.normal(size=(n_other, dim))]
    order = np.argsort([2 * i for i in range(n_task)] + [2 * i + 1 for i in range(n_other)], kind="stable")
    pool = np.vstack(rows)[order]
    on = np.array([True] * n_task + [False] * n_other)[order]
    return pool.astype(np.float32), (task + rng.normal(size=(n_val, dim))).astype(np.float32), on


@pytest.mark.parametrize("needs_model,reference,val,expected", [
    (True, False, True, "on"), (True, True, True, "off"), (True, False, False, "off"),
    (False, False, True, "off"),  # a model-free method (length) stays model-free
])
def test_auto_is_on_with_val_for_methods_that_load_the_model_except_the_reference(needs_model, reference, val,
                                                                                   expected):
    from types import SimpleNamespace

    method = SimpleNamespace(needs_model=needs_model, reference=reference)
    assert ontask.resolve("auto", has_val=val, method=method) == expected
    assert ontask.resolve("off", has_val=True, method=method) == "off"
    with pytest.raises(UserError, match="give --val FILE"):
        ontask.resolve("on", has_val=False, method=method)


def test_the_records_of_the_val_task_pass_and_those_of_another_task_do_not():
    pool, targets, on = two_tasks(np.random.default_rng(0))
    kept = ontask.on_task(pool, targets, needed=0)
    assert on[kept].all() and len(kept) >= 30  # none of the other task; most of its own
    assert ontask.summary(pool, targets, {"0.1": 8}) == {"on_task": len(kept), "pool": 80, "targets": 12}
    assert ontask.summary(pool, targets, {"70": 70})["filled_up"] == {"70": 70 - len(kept)}


def test_when_too_few_pass_the_most_target_like_fill_up_and_too_few_targets_decide_nothing():
    pool, targets, on = two_tasks(np.random.default_rng(1), n_task=5)
    kept = ontask.on_task(pool, targets, needed=20)
    assert len(kept) == 20 and set(np.flatnonzero(on)) <= set(kept)
    assert ontask.on_task(pool, targets[:3], needed=0) is None  # fewer than MIN_TARGETS
    pool[2] = np.nan  # an example too long for the model has no embedding: kept only when the budget needs all
    assert 2 not in ontask.on_task(pool, targets, needed=0)
    assert len(ontask.on_task(pool, targets, needed=45)) == 45  # the whole pool


@pytest.mark.parametrize("strategy", ["top", "stratified", "diverse"])
def test_every_strategy_picks_from_the_on_task_records_even_when_the_others_score_higher(strategy):
    rng = np.random.default_rng(2)
    pool, targets, on = two_tasks(rng)
    scores = np.where(on, rng.uniform(0, 1, 80), rng.uniform(2, 3, 80))  # the other task scores higher
    candidates = Candidates(scores, pool, targets, seed=0)
    filtered = pick(STRATEGIES.get(strategy), candidates, 10, StrategyOptions(drop=0.2, target_filter=True))
    assert len(set(filtered)) == 10 and on[filtered].all()
    if strategy == "top":
        assert not on[pick(STRATEGIES.get(strategy), candidates, 10, StrategyOptions())].any()
    assert filtered == pick(STRATEGIES.get(strategy), candidates, 10, StrategyOptions(drop=0.2, target_filter=True))


def test_top_drops_nothing_so_a_budget_the_on_task_records_can_fill_takes_none_of_the_others():
    rng = np.random.default_rng(4)
    pool, targets, on = two_tasks(rng)
    passed = set(ontask.on_task(pool, targets, needed=0))
    count = len(passed) - 2  # fewer than passed, more than passed x (1 - drop): stratified would have to fill up
    scores = np.where(on, rng.uniform(0, 1, 80), rng.uniform(2, 3, 80))  # those that did not pass score higher
    chosen = pick(STRATEGIES.get("top"), Candidates(scores, pool, targets, seed=0), count,
                  StrategyOptions(drop=0.4, target_filter=True))
    assert len(chosen) == count and set(chosen) <= passed


def test_labels_keep_their_shares_within_the_on_task_records():
    rng = np.random.default_rng(3)
    pool, targets, on = two_tasks(rng)
    groups = np.array([(i // 2) % 2 for i in range(80)])  # two labels in each task
    candidates = Candidates(rng.uniform(size=80), pool, targets, seed=0, groups=groups)
    chosen = pick(STRATEGIES.get("top"), candidates, 10, StrategyOptions(target_filter=True))
    assert on[chosen].all() and abs(sum(groups[chosen]) - 5) <= 1


def test_the_filter_without_embeddings_is_a_one_line_error():
    with pytest.raises(UserError, match="--target-filter off"):
        pick(STRATEGIES.get("top"), Candidates(np.arange(10.0)), 3, StrategyOptions(target_filter=True))


def mixed_pool(tmp_path) -> tuple[str, str, int]:
    """Reviews of animals (the target task) and sums (another task); --val holds more animal reviews."""
    animals = labelled_records(30)
    sums = [{"text": f"add {i} plus {i + 1} sum total number", "label": f"total {2 * i + 1}"} for i in range(30)]
    pool = write_jsonl(tmp_path / "pool.jsonl", [r for pair in zip(animals, sums) for r in pair])
    val = write_jsonl(tmp_path / "val.jsonl", labelled_records(42)[30:])
    return pool, val, len(animals)


def test_select_with_val_picks_its_subsets_from_the_val_task_and_says_so(tmp_path, capsys):
    pool, val, _ = mixed_pool(tmp_path)
    out = tmp_path / "run"
    assert main(["select", pool, "--val", val, "--out", str(out), "--backend", "fake", "--budget", "12",
                 "--task", "classification", "--balance", "off"]) == 0
    assert "Target filter:" in capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["target_filter"] == "on" and 20 <= info["target_filter"]["on_task"] <= 30
    assert_varied([row["score"] for row in map(json.loads, (out / "scores.jsonl").read_text().splitlines())])
    picked = [json.loads(line) for line in (out / "selected-12.jsonl").read_text().splitlines()]
    assert len(picked) == 12 and not any(r["text"].startswith("add ") for r in picked)
    assert main(["report", str(out)]) == 0
    assert "records like the --val examples" in (out / "report.html").read_text(encoding="utf-8")

    # re-selection without the model: the run's own filter gives select's file; --target-filter off picks from all
    assert main(["subset", str(out), "--budget", "12", "--quiet"]) == 0
    assert (out / "subset-top" / "selected-12.jsonl").read_bytes() == (out / "selected-12.jsonl").read_bytes()
    unfiltered = tmp_path / "all"
    select(SelectConfig(pool, val=val, out=str(unfiltered), budget=["12"], balance="off", target_filter="off",
                        task="classification", quiet=True), backend=FakeBackend())
    assert main(["subset", str(out), "--budget", "12", "--target-filter", "off", "--out", str(tmp_path / "again"),
                 "--quiet"]) == 0
    assert (tmp_path / "again" / "selected-12.jsonl").read_bytes() == (unfiltered / "selected-12.jsonl").read_bytes()
    from_all = [json.loads(line) for line in (unfiltered / "selected-12.jsonl").read_text().splitlines()]
    assert any(r["text"].startswith("add ") for r in from_all)  # the filter is what kept the sums out


def test_the_reference_method_random_is_not_filtered(tmp_path):
    pool, val, _ = mixed_pool(tmp_path)
    out = tmp_path / "random"
    select(SelectConfig(pool, val=val, out=str(out), method="random", budget=["0.5"],
                        task="classification", quiet=True),
           backend=FakeBackend())
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["target_filter"] == "off" and "target_filter" not in info


def test_shards_merged_filter_as_one_run_does(tmp_path):
    pool, val, _ = mixed_pool(tmp_path)
    common = ["--val", val, "--backend", "fake", "--task", "classification", "--balance", "off", "--quiet",
              "--episode-batch", "2"]
    assert main(["select", pool, "--out", str(tmp_path / "one"), "--budget", "12", *common]) == 0
    for shard in ("0/2", "1/2"):
        assert main(["select", pool, "--out", str(tmp_path / f"shard{shard[0]}"), "--shard", shard, *common]) == 0
    assert main(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(tmp_path / "merged"),
                 "--budget", "12", "--quiet"]) == 0
    merged = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert merged["target_filter"] == json.loads((tmp_path / "one" / "run.json").read_text())["target_filter"]
    assert (tmp_path / "merged" / "selected-12.jsonl").read_bytes() == \
        (tmp_path / "one" / "selected-12.jsonl").read_bytes()


def test_shards_made_before_the_filter_existed_merge_as_they_ran(tmp_path):
    pool, val, _ = mixed_pool(tmp_path)
    common = ["--val", val, "--backend", "fake", "--task", "classification", "--balance", "off", "--quiet",
              "--target-filter", "off"]
    for shard in ("0/2", "1/2"):
        out = tmp_path / f"shard{shard[0]}"
        assert main(["select", pool, "--out", str(out), "--shard", shard, *common]) == 0
        info = json.loads((out / "run.json").read_text())
        del info["config"]["target_filter"]  # as a shard written before the key existed
        (out / "run.json").write_text(json.dumps(info))
    assert main(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(tmp_path / "merged"),
                 "--quiet"]) == 0
    merged = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert merged["config"]["target_filter"] == "off" and "target_filter" not in merged


def test_bench_with_val_filters_every_method_but_random_and_records_it(tmp_path, tiny_model_dir):
    from conftest import plural_records

    from datawhisperer.rundir import RunDirectory

    pool, val, _ = mixed_pool(tmp_path)
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(5))
    out = tmp_path / "bench"
    assert main(["bench", "--pool", pool, "--val", val, "--test", test, "--out", str(out), "--task", "classification",
                 "--model", str(tiny_model_dir), "--methods", "datawhisperer-calibrated", "--methods",
                 "datawhisperer-calibrated-unfiltered", "--methods", "random", "--budgets", "0.25", "--seeds", "0",
                 "--epochs", "1", "--lora-r", "2", "--eval-max-new-tokens", "2", "--generate-limit", "3", "--no-full",
                 "--quiet"]) == 0
    cells = {m: json.loads((out / "cells" / f"{m}-b0.25-s0" / "result.json").read_text())
             for m in ("datawhisperer-calibrated", "datawhisperer-calibrated-unfiltered", "random")}
    assert [c["resolved"]["target_filter"] for c in cells.values()] == ["on", "off", "off"]
    embeddings, targets = RunDirectory(out / "selections" / "datawhisperer-calibrated-s0").embeddings()
    passed = set(ontask.on_task(embeddings, targets, needed=15).tolist())
    assert set(cells["datawhisperer-calibrated"]["selected"]) <= passed
    assert not set(cells["datawhisperer-calibrated-unfiltered"]["selected"]) <= passed  # the filter made the difference
