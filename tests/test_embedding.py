"""The embedding step (embedding.py): played in fixed parts like a baseline's, over shards and merged."""

import pytest
from conftest import assert_varied, labelled_records, read_scores, write_jsonl

from datawhisperer.cli import main

BASELINE = ["--backend", "fake", "--task", "classification", "--quiet", "--budget", "0.2"]


@pytest.fixture
def pool(tmp_path):
    return write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))


@pytest.mark.parametrize("method,extra", [("rds", []), ("rds", ["--val", "val"]),
                                          ("datawhisperer", ["--estimator", "paper", "--strategy", "diverse", "--val",
                                                             "val"]),
                                          ("datawhisperer", ["--strategy", "diverse", "--val", "val"])])  # calibrated: only --val is embedded
def test_the_embedding_step_over_shards_merged_equals_one_run(tmp_path, pool, method, extra):
    """Embeddings are played in fixed parts like a baseline's: shards log their own parts, merge assembles them."""
    val = write_jsonl(tmp_path / "val.jsonl", labelled_records(10))
    extra = [val if flag == "val" else flag for flag in extra]
    one = tmp_path / "one"
    assert main(["select", pool, "--out", str(one), "--method", method, *BASELINE, *extra]) == 0
    shards = []
    for index in range(2):
        out = tmp_path / f"shard{index}"
        assert main(["select", pool, "--out", str(out), "--shard", f"{index}/2", "--method", method, *BASELINE,
                     *extra]) == 0
        assert (out / "embedded.jsonl").exists() == (index == 0 or "paper" in extra or method == "rds")
        assert not (out / "embeddings.npz").exists()
        shards.append(str(out))
    merged = tmp_path / "merged"
    assert main(["merge", *shards, "--out", str(merged), "--quiet"]) == 0
    assert_varied([r["score"] for r in read_scores(one)])
    for name in ("scores.jsonl", "selected-0.2.jsonl", "embeddings.npz"):
        assert (merged / name).read_bytes() == (one / name).read_bytes(), name
    assert not list(merged.glob("embedded*.jsonl")) and not list(one.glob("embedded*.jsonl"))
