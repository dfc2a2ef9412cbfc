"""Seed-to-seed agreement of the bench's selectors, from their selection runs."""

import numpy as np
import pytest
from conftest import labelled_records, write_jsonl

from datawhisperer.cli import main
from datawhisperer.harness.agreement import agreement_markdown, seed_agreement
from datawhisperer.reliability import spearman, top_overlap
from datawhisperer.rundir import RunDirectory
from datawhisperer.scoring import aggregate

FAKE = ["--backend", "fake", "--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3",
        "--n-queries", "2", "--quiet"]


@pytest.fixture
def bench(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(48))
    for seed in (0, 1, 2):
        for run, extra in (("datawhisperer-r1", []), ("random", ["--method", "random"]),
                           ("nuggets", ["--method", "nuggets", "--anchors", "4"])):
            assert main(["select", pool, "--out", str(tmp_path / "selections" / f"{run}-s{seed}"), "--seed", str(seed),
                         *FAKE, *extra]) == 0
    assert main(["select", pool, "--out", str(tmp_path / "selections" / "length"), *FAKE, "--method", "length"]) == 0
    return tmp_path


def test_agreement_is_measured_over_pairs_of_seeds_for_seeded_selectors(bench):
    rows = {r["method"]: r for r in seed_agreement(bench, ["datawhisperer-paper", "datawhisperer-uniform", "random",
                                                           "nuggets", "length"], [0, 1, 2])}
    assert set(rows) == {"datawhisperer-paper", "datawhisperer-uniform", "random", "nuggets"}  # length: no seed
    scores = {s: RunDirectory(bench / "selections" / f"random-s{s}").scores() for s in (0, 1, 2)}
    expected = np.mean([spearman(scores[a], scores[b]) for a, b in ((0, 1), (0, 2), (1, 2))])
    assert rows["random"]["seed_spearman"] == pytest.approx(expected) and rows["random"]["seeds"] == [0, 1, 2]
    assert rows["random"]["top20"] == pytest.approx(np.mean([top_overlap(scores[a], scores[b], 20)
                                                             for a, b in ((0, 1), (0, 2), (1, 2))]))
    assert rows["random"]["top20_chance"] == pytest.approx(20 * 20 / 48)
    uniform = {s: aggregate(list(RunDirectory(bench / "selections" / f"datawhisperer-r1-s{s}").outcomes().values()),
                            48, "uniform").scores for s in (0, 1, 2)}  # one run per seed serves every weighting
    assert rows["datawhisperer-uniform"]["seed_spearman"] == pytest.approx(
        np.mean([spearman(uniform[a], uniform[b]) for a, b in ((0, 1), (0, 2), (1, 2))]))
    figures = [r["seed_spearman"] for r in rows.values()]
    assert len(set(figures)) == len(figures)  # the figures differ between selectors: they measure something
    assert rows["nuggets"]["split_half_projected"] is not None and rows["datawhisperer-uniform"][
        "split_half_projected"] is None  # a run reports its own weighting's figure only
    table = "\n".join(agreement_markdown(list(rows.values()), {"random": (0.0, 0.0)}))
    assert "| random | 0,1,2 |" in table and "top-20 shared (chance 8.3)" in table


def test_one_seed_gives_no_agreement(bench):
    assert seed_agreement(bench, ["random"], [0]) == []
