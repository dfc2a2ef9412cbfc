from collections import Counter
from types import SimpleNamespace

import pytest

from datawhisperer.episodes import EpisodePlan
from datawhisperer.errors import UserError


@pytest.mark.parametrize("n_pool,n_demos,n_queries,rounds", [(23, 5, 3, 1), (100, 10, 5, 3), (8, 5, 3, 2)])
def test_every_example_is_a_demo_each_round_and_queries_are_disjoint(n_pool, n_demos, n_queries, rounds):
    plan = EpisodePlan(n_pool, n_demos, n_queries, rounds=rounds, seed=3)
    episodes = plan.episodes()
    for rnd in range(rounds):
        seen = Counter(i for e in episodes if e.round == rnd for i in e.demos)
        assert set(seen) == set(range(n_pool))
    for e in episodes:
        assert len(e.demos) == n_demos and len(set(e.demos)) == n_demos
        assert len(e.queries) == n_queries and len(set(e.queries)) == n_queries
        assert not set(e.demos) & set(e.queries)
    assert [e.id for e in episodes] == list(range(len(episodes)))


def test_two_fold_split_draws_queries_from_the_other_fold():
    plan = EpisodePlan(40, 5, 3, seed=1)
    assert plan.query_source == "fold"
    first, second = (set(f.tolist()) for f in plan.folds)
    for e in plan.episodes():
        demo_fold = first if e.demos[0] in first else second
        assert set(e.demos) <= demo_fold
        assert not set(e.queries) & demo_fold


def test_small_pool_falls_back_to_rest_of_pool():
    assert EpisodePlan(8, 5, 3).query_source == "rest"


def test_validation_queries_index_the_validation_set():
    plan = EpisodePlan(30, 5, 3, n_val=4)
    assert plan.query_source == "val"
    assert all(max(e.queries) < 4 for e in plan.episodes())


def test_plan_is_a_function_of_the_seed():
    a = EpisodePlan(50, 5, 3, rounds=2, seed=7).episodes()
    b = EpisodePlan(50, 5, 3, rounds=2, seed=7).episodes()
    c = EpisodePlan(50, 5, 3, rounds=2, seed=8).episodes()
    assert a == b and a != c


def test_demos_are_random_draws_not_file_order():
    first = EpisodePlan(200, 5, 3, seed=0).episodes()[0]
    assert list(first.demos) != sorted(first.demos) or max(first.demos) - min(first.demos) > 4


def test_retry_keeps_demos_and_redraws_queries_deterministically():
    plan = EpisodePlan(60, 5, 3, seed=2)
    episode = plan.episodes()[4]
    again = plan.retry(episode, 1)
    assert again.demos == episode.demos and again.attempt == 1 and again.id == episode.id
    assert again == plan.retry(episode, 1)
    assert plan.retry(episode, 2).queries != again.queries or plan.retry(episode, 3).queries != again.queries


@pytest.mark.parametrize("kwargs,message", [
    (dict(n_pool=0, n_demos=5, n_queries=3), "empty"),
    (dict(n_pool=7, n_demos=5, n_queries=3), "fewer than n_demos"),
    (dict(n_pool=10, n_demos=0, n_queries=3), "at least 1"),
    (dict(n_pool=10, n_demos=2, n_queries=3, n_val=2), "validation set has 2"),
])
def test_bad_plans_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        EpisodePlan(**kwargs)


def tried(demos, failed=False, unfit=()):
    return SimpleNamespace(failed=failed, demos=list(demos), unfit=list(unfit))


def test_makeup_keeps_its_targets_and_fills_from_their_fold():
    plan = EpisodePlan(40, 5, 3, seed=4)
    episode = plan.episodes()[2]
    makeup = plan.makeup(episode, episode.demos[:2], 3)
    fold = next(set(f.tolist()) for f in plan.folds if episode.demos[0] in f)
    assert set(episode.demos[:2]) <= set(makeup.demos) <= fold and len(set(makeup.demos)) == 5
    assert not set(makeup.queries) & fold
    assert (makeup.id, makeup.attempt, makeup.targets) == (episode.id, 3, episode.demos[:2])
    assert makeup == plan.makeup(episode, episode.demos[:2], 3) != plan.makeup(episode, episode.demos[:2], 4)


def test_next_try_redraws_failures_then_makes_up_what_stayed_unscored():
    plan = EpisodePlan(40, 4, 2, seed=1)
    episode = plan.episodes()[0]
    a, b, c, d = episode.demos
    assert plan.next_try(episode, [], 1) == episode
    assert plan.next_try(episode, [tried(episode.demos)], 1) is None  # all scored: done
    history = [tried([a, c, d])]  # b was dropped to fit the context
    makeup = plan.next_try(episode, history, 1)
    assert makeup.targets == (b,) and makeup.attempt == 1 and b in makeup.demos
    history.append(tried([b]))  # shown alone (the fillers dropped): scored
    assert plan.next_try(episode, history, 1) is None
    # every try failed: the retry, then make-ups two targets at a time, each target given up after 2 failures
    history = [tried(episode.demos, failed=True)]
    assert plan.next_try(episode, history, 1) == plan.retry(episode, 1)
    history.append(tried(episode.demos, failed=True))
    assert plan.next_try(episode, history, 1).targets == (a, b)
    history.append(tried(plan.next_try(episode, history, 1).demos))  # scores a and b, and its fillers
    assert plan.next_try(episode, history, 1).targets == tuple(t for t in (c, d) if t not in history[-1].demos)
    history = history[:2] + [tried([], failed=True), tried([], failed=True)]
    assert plan.next_try(episode, history, 1).targets == (c, d)  # a and b failed twice: given up
    history.append(tried([], failed=True, unfit=[c]))  # c does not fit alone
    assert plan.next_try(episode, history, 1).targets == (d,)
    history.append(tried([], failed=True))
    assert plan.next_try(episode, history, 1) is None
