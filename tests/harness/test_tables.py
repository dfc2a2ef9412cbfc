import pytest

from datawhisperer.harness.tables import markdown, paired_with


def cell(method, seed, score, loss, budget=0.1):
    return {"method": method, "budget": budget, "seed": seed, "score": score, "loss": loss, "selection_seconds": 1.0,
            "finetune_seconds": 2.0, "mean_answer_words": 10.0, "train_tokens": 100}


def test_paired_differences_match_seeds_and_budgets():
    cells = [cell("random", 0, 20.0, 1.5), cell("random", 1, 30.0, 1.4), cell("random", 0, 9.0, 1.0, budget=0.05),
             cell("dw", 0, 22.0, 1.6), cell("dw", 1, 31.0, 1.3), cell("dw", 2, 99.0, 0.1),  # seed 2: no random pair
             cell("dw", 0, 8.0, 0.9, budget=0.05)]
    rows = {(r["method"], r["budget"]): r for r in paired_with({"cells": cells}, "random")}
    assert set(rows) == {("dw", 0.1), ("dw", 0.05)}  # the reference is not paired with itself
    row = rows[("dw", 0.1)]
    assert row["seeds"] == 2 and row["score_diff"] == pytest.approx(1.5) and row["score_wins"] == 2
    assert row["score_diff_std"] == pytest.approx(0.7071, abs=1e-4)
    assert row["loss_diff"] == pytest.approx(0.0) and row["loss_wins"] == 1
    low = rows[("dw", 0.05)]
    assert low["score_diff"] == pytest.approx(-1.0) and low["score_wins"] == 0 and low["loss_wins"] == 1
    table = markdown({"cells": cells, "full": [], "zero_shot": None}, {})
    assert "| dw | 0.1 | 2 | +1.50 ± 0.71 | 2/2 | +0.0000 ± 0.1414 | 1/2 |" in table


def test_no_reference_no_paired_table():
    cells = [cell("dw", 0, 22.0, 1.6)]
    assert paired_with({"cells": cells}, "random") == []
    assert "Paired with" not in markdown({"cells": cells, "full": [], "zero_shot": None}, {})


def test_single_seed_differences_carry_no_spread():
    table = markdown({"cells": [cell("random", 0, 20.0, 1.5), cell("dw", 0, 22.0, 1.6)], "full": [], "zero_shot": None}, {})
    assert "| dw | 0.1 | 1 | +2.00 | 1/1 | +0.1000 | 0/1 |" in table
