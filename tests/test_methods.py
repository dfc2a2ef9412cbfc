"""The one method registry: every method is an entry with one signature, driven by one runner."""

import json

import numpy as np
import pytest
from conftest import labelled_records, write_jsonl

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.baselines.base import Baseline
from datawhisperer.errors import UserError
from datawhisperer.methods import METHODS, Method
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig


def test_every_method_is_an_entry_with_one_signature():
    assert METHODS.names() == ["datawhisperer", "grand", "ifd", "length", "nuggets", "perplexity", "random", "rds"]
    for name in METHODS.names():
        method = METHODS.get(name)
        assert isinstance(method, Method) and isinstance(method.needs_model, bool) and isinstance(method.seeded, bool)
        assert name in method.bench_names() or any(n.startswith(name) for n in method.bench_names())
    assert METHODS.get("datawhisperer").plays_episodes and not METHODS.get("nuggets").plays_episodes
    with pytest.raises(UserError, match="did you mean 'nuggets'"):
        METHODS.get("nugets")


@pytest.mark.parametrize("method", ["datawhisperer", "random", "nuggets", "rds"])
def test_the_runner_gives_every_method_the_same_checks_and_outputs(tmp_path, method):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(20))
    out = tmp_path / "out"
    config = SelectConfig(pool, out=str(out), method=method, task="classification", n_demos=3, n_queries=2,
                          anchors=4, quiet=True, budget=["0.25"], estimator="paper")
    selection = select(config, backend=FakeBackend())
    assert {p.name for p in out.iterdir()} >= {"run.json", "scores.jsonl", "selected-0.25.jsonl"}
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["pool_size"] == 20 and info["fingerprint"]["method"] == method
    assert len(selection.chosen("0.25")) == 5 and np.isfinite(selection.scores).all()
    assert len(set(selection.scores.tolist())) > 1  # the scores vary: the order above means something
    with pytest.raises(UserError, match="holds another run's files"):  # the same guard for every method
        select(SelectConfig(pool, out=str(out), method=method, task="classification", quiet=True),
               backend=FakeBackend())


def test_a_baseline_is_a_score_function_run_on_every_example():
    from datawhisperer.distributed import Group, detect
    from datawhisperer.executor import Session, run_method
    from datawhisperer.inputs import check_inputs

    config = SelectConfig(method="length", task="classification", seed=1, quiet=True)
    records = [{"text": str(i), "label": "w " * (i + 1)} for i in range(40)]  # three parts: 16, 16, 8
    topology = detect(None)
    baseline = Baseline("length", "datawhisperer.baselines.simple:length_scores", needs_model=False)
    session = Session(check_inputs(config, baseline, records), None, topology, Group(topology, "cpu"),
                      lambda: None, progress=False)
    scored = run_method(session, baseline)
    assert scored.scores.tolist() == [-float(i + 1) for i in range(40)]
    assert scored.info == {"method": "length", "resumed_part_seconds": 0}
    assert config.episode_batch is None  # the caller's configuration is never changed


def test_a_registry_entry_that_is_not_what_its_registry_holds_is_refused_when_it_loads():
    from datawhisperer.registry import Registry

    registry = Registry("selection method", Method)
    registry.register("broken", "datawhisperer.baselines.simple:random_scores")  # a function, not a method
    with pytest.raises(TypeError, match="is not a Method"):
        registry.get("broken")
