"""Spreading the work: torchrun ranks (gloo on CPU), independent shards + merge, and the invariance
of results to how the work is spread."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_same_run, assert_varied, labelled_records, read_episodes, read_scores, write_jsonl

from datawhisperer.cli import main

FAKE = ["--backend", "fake", "--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3",
        "--n-queries", "2", "--quiet"]
# the taught tiny model answers with a label and ends its turn within 12 tokens (see taught_model_dir)
TINY = ["--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3", "--n-queries", "2",
        "--max-new-tokens", "12", "--quiet"]


def tiny(scoring: str) -> list[str]:
    return [*TINY, "--scoring", scoring]


def answered(out: Path) -> float:
    """The share of episodes that ended with scores (not failed): most must, or little is compared."""
    episodes = read_episodes(out)
    return sum(not e["failed"] for e in episodes) / len(episodes)


@pytest.fixture
def pool(tmp_path):
    return write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))  # four labels: fake answers are often right


def run_shards(tmp_path, pool, count, extra=()):
    dirs = []
    for index in range(count):
        out = tmp_path / f"shard{index}"
        assert main(["select", pool, "--out", str(out), "--shard", f"{index}/{count}", *FAKE, *extra]) == 0
        assert not (out / "scores.jsonl").exists()
        assert json.loads((out / "run.json").read_text())["shard"] == {"index": index, "count": count}
        dirs.append(str(out))
    return dirs


@pytest.mark.parametrize("count", [2, 3])
def test_shards_merged_equal_one_run(tmp_path, pool, count):
    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), *FAKE, "--budget", "0.2"]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", *run_shards(tmp_path, pool, count), "--out", str(merged), "--budget", "0.2",
                 "--quiet"]) == 0
    assert (merged / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    assert (merged / "selected-0.2.jsonl").read_bytes() == (one / "selected-0.2.jsonl").read_bytes()
    assert read_episodes(merged) == read_episodes(one)
    assert_same_run(merged, one)  # asserts first that the scores compared are varied, not all 0
    info = json.loads((merged / "run.json").read_text())
    assert info["episodes"] == 14 and len(info["shards"]) == count


def test_merge_refuses_missing_duplicate_foreign_and_unfinished_shards(tmp_path, capsys, pool):
    s0, s1 = run_shards(tmp_path, pool, 2)
    other = tmp_path / "other"
    assert main(["select", pool, "--out", str(other), "--shard", "1/2", "--seed", "9", *FAKE]) == 0
    cases = [
        ([s0], "shard 1/2 is missing"),
        ([s0, s0, s1], "shard 0/2 is given twice"),
        ([s0, str(other)], "belongs to another plan"),
        ([s0, str(tmp_path)], "holds no run"),
    ]
    for dirs, message in cases:
        assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 2
        assert message in capsys.readouterr().err
    run = Path(s1) / "run.json"
    run.write_text(run.read_text().replace('"finished"', '"running"'))
    assert main(["merge", s0, s1, "--out", str(tmp_path / "m")]) == 2
    assert "unfinished" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_merge_refuses_a_shard_with_a_lost_episode(tmp_path, capsys, pool):
    s0, s1 = run_shards(tmp_path, pool, 2)
    log = Path(s1) / "episodes.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[1:]))
    assert main(["merge", s0, s1, "--out", str(tmp_path / "m")]) == 2
    assert "lacks 1 of its episodes" in capsys.readouterr().err


def test_a_killed_shard_is_resumed_alone(tmp_path, pool):
    s0, s1 = run_shards(tmp_path, pool, 2)
    log = Path(s1) / "episodes.jsonl"
    kept = log.read_text().splitlines(keepends=True)[:3]
    log.write_text("".join(kept))
    run = Path(s1) / "run.json"
    run.write_text(run.read_text().replace('"finished"', '"running"'))
    assert main(["select", pool, "--out", s1, "--shard", "1/2", *FAKE, "--resume"]) == 0
    assert json.loads(run.read_text())["resumed_episodes"] == 3
    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), *FAKE]) == 0
    assert main(["merge", s0, s1, "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert (tmp_path / "m" / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    assert_same_run(tmp_path / "m", one)


def launch(launcher: list[str], pool: str, out: Path, model_dir: Path, scoring: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "datawhisperer", "select", pool, "--out", str(out),
                           "--model", str(model_dir), *tiny(scoring)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("launcher,scoring,port", [("torchrun", "generate", 29517), ("torchrun", "likelihood", 29519),
                                                   ("accelerate", "generate", 29518)])
def test_two_ranks_over_gloo_equal_one_process(tmp_path, pool, taught_model_dir, launcher, scoring, port):
    """Scores, and every episode's answers, query scores, attention and weights, to 1e-6 relative."""
    bin_dir = Path(sys.executable).parent
    if launcher == "torchrun":
        command = [str(bin_dir / "torchrun"), "--nproc-per-node", "2", "--master-port", str(port)]
    else:
        # --multi_gpu only selects the torchrun-style launcher; without CUDA the ranks use gloo
        if shutil.which("accelerate", path=str(bin_dir)) is None:
            pytest.skip("accelerate is not installed")
        command = [str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    ranks = tmp_path / "ranks"
    proc = launch(command, pool, ranks, taught_model_dir, scoring)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = tmp_path / "single"
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        assert main(["select", pool, "--out", str(single), "--model", str(taught_model_dir), *tiny(scoring)]) == 0
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    assert answered(single) >= 0.75
    assert_same_run(ranks, single)
    info = json.loads((ranks / "run.json").read_text())
    assert info["world_size"] == 2 and info["episodes"] == 14
    assert sorted(p.name for p in ranks.glob("episodes*")) == ["episodes.jsonl"]  # rank logs merged
    assert len((ranks / "episodes.jsonl").read_text().splitlines()) == 14


@pytest.mark.parametrize("scoring", ["generate", "likelihood"])
def test_episode_batches_change_nothing_but_speed(tmp_path, pool, taught_model_dir, scoring):
    """Several episodes per batch give the answers, scores and weights of one at a time; shards split whole
    batches."""
    outs = {}
    for group in (1, 4):
        out = tmp_path / f"g{group}"
        assert main(["select", pool, "--out", str(out), "--model", str(taught_model_dir), *tiny(scoring),
                     "--episode-batch", str(group)]) == 0
        outs[group] = out
    assert answered(outs[1]) >= 0.75
    assert_same_run(outs[1], outs[4])
    shards = []
    for index in range(2):
        shard = tmp_path / f"shard{index}"
        assert main(["select", pool, "--out", str(shard), "--model", str(taught_model_dir), *tiny(scoring),
                     "--episode-batch", "4", "--shard", f"{index}/2"]) == 0
        shards.append(str(shard))
    merged = tmp_path / "merged"
    assert main(["merge", *shards, "--out", str(merged), "--quiet"]) == 0
    assert (merged / "scores.jsonl").read_bytes() == (outs[4] / "scores.jsonl").read_bytes()
    assert_same_run(merged, outs[4])
    # a batch cut short by a kill is replayed whole on resume, and only its missing outcomes are added
    log = outs[4] / "episodes.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:6]))
    run = outs[4] / "run.json"
    run.write_text(run.read_text().replace('"finished"', '"running"'))
    reference = (merged / "scores.jsonl").read_bytes()
    assert main(["select", pool, "--out", str(outs[4]), "--model", str(taught_model_dir), *tiny(scoring),
                 "--episode-batch", "4", "--resume"]) == 0
    assert (outs[4] / "scores.jsonl").read_bytes() == reference
    assert_same_run(outs[4], merged)
    assert json.loads(run.read_text())["played_episodes"] == 14 - 4  # the batch of episodes 4-7 is replayed whole


# --- baselines: the same shards, merge, resume and ranks, by fixed parts of the pool ----------------------

BASELINE = ["--backend", "fake", "--task", "classification", "--quiet", "--budget", "0.2"]


@pytest.mark.parametrize("method", ["nuggets", "ifd", "grand", "random"])
@pytest.mark.parametrize("count", [2, 3])
def test_a_sharded_baseline_merged_equals_one_run(tmp_path, pool, method, count):
    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), "--method", method, *BASELINE]) == 0
    assert sorted(p.name for p in one.iterdir()) == ["run.json", "scores.jsonl", "selected-0.2.jsonl"]
    shards = []
    for index in range(count):
        out = tmp_path / f"shard{index}"
        assert main(["select", pool, "--out", str(out), "--shard", f"{index}/{count}", "--method", method,
                     *BASELINE]) == 0
        assert not (out / "scores.jsonl").exists() and (out / "parts.jsonl").exists()
        shards.append(str(out))
    merged = tmp_path / "merged"
    assert main(["merge", *shards, "--out", str(merged), "--quiet"]) == 0
    assert_varied([r["score"] for r in read_scores(one)])
    assert (merged / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    assert (merged / "selected-0.2.jsonl").read_bytes() == (one / "selected-0.2.jsonl").read_bytes()
    info = json.loads((merged / "run.json").read_text())
    assert info["method"] == method and len(info["shards"]) == count and "episodes" not in info


def test_merge_refuses_a_baseline_shard_with_a_lost_or_foreign_part(tmp_path, capsys, pool):
    shards = [tmp_path / "s0", tmp_path / "s1"]
    for index, out in enumerate(shards):
        assert main(["select", pool, "--out", str(out), "--shard", f"{index}/2", "--method", "nuggets",
                     *BASELINE]) == 0
    log = shards[1] / "parts.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == 1  # of 40 examples in parts of 16, shard 1/2 owns 16-31, shard 0/2 0-15 and 32-39
    log.write_text("")
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "m")]) == 2
    assert "lacks 1 of its parts (first: examples 16-31)" in capsys.readouterr().err
    log.write_text("".join(lines) + (shards[0] / "parts.jsonl").read_text().splitlines(keepends=True)[0])
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "m")]) == 2
    assert "holds part 0 of another shard" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_killed_baseline_resumes_where_it_stopped(tmp_path, pool, monkeypatch):
    from datawhisperer.backends.fake import FakeBackend

    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), "--method", "perplexity", *BASELINE]) == 0
    calls = []
    real = FakeBackend.loglikelihood

    def dies_on_the_second_part(self, requests):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill in the middle of the run
        return real(self, requests)

    monkeypatch.setattr(FakeBackend, "loglikelihood", dies_on_the_second_part)
    out = tmp_path / "out"
    assert main(["select", pool, "--out", str(out), "--method", "perplexity", *BASELINE]) == 130
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    [logged] = (out / "parts.jsonl").read_text().splitlines()
    logged_seconds = json.loads(logged)["seconds"]
    assert main(["select", pool, "--out", str(out), "--method", "perplexity", *BASELINE]) == 2  # not without --resume
    calls.clear()
    monkeypatch.setattr(FakeBackend, "loglikelihood", lambda self, requests: calls.append(len(requests))
                        or real(self, requests))
    assert main(["select", pool, "--out", str(out), "--method", "perplexity", *BASELINE, "--resume"]) == 0
    assert calls == [16, 8]  # only the two parts the killed run had not logged
    assert json.loads((out / "run.json").read_text())["resumed_part_seconds"] == logged_seconds  # charged again
    assert_varied([r["score"] for r in read_scores(one)])
    assert (out / "scores.jsonl").read_bytes() == (one / "scores.jsonl").read_bytes()
    assert not (out / "parts.jsonl").exists()  # scores.jsonl holds them all now


def test_a_baseline_over_two_ranks_equals_one_process(tmp_path, pool, taught_model_dir):
    command = [str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2", "--master-port", "29521"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--model", str(taught_model_dir), "--task", "classification", "--method", "ifd", "--quiet"]
    ranks = tmp_path / "ranks"
    proc = subprocess.run([*command, "-m", "datawhisperer", "select", pool, "--out", str(ranks), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = tmp_path / "single"
    proc = subprocess.run([sys.executable, "-m", "datawhisperer", "select", pool, "--out", str(single), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_varied([r["score"] for r in read_scores(single)])
    assert read_scores(ranks) == read_scores(single)
    assert sorted(p.name for p in ranks.iterdir()) == sorted(p.name for p in single.iterdir())  # rank logs gone
