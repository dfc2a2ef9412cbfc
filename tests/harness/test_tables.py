import numpy as np
import pytest

from datawhisperer.harness.tables import interval_95, markdown, paired_with, t_quantile_975


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
    assert row["score_diff_ci95"] == pytest.approx([1.5 - 6.353, 1.5 + 6.353], abs=1e-3)  # t(1) = 12.706
    assert "| dw | 0.1 | 2 | +1.50 ± 0.71 [-4.85, +7.85] | 2/2 | +0.0000 ± 0.1414 [-1.2706, +1.2706] | 1/2 |" in table


def test_the_95_percent_interval_over_five_seeds():
    diffs = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, std 1.5811: half-width 2.776 * 1.5811 / sqrt(5) = 1.963
    assert interval_95(3.0, float(np.std(diffs, ddof=1)), 5) == pytest.approx([1.037, 4.963], abs=1e-3)
    assert interval_95(3.0, 1.0, 1) is None
    assert t_quantile_975(20) == pytest.approx(2.086, abs=1e-3) and t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)


def test_no_reference_no_paired_table():
    cells = [cell("dw", 0, 22.0, 1.6)]
    assert paired_with({"cells": cells}, "random") == []
    assert "Paired with" not in markdown({"cells": cells, "full": [], "zero_shot": None}, {})


def test_single_seed_differences_carry_no_spread():
    table = markdown({"cells": [cell("random", 0, 20.0, 1.5), cell("dw", 0, 22.0, 1.6)], "full": [], "zero_shot": None}, {})
    assert "| dw | 0.1 | 1 | +2.00 | 1/1 | +0.1000 | 0/1 |" in table


def test_an_estimated_str_is_said_below_the_table_with_the_zero_shot_row_inside_it():
    cells = [cell("random", 0, 20.0, 1.5), cell("dw", 0, 22.0, 1.6)]  # 2 s for 100 tokens each
    results = {"cells": cells, "full": [], "pool_tokens": {"train_tokens": 1000, "examples": 10},
               "zero_shot": {"score": 18.0, "loss": 1.7, "mean_answer_words": 70.0}}
    lines = markdown(results, {}).splitlines()
    zero, note = lines.index("| zero-shot | 0 | 18.00 | 1.7000 | 70.0 | | | |"), \
        next(i for i, line in enumerate(lines) if line.startswith("STR is estimated"))
    assert lines[zero - 1].startswith("| random | 0.1 |") and note == zero + 2 and "about 20 s" in lines[note]
    assert "| dw | 0.1 | 22.00 (1) |" in lines[zero - 2] and lines[zero - 2].endswith("| 0.050 |")  # 1 s / 20 s
