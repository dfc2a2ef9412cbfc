"""The Data Whisperer method: --rounds auto plays rounds until the run's own reliability reaches a target."""

import json

import pytest
from conftest import checked, labelled_records, read_scores, write_jsonl

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.cli import main
from datawhisperer.errors import UserError
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig

FAKE = ["--backend", "fake", "--task", "classification", "--quiet"]


def auto(pool, out, estimator, target, max_rounds=4, extra=()):
    args = ["select", pool, "--out", str(out), *FAKE, "--estimator", estimator, "--rounds", "auto",
            "--target-reliability", str(target), "--max-rounds", str(max_rounds), *extra]
    assert main(args) == 0
    return json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("estimator,extra,measurable_from", [
    ("calibrated", ["--panel", "4"], 1),
    ("paper", ["--n-demos", "3", "--n-queries", "2", "--scoring", "likelihood"], 2),  # halves by round: two needed
])
def test_rounds_auto_stops_at_the_target_and_scores_like_that_many_rounds(tmp_path, estimator, extra,
                                                                          measurable_from):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    capped = auto(pool, tmp_path / "capped", estimator, target=1.0, extra=extra)  # never reached: every round
    by_round = capped["reliability_by_round"]
    assert capped["rounds_played"] == capped["rounds_cap"] == 4 and len(by_round) == 4 and len(set(by_round)) > 1
    target = max(by_round[measurable_from - 1:-1])  # reached before the cap
    assert target > 0
    stopped_at = next(k + 1 for k in range(measurable_from - 1, 4) if by_round[k] >= target)
    info = auto(pool, tmp_path / "auto", estimator, target=target, extra=extra)
    assert info["rounds_played"] == stopped_at < 4 and info["reliability_by_round"] == by_round[:stopped_at]
    fixed = tmp_path / "fixed"
    assert main(["select", pool, "--out", str(fixed), *FAKE, "--estimator", estimator, "--rounds",
                 str(stopped_at), *extra]) == 0
    assert read_scores(tmp_path / "auto") == read_scores(fixed)  # the scores of exactly that many rounds
    assert info["reliability"] == json.loads((fixed / "run.json").read_text())["reliability"]


def test_rounds_auto_resumes_to_the_same_decision(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    first = auto(pool, tmp_path / "a", "calibrated", target=1.0, max_rounds=3, extra=["--panel", "4"])
    log = tmp_path / "a" / "episodes.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:50]))  # killed in round 2
    run = tmp_path / "a" / "run.json"
    run.write_text(run.read_text().replace('"finished"', '"running"'))
    assert main(["select", pool, "--out", str(tmp_path / "a"), *FAKE, "--estimator", "calibrated", "--panel", "4",
                 "--rounds", "auto", "--target-reliability", "1.0", "--max-rounds", "3", "--resume"]) == 0
    again = json.loads(run.read_text())
    assert again["resumed_episodes"] == 50 and again["reliability_by_round"] == first["reliability_by_round"]


def test_rounds_auto_is_checked_in_one_line():
    with pytest.raises(UserError, match="whole number or auto"):
        SelectConfig(rounds="many")
    with pytest.raises(UserError, match="a shard cannot see"):  # Data Whisperer's own check, before any model
        checked(SelectConfig(out="o", rounds="auto", shard="0/2"), labelled_records(12))
    with pytest.raises(UserError, match="target-reliability"):
        SelectConfig(rounds="auto", target_reliability=1.5)
    assert SelectConfig(rounds="3").rounds == 3 and SelectConfig(rounds="auto", max_rounds=5).planned_rounds == 5


def test_the_summary_says_what_rounds_auto_decided(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    select(SelectConfig(pool, out=str(tmp_path / "o"), task="classification", estimator="calibrated", panel=4,
                        rounds="auto", target_reliability=1.0, max_rounds=2), backend=FakeBackend())
    assert "--rounds auto: played 2 of at most 2 rounds (reliability after each:" in capsys.readouterr().err


def test_rounds_auto_decides_alike_on_every_rank(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    args = [*FAKE, "--estimator", "calibrated", "--panel", "4", "--rounds", "auto", "--max-rounds", "4"]
    single = tmp_path / "single"
    capped = auto(pool, single, "calibrated", target=1.0, extra=["--panel", "4"])
    target = str(max(capped["reliability_by_round"][:-1]))  # reached before the cap
    assert main(["select", pool, "--out", str(single), *args, "--target-reliability", target, "--overwrite"]) == 0
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2", "--master-port", "29523"]
    ranks = tmp_path / "ranks"
    proc = subprocess.run([*torchrun, "-m", "datawhisperer", "select", pool, "--out", str(ranks), *args,
                           "--target-reliability", target], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = (json.loads((d / "run.json").read_text()) for d in (single, ranks))
    assert two["world_size"] == 2 and one["rounds_played"] == two["rounds_played"] < 4
    assert one["reliability_by_round"] == two["reliability_by_round"]
    assert read_scores(single) == read_scores(ranks)


def test_rounds_auto_plays_no_more_rounds_than_the_fold_has_new_panels_for(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))  # folds of 20: two panels of 8
    info = auto(pool, tmp_path / "o", "calibrated", target=1.0, max_rounds=8, extra=["--panel", "8"])
    assert info["rounds_cap"] == info["rounds_played"] == 2
    with pytest.raises(UserError, match="at most 2 rounds"):
        select(SelectConfig(pool, task="classification", estimator="calibrated", panel=8, rounds=3), backend=FakeBackend())


def test_credit_ignores_outcomes_beyond_the_plan(tmp_path):
    """A resumed --rounds auto run may find rounds on disk it decided not to play: they are not credited."""
    from dataclasses import replace

    from datawhisperer.rundir import RunDirectory
    from datawhisperer.whisperer import credit

    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    three = auto(pool, tmp_path / "o", "calibrated", target=1.0, max_rounds=3, extra=["--panel", "4"])
    assert three["rounds_played"] == 3
    outcomes = RunDirectory(tmp_path / "o").outcomes()
    config = SelectConfig(pool, task="classification", estimator="calibrated", panel=4, rounds=2)
    inputs = checked(config)
    two = {key: o for key, o in outcomes.items() if o.round < 2}
    assert len(two) < len(outcomes)
    assert credit(inputs, outcomes, {}).scores.tolist() == credit(inputs, two, {}).scores.tolist()
    assert replace(inputs.plan, rounds=3).episodes()[:len(inputs.plan.episodes())] == inputs.plan.episodes()
