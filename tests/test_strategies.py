"""Selection strategies: exact sizes, determinism by seed, the drop, strata and coverage they promise."""

import numpy as np
import pytest

from datawhisperer.errors import UserError
from datawhisperer.strategies import STRATEGIES, Candidates, StrategyOptions, kept_after_drop

RNG = np.random.default_rng(7)
SCORES = RNG.normal(size=200)
EMBEDDINGS = RNG.normal(size=(200, 12)).astype(np.float32)


@pytest.mark.parametrize("name", ["top", "stratified", "diverse"])
@pytest.mark.parametrize("count", [1, 17, 60])
def test_every_strategy_is_exact_in_size_and_deterministic_by_seed(name, count):
    strategy = STRATEGIES.get(name)
    picks = [strategy.choose(Candidates(SCORES, EMBEDDINGS, None, seed), count, StrategyOptions()) for seed in (0, 0, 1)]
    assert all(len(p) == len(set(p)) == count for p in picks)
    assert picks[0] == picks[1]
    assert all(SCORES[a] >= SCORES[b] for a, b in zip(picks[0], picks[0][1:]))  # best-scored first


def test_stratified_draws_change_with_the_seed_and_leave_out_the_lowest_scored():
    strategy, options = STRATEGIES.get("stratified"), StrategyOptions(drop=0.25, strata=5)
    draws = [set(strategy.choose(Candidates(SCORES, seed=seed), 40, options)) for seed in range(4)]
    assert len({frozenset(d) for d in draws}) == 4
    lowest = set(np.argsort(SCORES)[:50].tolist())
    assert all(not (d & lowest) for d in draws)
    # the budget is spread over the score range: every fifth of the kept range is represented
    kept = kept_after_drop(SCORES, 0.25)
    edges = np.linspace(SCORES[kept].min(), SCORES[kept].max(), 6)
    for d in draws:
        assert len(set(np.digitize(SCORES[list(d)], edges[1:-1]))) == 5


def test_stratified_over_a_constant_score_is_a_seeded_random_draw_of_the_whole_pool():
    constant = np.zeros(100)
    strategy = STRATEGIES.get("stratified")
    seen = set()
    for seed in range(30):
        pick = strategy.choose(Candidates(constant, seed=seed), 10, StrategyOptions(drop=0.3))
        assert len(set(pick)) == 10
        seen.update(pick)
    assert len(seen) > 90  # nothing was dropped, and every example can be drawn
    expected = np.random.default_rng([5, 0x57A7]).choice(np.arange(100), 10, replace=False)
    assert sorted(strategy.choose(Candidates(constant, seed=5), 10, StrategyOptions())) == sorted(expected.tolist())


def test_diverse_with_coverage_alone_picks_one_copy_of_every_record_before_any_second_copy():
    distinct = RNG.normal(size=(15, 8)).astype(np.float32)
    copies = np.concatenate([distinct, distinct, distinct])  # 45 records, three copies of each of 15
    scores = RNG.normal(size=45)
    pick = STRATEGIES.get("diverse").choose(Candidates(scores, copies), 20, StrategyOptions(drop=0.0, score_weight=0.0))
    order = _greedy_order(scores, copies)
    assert sorted(i % 15 for i in order[:15]) == list(range(15))
    assert len(pick) == 20 and len({i % 15 for i in pick}) == 15


def _greedy_order(scores, copies):
    """The order in which diverse picks, from budgets of growing size (its output is sorted by score)."""
    strategy, options = STRATEGIES.get("diverse"), StrategyOptions(drop=0.0, score_weight=0.0)
    order: list[int] = []
    for count in range(1, 21):
        new = set(strategy.choose(Candidates(scores, copies), count, options)) - set(order)
        assert len(new) == 1  # greedy: each larger budget adds one pick to the smaller one's
        order.extend(new)
    return order


def test_diverse_with_targets_covers_the_targets_and_with_weight_one_is_top():
    wanted = [3, 50, 77, 120, 199]
    targets = EMBEDDINGS[wanted] + 0.01 * RNG.normal(size=(5, 12)).astype(np.float32)
    pick = STRATEGIES.get("diverse").choose(Candidates(SCORES, EMBEDDINGS, targets), 5,
                                            StrategyOptions(drop=0.0, score_weight=0.0))
    assert sorted(pick) == wanted  # the pool example nearest each target, whatever its score
    top = STRATEGIES.get("diverse").choose(Candidates(SCORES, EMBEDDINGS), 10, StrategyOptions(drop=0.0, score_weight=1.0))
    assert top == STRATEGIES.get("top").choose(Candidates(SCORES), 10, StrategyOptions())


