"""Estimators: plans, credit and split-half reliability, on outcomes with a known structure."""

import numpy as np
import pytest

from datawhisperer.episodes import EpisodePlan
from datawhisperer.errors import UserError
from datawhisperer.estimators import ESTIMATORS, standardised_gains
from datawhisperer.reliability import ranks, spearman, spearman_brown, split_half, top_overlap
from datawhisperer.scoring import EpisodeOutcome
from datawhisperer.select_config import SelectConfig

SETTINGS = SelectConfig(coherence_weight=0.0)  # the in-context gain alone (no coherence recorded here)


def test_a_fixed_panel_plan_shows_each_example_alone_before_the_other_folds_panel():
    plan = EpisodePlan(40, 1, 6, 1, seed=3, fixed_panel=True)
    episodes = plan.episodes()
    assert sorted(d for e in episodes for d in e.demos) == list(range(40))
    fold_of = {int(i): f for f, fold in enumerate(plan.folds) for i in fold}
    for episode in episodes:
        (demo,) = episode.demos
        assert episode.queries == plan.panels[0][fold_of[demo]]
        assert all(fold_of[q] != fold_of[demo] for q in episode.queries)
    assert plan.panels != EpisodePlan(40, 1, 6, 1, seed=4, fixed_panel=True).panels  # the seed draws the panel
    with pytest.raises(UserError, match="fixed query panel"):
        EpisodePlan(10, 1, 6, 1, fixed_panel=True)


def outcomes_with(effect: np.ndarray, panel: list[int], noise: float, seed: int) -> list[EpisodeOutcome]:
    """Each example alone before the panel: token log-probs = query difficulty + the example's effect + noise."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, size=(len(panel), 4))  # per query and token: large, shared by every example
    outcomes = []
    for example, gain in enumerate(effect):
        logprobs = [(difficulty[k] + gain + rng.normal(0, noise, 4)).tolist() for k in range(len(panel))]
        outcomes.append(EpisodeOutcome(example, 0, 0, [example], list(panel), [0.0] * len(panel), [1.0], [1.0],
                                       answer_logprobs=logprobs))
    return outcomes


def test_standardised_gains_recover_the_examples_effect_and_cancel_query_difficulty():
    effect = np.linspace(-1, 1, 30)
    scores = standardised_gains(outcomes_with(effect, list(range(100, 116)), noise=0.5, seed=0), 30).scores
    assert spearman(scores, effect) > 0.9
    assert abs(float(np.mean(scores))) < 1e-9  # standardised: query difficulty is gone


def test_split_half_reliability_predicts_a_new_panel():
    """Two runs that differ in their noise (as two seeds' panels do): the split-half figure of one predicts
    how the two rankings agree."""
    effect = np.random.default_rng(7).normal(0, 1, 60)
    calibrated = ESTIMATORS.get("calibrated")
    first = outcomes_with(effect, list(range(100, 112)), noise=4.0, seed=1)
    second = outcomes_with(effect, list(range(200, 212)), noise=4.0, seed=2)
    reliability = calibrated.reliability(first, 60, SETTINGS)
    seed_to_seed = spearman(calibrated.credit(first, 60, SETTINGS).scores, calibrated.credit(second, 60, SETTINGS).scores)
    assert 0.2 < seed_to_seed < 0.95 and reliability["split"] == "panel queries"
    assert abs(reliability["projected"] - seed_to_seed) < 0.15


def test_rank_statistics():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert spearman_brown(0.5) == pytest.approx(2 / 3) and spearman_brown(0.2, 4) == pytest.approx(0.5)
    assert top_overlap(np.array([5.0, 4, 3, 2, 1]), np.array([1.0, 4, 5, 2, 3]), 2) == 1
    entry = split_half(np.arange(10.0), np.arange(10.0), "halves")
    assert entry["split_half_spearman"] == 1.0 and entry["projected"] == 1.0 and entry["examples"] == 10


def test_the_paper_estimator_splits_by_rounds_when_it_has_several():
    paper = ESTIMATORS.get("paper")
    outcomes = [EpisodeOutcome(e, 0, e % 2, [e % 6, (e + 1) % 6], [9], [float(e % 3)], [1.0, 2.0], [0.4, 0.6])
                for e in range(12)]
    assert paper.reliability(outcomes, 6, SETTINGS)["split"] == "rounds"
    one_round = [EpisodeOutcome(e, 0, 0, [e % 6], [8, 9], [float(e % 3), 1.0], [1.0], [1.0]) for e in range(6)]
    assert paper.reliability(one_round, 6, SETTINGS)["split"].startswith("queries")


def test_coherence_pulls_down_examples_whose_answer_does_not_follow_from_their_input():
    calibrated = ESTIMATORS.get("calibrated")
    effect = np.linspace(0, 1, 20)  # in-context gains rise with the index
    outcomes = outcomes_with(effect, list(range(100, 108)), noise=0.1, seed=3)
    for outcome in outcomes:
        outcome.coherence = -5.0 if outcome.demos[0] in (17, 18, 19) else 0.0  # three swapped answers
    plain = calibrated.credit(outcomes, 20, SETTINGS).scores
    weighted = calibrated.credit(outcomes, 20, SelectConfig(coherence_weight=1.0)).scores
    assert set(np.argsort(-plain)[:3].tolist()) == {17, 18, 19}
    assert not {17, 18, 19} & set(np.argsort(-weighted)[:5].tolist())


def test_each_round_of_a_panel_plan_asks_new_queries_and_round_one_is_unchanged():
    one, three = EpisodePlan(40, 1, 6, 1, seed=3, fixed_panel=True), EpisodePlan(40, 1, 6, 3, seed=3, fixed_panel=True)
    assert three.panels[0] == one.panels[0]  # runs of one round keep their panels
    assert three.episodes()[:40] == one.episodes()  # a plan of R rounds starts with the plan of fewer
    for fold in (0, 1):
        asked = [q for rnd in three.panels for q in rnd[fold]]
        assert len(asked) == len(set(asked)) == 18  # three panels of 6, none repeated, from a fold of 20
    assert {e.round for e in three.episodes()} == {0, 1, 2}
    assert EpisodePlan(36, 1, 6, 3, seed=3, fixed_panel=True).fresh_panels == 3
    with pytest.raises(UserError, match="at most 2 rounds"):  # a fold of 16 holds two panels of 6 new queries
        EpisodePlan(32, 1, 6, 3, seed=3, fixed_panel=True)
