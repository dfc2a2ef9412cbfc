"""SelectConfig on its own: what it accepts, what it refuses with a one-line error, what run.json records."""

import os

import pytest

from datawhisperer.errors import UserError
from datawhisperer.select_config import SelectConfig, default_episode_batch


def test_defaults_are_valid_and_budgets_become_a_list():
    config = SelectConfig(data="pool.jsonl", budget=("0.1", "5%"))
    assert config.budget == ["0.1", "5%"] and config.method == "datawhisperer" and config.n_demos == 5


@pytest.mark.parametrize("options,message", [
    ({"budget": []}, "give at least one --budget"),
    ({"budget": ["0"]}, "budget '0' is neither a fraction"),
    ({"budget": ["half"]}, "budget 'half' is not a number"),
    ({"n_demos": 0}, "n-demos must be at least 1, got 0"),
    ({"n_queries": -1}, "n-queries must be at least 1"),
    ({"rounds": 0}, "rounds must be at least 1"),
    ({"episode_batch": 0}, "episode-batch must be at least 1"),
    ({"max_retries": -1}, "max-retries must be >= 0"),
    ({"max_new_tokens": 0}, "max-new-tokens must be at least 1"),
    ({"max_length": 0}, "max-length must be at least 1"),
    ({"device": "gpu"}, "device must be one of auto, cpu, cuda, mps, not 'gpu'"),
    ({"dtype": "int8"}, "dtype must be one of"),
    ({"scoring": "vote"}, "scoring must be one of generate, likelihood"),
    ({"query_mode": "batch"}, "query-mode must be one of single, multi"),
    ({"query_source": "test"}, "query-source must be one of"),
    ({"balance": "length"}, "balance must be one of auto, on, off, answer-length, not 'length'; did you mean 'answer-length'?"),
    ({"shard": "2/2"}, "--shard 2/2: need 0 <= i < n"),
    ({"shard": "half"}, "--shard takes i/n"),
    ({"resume": True, "overwrite": True}, "--resume and --overwrite contradict each other"),
    ({"scoring": "likelihood", "query_mode": "multi"}, "use it with --query-mode single"),
])
def test_bad_values_are_one_line_errors(options, message):
    with pytest.raises(UserError) as caught:
        SelectConfig(data="pool.jsonl", **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unset_optional_numbers_are_not_checked():
    config = SelectConfig(data="pool.jsonl", episode_batch=None, max_new_tokens=None, max_length=None)
    assert config.episode_batch is None


def test_to_dict_records_absolute_paths_of_the_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = SelectConfig(data="pool.jsonl", val="val.jsonl", out="out").to_dict()
    assert values["data"] == os.path.join(str(tmp_path), "pool.jsonl")
    assert values["val"] == os.path.join(str(tmp_path), "val.jsonl")
    assert values["out"] == "out"  # the output directory is recorded as given
    assert SelectConfig().to_dict()["data"] == "" and SelectConfig().to_dict()["val"] is None


def test_every_field_has_help_for_its_flag():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(SelectConfig))


def test_default_episode_batch_on_a_cpu():
    assert default_episode_batch("generate", "cpu") == 4
    assert default_episode_batch("likelihood", "cpu") == 1
