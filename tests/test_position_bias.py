"""benchmarks/position_bias.py: the last-slot share it reports."""

import importlib.util
from pathlib import Path

import numpy as np

from datawhisperer.scoring import EpisodeOutcome

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "position_bias.py"
spec = importlib.util.spec_from_file_location("position_bias", SCRIPT)
position_bias = importlib.util.module_from_spec(spec)
spec.loader.exec_module(position_bias)


def outcome(episode, demos):
    return EpisodeOutcome(episode=episode, attempt=0, round=0, demos=demos, queries=[9], query_scores=[1.0],
                          attention=[1.0] * len(demos), weights=[1 / len(demos)] * len(demos))


def test_last_slot_share_counts_appearances():
    outcomes = [outcome(0, [0, 1, 2]), outcome(1, [2, 0, 1]), outcome(2, [1, 2, 0])]
    assert position_bias.last_slot_share(outcomes, np.array([2])) == 1 / 3
    assert position_bias.last_slot_share(outcomes, np.array([0, 1])) == 2 / 6
    assert np.isnan(position_bias.last_slot_share(outcomes, np.array([7])))


def test_no_finished_run_is_reported(tmp_path, capsys):
    assert position_bias.main([str(tmp_path)]) == 1
    assert "no finished Data Whisperer run" in capsys.readouterr().out
