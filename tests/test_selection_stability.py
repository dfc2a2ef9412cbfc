"""benchmarks/selection_stability.py: top-k overlap between seeds, and the length of the picks."""

import importlib.util
import json
from pathlib import Path

from datawhisperer.runlogs import EpisodeLog
from datawhisperer.scoring import EpisodeOutcome

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "selection_stability.py"
spec = importlib.util.spec_from_file_location("selection_stability", SCRIPT)
stability = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stability)


def write_run(directory: Path, scores: list, status: str = "finished") -> Path:
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps({"status": status}))
    (directory / "scores.jsonl").write_text(
        "".join(json.dumps({"index": i, "score": s, "appearances": 1}) + "\n" for i, s in enumerate(scores)))
    return directory


def test_overlap_between_seeds_of_a_scored_method(tmp_path):
    write_run(tmp_path / "ifd-s0", [4, 3, 2, 1, 0, None])
    write_run(tmp_path / "ifd-s1", [4, 0, 3, 1, 2, None])
    write_run(tmp_path / "ifd-s2", [0, 1, 2, 3, 4, 5])
    write_run(tmp_path / "grand-s0", [1, 2, 3, 4, 5, 6])  # one seed: nothing to compare
    write_run(tmp_path / "nuggets-s0", [1, 2, 3, 4, 5, 6])
    write_run(tmp_path / "nuggets-s1", [1, 2, 3, 4, 5, 6], status="running")
    overlaps = stability.seed_overlaps(stability.finished_scores(tmp_path), [2, 3])
    assert list(overlaps) == ["ifd"]
    # top 2: s0 {0, 1}, s1 {0, 2}, s2 {5, 4}; top 3: s0 {0, 1, 2}, s1 {0, 2, 4}, s2 {5, 4, 3}
    assert overlaps["ifd"] == {2: [1, 0, 0], 3: [2, 0, 1]}


def test_data_whisperer_runs_are_ranked_per_weighting(tmp_path):
    def outcome(episode, demos, attention):
        return EpisodeOutcome(episode=episode, attempt=0, round=0, demos=demos, queries=[3], query_scores=[1.0],
                              attention=attention, weights=[a / sum(attention) for a in attention])

    for seed, first in ((0, 0), (1, 1)):
        run = write_run(tmp_path / f"datawhisperer-r1-s{seed}", [0.0] * 4)
        EpisodeLog(run / "episodes.jsonl").append([outcome(0, [first, 2], [1.0, 3.0]),
                                                  outcome(1, [1 - first, 3], [1.0, 1.0])])
    overlaps = stability.seed_overlaps(stability.finished_scores(tmp_path), [1])
    assert set(overlaps) == {"datawhisperer-paper-r1", "datawhisperer-uniform-r1", "datawhisperer-debiased-r1"}
    assert overlaps["datawhisperer-paper-r1"] == {1: [1]}  # example 2 draws most attention in both seeds

def test_report_on_a_bench_directory(tmp_path, capsys):
    pool = [{"instruction": f"q{i}", "input": "", "output": " ".join(["w"] * (i + 1))} for i in range(4)]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (tmp_path / "protocol.json").write_text(json.dumps({"settings": {"task": "instruction"}}))
    write_run(tmp_path / "selections" / "length-s0", [3, 2, 1, 0])
    write_run(tmp_path / "selections" / "length-s1", [3, 2, 1, 0])
    assert stability.main([str(tmp_path), "--top", "2"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| length")][0]
    assert row == "| length | 2 | 2.0 of 2 | -1.00 | 1.5 |"


def test_not_a_bench_directory_is_an_error(tmp_path, capsys):
    assert stability.main([str(tmp_path)]) == 1
    assert "not a bench directory" in capsys.readouterr().out
    (tmp_path / "selections").mkdir()
    (tmp_path / "protocol.json").write_text("{}")
    assert stability.main([str(tmp_path)]) == 1
    assert "no finished selection run" in capsys.readouterr().out
