"""Rank correlations and the reliability entry of a run."""

import numpy as np
import pytest

from datawhisperer.methods import wording_of
from datawhisperer.reliability import describe as describe_with
from datawhisperer.reliability import ranks, spearman
from datawhisperer.reliability import verdict as verdict_with


def describe(entry: dict) -> str:  # as the summary and the report word it: from the entry's registry entry
    return describe_with(entry, wording_of(entry["estimator"]))


def verdict(entry: dict) -> str | None:
    return verdict_with(entry, wording_of(entry["estimator"]))


def test_spearman_shares_tied_ranks_and_skips_unscored():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    words = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(np.array([4.0, 3.0, np.nan, 1.0]), words) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(4), words))


def test_a_figure_by_design_is_described_without_a_warning():
    random = {"estimator": "random", "split": "a random draw", "split_half_spearman": None, "projected": 0.0}
    assert describe(random) == "Reliability (random): 0.00 by design (a random draw)." and verdict(random) is None
    noisy = {"estimator": "nuggets", "split": "anchors", "split_half_spearman": 0.1, "projected": 0.18}
    assert "halves by anchors" in describe(noisy) and "more --anchors" in verdict(noisy)
    assert verdict({**noisy, "estimator": "paper", "projected": 0.7}) is None


def test_a_one_round_paper_run_says_its_reliability_is_unknown_and_what_to_do():
    from conftest import labelled_records

    import datawhisperer
    from datawhisperer.backends.fake import FakeBackend

    selection = datawhisperer.select(labelled_records(24), backend_instance=FakeBackend(), task="classification",
                                     n_demos=3, n_queries=2, quiet=True, estimator="paper")
    entry = selection.info["reliability"]
    assert entry["projected"] is None and entry["split_half_spearman"] is not None  # measured, not projected
    assert "not measurable from one round" in describe(entry) and "--rounds 2 or more" in verdict(entry)
    two = datawhisperer.select(labelled_records(24), backend_instance=FakeBackend(), task="classification",
                               n_demos=3, n_queries=2, rounds=2, quiet=True, estimator="paper").info["reliability"]
    assert two["split"] == "rounds" and two["projected"] is not None