@pytest.mark.parametrize("name,options,count,message", [
    ("stratified", StrategyOptions(drop=0.5), 150, "can pick from 100 of the 200 examples"),
    ("diverse", StrategyOptions(drop=0.2), 170, "can pick from 160 of the 200"),
])
def test_a_budget_a_strategy_cannot_meet_is_a_one_line_error(name, options, count, message):
    with pytest.raises(UserError, match=message) as error:
        STRATEGIES.get(name).choose(Candidates(SCORES, EMBEDDINGS), count, options)
    assert "\n" not in str(error.value)


def test_diverse_without_embeddings_and_bad_options_are_one_line_errors():
    with pytest.raises(UserError, match="needs the examples' embeddings"):
        STRATEGIES.get("diverse").choose(Candidates(SCORES), 5, StrategyOptions())
    for bad, message in ((dict(drop=1.0), "drop must be in"), (dict(strata=0), "strata must be"),
                         (dict(score_weight=2.0), "score-weight must be")):
        with pytest.raises(UserError, match=message):
            StrategyOptions(**bad)
    with pytest.raises(UserError, match="did you mean 'diverse'"):
        STRATEGIES.get("divers")


def test_a_target_without_an_embedding_is_left_out_and_none_at_all_is_a_one_line_error():
    wanted = [3, 50, 77, 120, 199]
    targets = EMBEDDINGS[wanted] + 0.01 * RNG.normal(size=(5, 12)).astype(np.float32)
    with_gap = np.concatenate([targets, np.full((1, 12), np.nan, dtype=np.float32)])  # a --val example too long
    options = StrategyOptions(drop=0.0, score_weight=0.0)
    assert sorted(STRATEGIES.get("diverse").choose(Candidates(SCORES, EMBEDDINGS, with_gap), 5, options)) == wanted
    with pytest.raises(UserError, match="none of the --val examples fits"):
        STRATEGIES.get("diverse").choose(Candidates(SCORES, EMBEDDINGS, np.full((2, 12), np.nan)), 5, options)


def test_labels_keep_their_share_and_are_centred_on_the_whole_pool():
    from datawhisperer.strategies import pick

    groups = np.array([0] * 150 + [1] * 50)
    for name in ("top", "stratified", "diverse"):
        chosen = pick(STRATEGIES.get(name), Candidates(SCORES, EMBEDDINGS, groups=groups), 40, StrategyOptions())
        assert len(chosen) == 40 and sum(groups[chosen] == 1) == 10  # a quarter of the pool, a quarter of the picks
    part = Candidates(SCORES, EMBEDDINGS, groups=groups).part(np.arange(50))
    assert np.allclose(part.centre, EMBEDDINGS.mean(axis=0))


def test_length_balance_keeps_each_answer_length_fifth_s_share_against_a_score_that_favours_short_answers():
    from datawhisperer.balance import balance_groups
    from datawhisperer.strategies import pick

    answers = [" ".join(["word"] * (1 + (7 * k) % 60)) for k in range(200)]
    lengths = np.array([len(a) for a in answers])
    groups = balance_groups(answers, "answer-length")
    assert sorted(np.bincount(groups)) == [40] * 5  # five equal groups, ordered by length
    assert all(lengths[groups == g].max() <= lengths[groups == g + 1].min() for g in range(4))
    short_first = -lengths + RNG.normal(scale=0.1, size=200)
    for name in ("top", "stratified", "diverse"):
        chosen = pick(STRATEGIES.get(name), Candidates(short_first, EMBEDDINGS, groups=groups), 20, StrategyOptions())
        assert len(set(chosen)) == 20 and np.bincount(groups[chosen], minlength=5).tolist() == [4] * 5
    unbalanced = pick(STRATEGIES.get("top"), Candidates(short_first, EMBEDDINGS), 20, StrategyOptions())
    assert np.bincount(groups[unbalanced], minlength=5).tolist() == [20, 0, 0, 0, 0]
    assert balance_groups(answers, "off") is None
    assert balance_groups(answers, "auto").tolist() == groups.tolist()  # not labels: answer-length fifths
