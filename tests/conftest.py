"""Shared test fixtures: tiny random models and a byte-level tokenizer, built here (no downloads);
pools, and checks that two runs agree on scores and weights, not only on bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datawhisperer.testing import CHATML, byte_tokenizer, teach_labels, tiny_model  # noqa: F401  (tests import them)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama with a chat template, saved like any HF model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = byte_tokenizer()
    tiny_model("llama", tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def taught_model_dir(tmp_path_factory):
    """The tiny Llama taught the labels of labelled_records (a few seconds on CPU): its greedy answers are
    labels that end their turn, right about half the time, so generation tests compare real scores."""
    path = tmp_path_factory.mktemp("taught-llama")
    tokenizer = byte_tokenizer()
    model = teach_labels(tiny_model("llama", tokenizer), tokenizer, labelled_records(24), "Answer with the label only.")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


WORDS = ["cat", "dog", "box", "city", "car", "bus", "tree", "baby", "book", "fox", "man", "leaf",
         "cup", "key", "pen", "hat", "map", "toy", "egg", "cow", "day", "sky", "bee", "ant"]
KINDS = {"cat": "animal", "dog": "animal", "fox": "animal", "cow": "animal", "bee": "animal", "ant": "animal",
         "baby": "animal", "man": "animal", "car": "vehicle", "bus": "vehicle", "toy": "vehicle", "city": "place",
         "tree": "place", "day": "place", "sky": "place", "map": "place", "leaf": "place"}


def plural_records(n: int = 24) -> list[dict]:
    """Labels all distinct: no answer copied from a demonstration is ever right (scores stay 0)."""
    return [{"text": f"{WORDS[i % len(WORDS)]} {i}", "label": f"{WORDS[i % len(WORDS)]}s {i}"} for i in range(n)]


def labelled_records(n: int = 24) -> list[dict]:
    """Four labels: the fake backend answers with a demonstration's label, right about a quarter of
    the time, so episode scores vary between 0 and 1."""
    return [{"text": f"{WORDS[i % len(WORDS)]} {i}", "label": KINDS.get(WORDS[i % len(WORDS)], "thing")}
            for i in range(n)]


def read_scores(out: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "scores.jsonl").read_text().splitlines()]


def read_episodes(out: Path) -> list[dict]:
    """episodes.jsonl without timing, in plan order (ranks may append in any order)."""
    rows = [json.loads(line) for line in (Path(out) / "episodes.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return sorted(rows, key=lambda r: (r["episode"], r["attempt"]))


def assert_varied(values, what: str = "scores") -> None:
    """Fail loudly when a comparison would only compare constants: all-zero or all-equal scores."""
    values = [v for v in values if v is not None]
    assert values, f"no {what} at all"
    assert any(v != 0 for v in values), f"all {len(values)} {what} are 0: comparing them proves nothing"
    assert len(set(values)) > 1, f"all {len(values)} {what} equal {values[0]}: comparing them proves nothing"


FLOAT_FIELDS = ("query_scores", "attention", "weights")


def assert_same_run(a: Path, b: Path, rel: float = 1e-6) -> None:
    """Two output directories hold the same selection: each example's score and appearances, and each
    episode's demos, queries, answers, query scores, attention and weights (floats to `rel`)."""
    scores_a, scores_b = read_scores(a), read_scores(b)
    assert_varied([r["score"] for r in scores_a], "example scores")
    assert [(r["index"], r["appearances"]) for r in scores_a] == [(r["index"], r["appearances"]) for r in scores_b]
    assert_close([r["score"] for r in scores_a], [r["score"] for r in scores_b], rel, "example scores")
    episodes_a, episodes_b = read_episodes(a), read_episodes(b)
    assert_varied([s for e in episodes_a for s in e["query_scores"] or []], "query scores")
    assert len(episodes_a) == len(episodes_b)
    for x, y in zip(episodes_a, episodes_b):
        assert {k: v for k, v in x.items() if k not in FLOAT_FIELDS} == \
               {k: v for k, v in y.items() if k not in FLOAT_FIELDS}, f"episode {x['episode']}"
        for key in FLOAT_FIELDS:
            assert_close(x[key], y[key], rel, f"episode {x['episode']} {key}")


def assert_close(a: list | None, b: list | None, rel: float, what: str) -> None:
    """Equal to `rel` relative; None (an unscored example, a failed episode) only where the other has it."""
    assert (a is None) == (b is None), what
    if a is not None:
        assert [v is None for v in a] == [v is None for v in b], what
        pairs = [(x, y) for x, y in zip(a, b) if x is not None]
        assert [x for x, _ in pairs] == pytest.approx([y for _, y in pairs], rel=rel, abs=1e-12), what


def checked(config, records=None):
    """A run's checked inputs, with the method its configuration names."""
    from datawhisperer.inputs import check_inputs
    from datawhisperer.methods import METHODS

    return check_inputs(config, METHODS.get(config.method), records)
