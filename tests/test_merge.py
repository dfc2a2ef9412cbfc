"""merge(): shards of one plan combine into the outputs of one run; anything else is refused."""

import pytest
from conftest import assert_same_run, labelled_records, write_jsonl

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.errors import UserError
from datawhisperer.merge import MergeConfig, merge
from datawhisperer.rundir import RunDirectory
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig


def run(pool: str, out, shard: str | None = None) -> None:
    select(SelectConfig(pool, out=str(out), task="classification", n_demos=3, n_queries=2, episode_batch=2,
                        shard=shard, quiet=True, budget=["0.25"], estimator="paper"), backend=FakeBackend())


def test_merged_shards_are_the_single_run(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(30))
    run(pool, tmp_path / "single")
    for index in range(3):
        run(pool, tmp_path / f"shard{index}", f"{index}/3")
    merge(MergeConfig([str(tmp_path / f"shard{i}") for i in range(3)], out=str(tmp_path / "merged"), quiet=True))
    assert_same_run(tmp_path / "single", tmp_path / "merged")
    info = RunDirectory(tmp_path / "merged").info()
    assert info["status"] == "finished" and len(info["shards"]) == 3 and "shard" not in info


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(30))
    run(pool, tmp_path / "a", "0/2")
    with pytest.raises(UserError, match="shard 1/2 is missing"):
        merge(MergeConfig([str(tmp_path / "a")], out=str(tmp_path / "m"), quiet=True))
    with pytest.raises(UserError, match="is given twice"):
        merge(MergeConfig([str(tmp_path / "a"), str(tmp_path / "a")], out=str(tmp_path / "m"), quiet=True))
    run(pool, tmp_path / "whole")
    with pytest.raises(UserError, match="is not a shard"):
        merge(MergeConfig([str(tmp_path / "whole")], out=str(tmp_path / "m"), quiet=True))
    assert not (tmp_path / "m").exists()
