import numpy as np
import pytest

from datawhisperer.scoring import EpisodeOutcome, aggregate, ranking, slot_mean_weights


def outcome(episode, demos, scores, attention, failed=False):
    return EpisodeOutcome(episode, 0, 0, demos, [9] * len(scores or [0]), None if failed else scores,
                          attention, [], failed=failed)


def test_credit_is_weight_times_query_scores_over_scorings():
    outcomes = [
        outcome(0, [0, 1], [1.0, 0.0, 1.0], [1.0, 3.0]),  # weights 0.25, 0.75; score sum 2 over 3 queries
        outcome(1, [1, 2], [0.5, 0.5, 0.5], [2.0, 2.0]),  # weights 0.5, 0.5; sum 1.5
    ]
    result = aggregate(outcomes, 4)
    assert result.scores[0] == pytest.approx(0.25 * 2 / 3)
    assert result.scores[1] == pytest.approx((0.75 * 2 + 0.5 * 1.5) / 6)
    assert result.scores[2] == pytest.approx(0.5 * 1.5 / 3)
    assert np.isnan(result.scores[3])
    assert result.appearances.tolist() == [1, 2, 1, 0]
    assert result.scores.dtype == np.float64


def test_failed_episodes_give_no_credit_and_no_appearance():
    outcomes = [outcome(0, [0, 1], None, [1.0, 1.0], failed=True), outcome(0, [0, 1], [1.0], [1.0, 1.0])]
    result = aggregate(outcomes, 2)
    assert result.appearances.tolist() == [1, 1]
    assert result.scores.tolist() == [0.5, 0.5]


def test_uniform_weighting_ignores_attention():
    result = aggregate([outcome(0, [0, 1], [1.0], [1.0, 9.0])], 2, weighting="uniform")
    assert result.scores.tolist() == [0.5, 0.5]


def test_debiased_weighting_removes_slot_bias():
    # Slot 1 always draws 3x the attention of slot 0: debiased weights become equal.
    outcomes = [outcome(e, [2 * e, 2 * e + 1], [1.0], [1.0, 3.0]) for e in range(3)]
    means = slot_mean_weights(outcomes)
    assert means[(2, 0)] == pytest.approx(0.25) and means[(2, 1)] == pytest.approx(0.75)
    paper = aggregate(outcomes, 6, weighting="paper").scores
    debiased = aggregate(outcomes, 6, weighting="debiased").scores
    assert paper[1] == pytest.approx(3 * paper[0])
    assert debiased[0] == pytest.approx(debiased[1]) == pytest.approx(0.5)


def test_ranking_puts_unscored_last_and_keeps_ties_in_order():
    scores = np.array([0.2, np.nan, 0.5, 0.2, 0.9])
    assert ranking(scores).tolist() == [4, 2, 0, 3, 1]


def test_unscored_examples_say_why():
    from datawhisperer.scoring import unscored_examples

    outcomes = [
        outcome(0, [0, 1], [1.0], [1.0, 1.0]),
        outcome(1, [2, 3], None, [1.0, 1.0], failed=True),
        EpisodeOutcome(1, 1, 0, [], [9], None, [], [], failed=True, dropped=[4], unfit=[4]),
        outcome(2, [3], [0.0], [1.0]),
    ]
    assert unscored_examples(outcomes) == {2: "every episode failed", 4: "too long for the context"}
