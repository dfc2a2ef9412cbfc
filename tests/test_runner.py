"""Runs end to end on the fake backend: make-up episodes for examples left unscored, what run.json
reports about them, and the selection's own peak memory."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import labelled_records, write_jsonl

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.cli import main
from datawhisperer.errors import UserError
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig

LONG, GIANT = 5, 11  # pool indices
FLAGS = ["--backend", "fake", "--task", "classification", "--n-demos", "3", "--n-queries", "2", "--max-length",
         "62", "--quiet"]


def records() -> list[dict]:
    """Short examples, one that fits the context alone but not beside two others, one that never fits."""
    pool = [{"text": f"word {i}", "label": f"{i % 2}"} for i in range(20)]
    pool[LONG]["text"] = "long " * 30 + "end"
    pool[GIANT]["text"] = "huge " * 100 + "end"
    return pool


def always_zero(suffix: str) -> str:
    return "0"  # right for the queries labelled 0, wrong for the others: scores vary


def run(tmp_path: Path, name: str, backend=None, extra=()) -> tuple[list[dict], dict]:
    out = tmp_path / name
    pool = write_jsonl(tmp_path / "pool.jsonl", records())
    val = write_jsonl(tmp_path / "val.jsonl", [{"text": f"query {i}", "label": f"{i % 2}"} for i in range(6)])
    config = SelectConfig(pool, out=str(out), task="classification", n_demos=3, n_queries=2, max_length=62,
                          val=val, quiet=True, strategy="top", **dict(extra), estimator="paper")
    select(config, backend=backend or FakeBackend(answer_fn=always_zero, max_length=62))
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "run.json").read_text())


def test_an_example_that_fits_only_alone_is_scored_and_one_that_never_fits_is_reported(tmp_path):
    rows, info = run(tmp_path, "out")
    scores = {r["index"]: r["score"] for r in rows}
    assert scores[LONG] is not None and math.isfinite(scores[LONG])  # before: dropped, never shown, ranked last
    assert scores[GIANT] is None
    assert sum(s is None for s in scores.values()) == 1
    assert len({round(s, 9) for s in scores.values() if s is not None}) > 5  # scores vary
    assert info["unscored_examples"] == 1 and info["unscored_reasons"] == {"too long for the context": 1}
    assert info["makeup_episodes"] >= 2
    episodes = [json.loads(line) for line in (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()]
    makeups = [e for e in episodes if e["targets"]]
    assert any(e["demos"] == [LONG] and not e["failed"] for e in makeups)
    assert any(e["unfit"] == [GIANT] and e["reason"] == "no demonstration fits the context" for e in makeups)


class PoisonBackend(FakeBackend):
    """Every answer is unparseable (empty) when example 7 is among the demonstrations."""

    def generate(self, prompts, max_new_tokens, stop=()):
        results = super().generate(prompts, max_new_tokens, stop)
        for prompt, result in zip(prompts, results):
            if "word 7<" in prompt.prefix:
                result.texts = [""] * len(result.texts)
        return results


def test_the_company_of_a_failing_example_is_scored_in_makeups(tmp_path):
    rows, info = run(tmp_path, "out", PoisonBackend(answer_fn=always_zero, max_length=62), {"max_retries": 1})
    unscored = [r["index"] for r in rows if r["score"] is None]
    assert unscored == [7, GIANT]  # before: 7's episode-mates were left unscored too
    assert info["unscored_reasons"] == {"every episode failed": 1, "too long for the context": 1}


@pytest.mark.parametrize("count", [2, 3])
def test_makeups_do_not_depend_on_how_the_work_is_spread(tmp_path, count):
    pool = write_jsonl(tmp_path / "pool.jsonl", records())
    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), *FLAGS]) == 0
    shards = []
    for index in range(count):
        shards.append(str(tmp_path / f"shard{index}"))
        assert main(["select", pool, "--out", shards[-1], "--shard", f"{index}/{count}", *FLAGS]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", *shards, "--out", str(merged), "--quiet"]) == 0
    assert (merged / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    info = json.loads((merged / "run.json").read_text())
    assert info["makeup_episodes"] > 0 and info["unscored_examples"] == json.loads(
        (one / "run.json").read_text())["unscored_examples"]


def test_resume_in_the_middle_of_makeups_matches_an_uninterrupted_run(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", records())
    one, cut = tmp_path / "one", tmp_path / "cut"
    assert main(["select", pool, "--out", str(one), *FLAGS]) == 0
    assert main(["select", pool, "--out", str(cut), *FLAGS]) == 0
    lines = (cut / "episodes.jsonl").read_text().splitlines(keepends=True)
    last_makeup = max(k for k, line in enumerate(lines) if json.loads(line)["targets"])
    (cut / "episodes.jsonl").write_text("".join(lines[:last_makeup]))
    run_file = cut / "run.json"
    run_file.write_text(run_file.read_text().replace('"finished"', '"running"'))
    assert main(["select", pool, "--out", str(cut), *FLAGS, "--resume"]) == 0
    assert (cut / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    assert json.loads(run_file.read_text())["played_episodes"] >= 1


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux: the peak is reset through /proc")
def test_peak_memory_is_the_selections_own(tmp_path):
    big = np.ones(400 * 2**20 // 8)  # 400 MB, touched
    with open("/proc/self/status") as status:
        during = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
    del big
    _, info = run(tmp_path, "out")
    assert info["peak_rss_mb"] < during - 200  # before: the process's lifetime peak, the freed array included


def test_the_running_run_json_records_the_resolved_configuration_and_the_callers_is_untouched(tmp_path):
    """One configuration, resolved once: what a run records while it runs is what it records when it finishes
    (the calibrated estimator's overrides, the default episode batch), and the caller's object keeps its values."""
    class Interrupted(FakeBackend):
        def score(self, *args, **kwargs):
            raise KeyboardInterrupt  # as a user's Ctrl-C in the middle of the first episode

    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(20))
    config = SelectConfig(pool, out=str(tmp_path / "out"), task="classification", estimator="calibrated", panel=4,
                          quiet=True)
    with pytest.raises(KeyboardInterrupt):
        select(config, backend=Interrupted())
    running = json.loads((tmp_path / "out" / "run.json").read_text())
    assert running["status"] == "running"
    assert (config.n_demos, config.scoring, config.episode_batch) == (5, "generate", None)  # as the caller wrote it
    select(SelectConfig(**{**config.__dict__, "resume": True}), backend=FakeBackend())
    finished = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {**running["config"], "resume": True} == finished["config"]  # the second sitting resumed
    assert (finished["config"]["n_demos"], finished["config"]["scoring"], finished["config"]["episode_batch"]) == \
        (1, "likelihood", 1)


def test_a_subset_that_must_hold_unscored_examples_says_so_on_stderr_and_in_run_json(tmp_path, capsys):
    rows, info = run(tmp_path, "out", extra={"budget": ["0.5", "1.0"], "balance": "off"})
    assert info["unscored_examples"] == 1
    assert info["unscored_in_subsets"] == {"1.0": 1}  # the half-pool subset needs none of them
    err = capsys.readouterr().err
    assert "the subset of budget 1.0 holds 1 unscored examples" in err and "0.5" not in err  # said under --quiet


def test_a_run_that_scores_nothing_ends_in_one_line_and_writes_no_subset(tmp_path, capsys):
    class Unparseable(FakeBackend):
        def generate(self, prompts, max_new_tokens, stop=()):
            results = super().generate(prompts, max_new_tokens, stop)
            for result in results:
                result.texts = [""] * len(result.texts)  # every answer fails the metric: every episode fails
            return results

    pool = write_jsonl(tmp_path / "pool.jsonl", records()[:12])
    out = tmp_path / "out"
    with pytest.raises(UserError) as caught:
        select(SelectConfig(pool, out=str(out), task="classification", n_demos=3, n_queries=2, quiet=True, estimator="paper"),
               backend=Unparseable())
    assert "no example could be scored (12 every episode failed)" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not list(out.glob("selected-*")) and not (out / "scores.jsonl").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_a_subset_of_short_answers_is_warned_of_and_length_balance_silences_it():
    from datawhisperer.balance import balance_groups
    from datawhisperer.data import table_from_records
    from datawhisperer.runner import answer_chars, length_line
    from datawhisperer.selection import Selection
    from datawhisperer.strategies import StrategyOptions

    answers = [" ".join(["word"] * (1 + k % 30)) for k in range(60)]
    short_first = -np.array([len(a) for a in answers], dtype=float) + np.arange(60) / 100
    table = table_from_records([{"instruction": f"task {k}", "output": a} for k, a in enumerate(answers)])

    def info_for(balance: str) -> dict:
        selection = Selection(table, short_first, np.zeros(60, dtype=np.int64), {}, None, None, "top",
                              StrategyOptions(), 0, balance_groups(answers, balance))
        return {"answer_chars": answer_chars(answers, selection, ["6", "0.75"]), "config": {"balance": balance}}

    warned = info_for("off")
    assert warned["answer_chars"]["pool_median"] == 76.5  # answers of 1-30 words, twice each
    assert warned["answer_chars"]["subset_medians"]["6"] == 9.0  # answers of 1, 2 and 3 words
    line = length_line(warned)
    assert line.startswith("\nWarning:") and "favour short answers" in line and "at budget 6" in line
    assert "at budget 0.75" not in line  # its median answer (12 words) is within a factor of two of the pool's
    balanced = info_for("answer-length")
    assert balanced["answer_chars"]["subset_medians"]["6"] > 40 and length_line(balanced) == ""


def test_run_json_and_the_summary_say_what_the_default_balance_kept(tmp_path):
    from datawhisperer.runner import balance_line

    labels = write_jsonl(tmp_path / "labels.jsonl", labelled_records(24))
    free = write_jsonl(tmp_path / "free.jsonl", [{"instruction": f"task {k}", "input": "", "output": " ".join(["w"] * (1 + k))}
                                                 for k in range(24)])
    seen = {}
    for name, pool, task in (("labels", labels, "classification"), ("free", free, "instruction")):
        for balance in ("auto", "off"):
            out = tmp_path / f"{name}-{balance}"
            assert main(["select", pool, "--out", str(out), "--backend", "fake", "--task", task, "--n-demos", "3",
                         "--n-queries", "2", "--budget", "10", "--balance", balance, "--quiet"]) == 0
            seen[name, balance] = json.loads((out / "run.json").read_text())
    assert seen["labels", "auto"]["balanced_by"] == "labels" and seen["free", "auto"]["balanced_by"] == "answer-length"
    assert seen["labels", "off"]["balanced_by"] is None and "answer_chars" in seen["free", "off"]
    assert "each label's share" in balance_line(seen["labels", "auto"])
    assert "answer lengths" in balance_line(seen["free", "auto"]) and balance_line(seen["free", "off"]) == ""
    words = [len(json.loads(line)["output"].split())
             for line in (tmp_path / "free-auto" / "selected-10.jsonl").read_text().splitlines()]
    assert sorted((w - 1) // 5 for w in words) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # two from each fifth by length
