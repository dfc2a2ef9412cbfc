"""Shared test fixtures: tiny random models and a byte-level tokenizer, built here (no downloads)."""

from __future__ import annotations

import json

import pytest

from datawhisperer.testing import CHATML, byte_tokenizer, tiny_model  # noqa: F401  (tests import them from here)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama with a chat template, saved like any HF model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = byte_tokenizer()
    tiny_model("llama", tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def plural_records(n: int = 24) -> list[dict]:
    words = ["cat", "dog", "box", "city", "car", "bus", "tree", "baby", "book", "fox", "man", "leaf",
             "cup", "key", "pen", "hat", "map", "toy", "egg", "cow", "day", "sky", "bee", "ant"]
    out = []
    for i in range(n):
        word = words[i % len(words)]
        out.append({"text": f"{word} {i}", "label": f"{word}s {i}"})
    return out
