"""Budgets and the subsets they pick: parse_budget, budget_count and Selection's ranking."""

import math

import numpy as np
import pytest

from datawhisperer.data import table_from_records
from datawhisperer.errors import UserError
from datawhisperer.selection import Selection, budget_count, parse_budget


@pytest.mark.parametrize("raw,value", [("0.1", 0.1), ("5%", 0.05), (" 50% ", 0.5), ("1", 1.0), (0.25, 0.25),
                                       ("100%", 1.0), ("1e-3", 0.001)])
def test_budgets_are_fractions_or_percentages(raw, value):
    assert parse_budget(raw) == pytest.approx(value)


@pytest.mark.parametrize("raw,message", [("0", "neither a fraction"), ("1.5", "neither a fraction"),
                                         ("-0.1", "neither"), ("nan", "neither"), ("150%", "neither"),
                                         ("1e3", "neither"), ("ten", "is not a number"), ("%", "is not a number"),
                                         (None, "is not a number")])
def test_bad_budgets_are_one_line_errors(raw, message):
    with pytest.raises(UserError, match=message):
        parse_budget(raw)


@pytest.mark.parametrize("raw,count", [("40", 40), (" 1000 ", 1000), (2, 2), ("7.0", 7)])
def test_whole_numbers_above_one_are_counts_of_examples(raw, count):
    budget = parse_budget(raw)
    assert isinstance(budget, int) and budget == count and budget_count(budget, 5000) == count


def test_a_count_beyond_the_pool_is_a_one_line_error():
    with pytest.raises(UserError, match="more examples than the pool's 30"):
        budget_count(parse_budget("40"), 30)


@pytest.mark.parametrize("budget,size,count", [(0.1, 100, 10), (0.29, 100, 29), (0.57, 100, 57), (0.1, 30, 3),
                                               (0.1, 5, 1), (0.001, 10, 1), (1.0, 7, 7), (0.5, 3, 1)])
def test_budget_count_is_the_floor_and_at_least_one(budget, size, count):
    assert budget_count(budget, size) == count


def test_top_strategy_ranks_best_first_with_unscored_last_and_ties_in_input_order():
    records = [{"i": i} for i in range(6)]
    scores = np.array([0.5, math.nan, 0.9, 0.5, 0.1, math.nan])
    selection = Selection(table_from_records(records), scores, np.ones(6, dtype=int))
    assert selection.ranking().tolist() == [2, 0, 3, 4, 1, 5]
    assert selection.chosen("50%") == [2, 0, 3] and selection.chosen(0.1) == [2]
    assert selection.subset("0.34") == [{"i": 2}, {"i": 0}]
    assert len(selection) == 6 and selection.unscored() == 2
    assert selection.score_rows()[1] == {"index": 1, "score": None, "appearances": 1}
