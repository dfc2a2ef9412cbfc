"""Crash safety: kill -9 at any moment, resume, and end with the scores of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_same_run, assert_varied, labelled_records, read_episodes, read_scores, write_jsonl

from datawhisperer.cli import main
from datawhisperer.errors import UserError
from datawhisperer.rundir import RunDirectory
from datawhisperer.runlogs import EpisodeLog

HELPER = Path(__file__).parent / "helpers" / "slow_select.py"
FAKE = ["--backend", "fake", "--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3",
        "--n-queries", "2", "--quiet"]


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture
def pool(tmp_path):
    return write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))  # 14 planned episodes


@pytest.fixture
def reference(tmp_path, pool):
    out = tmp_path / "reference"
    assert main(["select", pool, "--out", str(out), *FAKE]) == 0
    # the fake answers with a demonstration's label: some right, so resumed runs are compared on real numbers
    assert_varied([r["score"] for r in read_scores(out)])
    return out


@pytest.mark.parametrize("kill_after", [0, 1, 6, 13])
def test_kill_nine_then_resume_matches_uninterrupted_run(tmp_path, pool, reference, kill_after):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(HELPER), pool, str(out), "0.05"])
    deadline = time.time() + 60
    while lines(out / "episodes.jsonl") < kill_after and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = lines(out / "episodes.jsonl")
    assert finished >= kill_after
    assert not (out / "scores.jsonl").exists() or finished == 14
    assert main(["select", pool, "--out", str(out), *FAKE, "--resume"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["resumed_episodes"] == finished
    assert info["played_episodes"] == 14 - finished  # no finished episode is redone
    assert (out / "scores.jsonl").read_bytes() == (reference / "scores.jsonl").read_bytes()
    keys = [(e["episode"], e["attempt"]) for e in map(json.loads, (out / "episodes.jsonl").read_text().splitlines())]
    assert len(keys) == len(set(keys)) == 14
    assert_same_run(out, reference)  # every episode's answers, query scores, attention and weights


def test_torn_last_line_is_dropped_and_redone(tmp_path, pool, reference):
    out = tmp_path / "run"
    (out).mkdir()
    for name in ("run.json",):
        (out / name).write_bytes((reference / name).read_bytes().replace(b'"finished"', b'"running"'))
    full = (reference / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    (out / "episodes.jsonl").write_bytes(b"".join(full[:5]) + full[5][:40])  # killed mid-write
    assert main(["select", pool, "--out", str(out), *FAKE, "--resume"]) == 0
    info = json.loads((out / "run.json").read_text())
    # episodes are played 4 to a batch: the batch of episodes 4-7 is replayed whole (only 5-7 are appended)
    assert info["resumed_episodes"] == 5 and info["played_episodes"] == 14 - 4
    reference_seconds = [json.loads(line)["seconds"] for line in full[:5]]
    assert info["resumed_episode_seconds"] == pytest.approx(sum(reference_seconds), abs=1e-3)
    assert info["resumed_episode_seconds"] > 0
    assert (out / "scores.jsonl").read_bytes() == (reference / "scores.jsonl").read_bytes()
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 14
    assert_same_run(out, reference)
    assert read_episodes(out) == read_episodes(reference)  # the replayed batch too, to the last bit


def test_episode_log_reader_ignores_a_torn_tail(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"episode": 0, "attempt": 0, "round": 0, "demos": [1], "queries": [2], "query_scores": [1.0], '
                    '"attention": [1.0], "weights": [1.0]}\n{"episode": 1, "att')
    assert [o.episode for o in EpisodeLog(path).read(repair=False)] == [0]
    assert path.read_text().endswith('"att')
    assert len(EpisodeLog(path).read()) == 1 and path.read_text().endswith("}\n")


@pytest.mark.parametrize("change,named", [
    (["--seed", "1"], "seed: 0 -> 1"),
    (["--n-demos", "4"], "n_demos: 3 -> 4"),
    (["--task", "instruction", "--input-field", "text", "--output-field", "label"], "task"),
    (["--metric", "exact_match"], "metric: 'label_match' -> 'exact_match'"),
])
def test_resume_with_other_settings_is_refused(tmp_path, capsys, pool, reference, change, named):
    before = {p.name: p.read_bytes() for p in reference.iterdir()}
    assert main(["select", pool, "--out", str(reference), *FAKE, "--resume", *change]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and named in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in reference.iterdir()} == before


def test_resume_with_other_data_is_refused(tmp_path, capsys, pool, reference):
    other = write_jsonl(tmp_path / "pool.jsonl", labelled_records(41))
    assert main(["select", other, "--out", str(reference), *FAKE, "--resume"]) == 2
    assert "data:" in capsys.readouterr().err


def test_two_processes_cannot_write_one_directory(tmp_path, capsys, pool):
    out = tmp_path / "busy"
    out.mkdir()
    holder = RunDirectory(out)
    holder.lock()
    try:
        assert main(["select", pool, "--out", str(out), *FAKE]) == 2
        assert "in use by another datawhisperer process" in capsys.readouterr().err
    finally:
        holder.unlock()
    assert main(["select", pool, "--out", str(out), *FAKE]) == 0


def test_run_directory_owns_its_files_and_nothing_else(tmp_path):
    import numpy as np

    from datawhisperer.data import table_from_records
    from datawhisperer.scoring import EpisodeOutcome
    from datawhisperer.selection import Selection

    run = RunDirectory(tmp_path / "run")
    assert not run.holds_run() and not run.finished()
    run.claim(overwrite=False)
    (run.path / "notes.txt").write_text("the user's own file")
    outcome = EpisodeOutcome(0, 0, 0, [2, 0], [1], [0.5], [0.2, 0.1], [0.6, 0.4])
    log = run.episode_log(rank=1, world_size=2)  # a rank's log; rank 0 merges them later
    log.append([outcome])
    log.close()
    assert run.holds_run() and list(run.outcomes()) == [(0, 0)]
    run.write_outcomes([outcome])
    assert sorted(p.name for p in run.path.iterdir()) == ["episodes.jsonl", "notes.txt"]
    table = table_from_records([{"text": "a", "label": "b"}, {"text": "c", "label": "d"}, {"text": "e", "label": "f"}])
    selection = Selection(table, np.array([0.25, np.nan, 0.75]), np.array([1, 0, 1]), {})
    run.write_selection(selection, ["0.5"])
    np.testing.assert_array_equal(run.scores(), [0.25, np.nan, 0.75])
    run.write_info({"status": "finished"})
    assert run.finished()
    with pytest.raises(UserError, match="--resume to continue it or --overwrite"):
        run.check({"seed": 0}, resume=False, overwrite=False)
    run.unlock()
    run.claim(overwrite=True)  # an earlier run's files go, the user's stay
    assert sorted(p.name for p in run.path.iterdir()) == ["notes.txt"]
    run.unlock()


def test_resume_is_refused_when_the_fingerprint_differs(tmp_path):
    run = RunDirectory(tmp_path)
    run.write_info({"status": "running", "fingerprint": {"seed": 0, "data": "abc"}})
    run.check({"seed": 0, "data": "abc"}, resume=True, overwrite=False)
    with pytest.raises(UserError, match="seed: 0 -> 1"):
        run.check({"seed": 1, "data": "abc"}, resume=True, overwrite=False)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        run.info()


def test_a_run_made_before_a_fingerprint_key_existed_resumes_only_with_the_value_it_used(tmp_path):
    from datawhisperer.inputs import ADDED_FINGERPRINT_KEYS

    run = RunDirectory(tmp_path)
    run.write_info({"status": "finished", "fingerprint": {"seed": 0}})  # made before answer_tokens was recorded
    assert ADDED_FINGERPRINT_KEYS["answer_tokens"] == 32
    run.check({"seed": 0, "answer_tokens": 32}, resume=True, overwrite=False, added=ADDED_FINGERPRINT_KEYS)
    with pytest.raises(UserError, match="answer_tokens: 32 -> 16"):
        run.check({"seed": 0, "answer_tokens": 16}, resume=True, overwrite=False, added=ADDED_FINGERPRINT_KEYS)
    with pytest.raises(UserError, match="answer_tokens: None -> 32"):  # only where the caller says so
        run.check({"seed": 0, "answer_tokens": 32}, resume=True, overwrite=False)


def test_no_other_module_names_a_file_of_the_run_directory():
    """The run directory's files are named in rundir.py only: everything else asks RunDirectory."""
    import ast

    source = Path(__file__).parents[1] / "src" / "datawhisperer"
    names = {"run.json", "scores.jsonl", "episodes.jsonl", "episodes*.jsonl", "episodes.rank-*.jsonl", "selected-*",
             "parts.jsonl", "parts*.jsonl", "parts.rank-*.jsonl"}
    offenders = []
    for path in sorted(source.rglob("*.py")):
        if path.name == "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(source)}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.Constant) and str(v.value).startswith(
                    ("selected-", "episodes.rank-", "parts.rank-")) for v in node.values):
                offenders.append(f"{path.relative_to(source)}:{node.lineno} f-string")
    assert offenders == []
