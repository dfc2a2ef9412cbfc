"""Rank correlations and the reliability entry of a run."""

import numpy as np
import pytest

from datawhisperer.reliability import describe, ranks, spearman, verdict


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
