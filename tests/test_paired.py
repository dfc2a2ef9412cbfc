"""benchmarks/paired.py: a scenario's cells from several bench directories paired with one directory's random."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paired.py"
spec = importlib.util.spec_from_file_location("paired", SCRIPT)
paired = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired)


def write_bench(directory: Path, balance: str, cells: list[tuple[str, int, float, float, int]]) -> Path:
    """cells: (method, seed, score, loss, swapped records of 10); each fine-tune takes 1 s per 10 training tokens,
    a selection (not random) 40 s + the seed, and the pool has 2,000 training tokens: a full fine-tune of 200 s."""
    (directory / "cells").mkdir(parents=True)
    (directory / "protocol.json").write_text(json.dumps({"settings": {"balance": balance}, "data": {}}))
    (directory / "pool_tokens.json").write_text(json.dumps({"train_tokens": 2000}))
    for method, seed, score, loss, swapped in cells:
        cell = directory / "cells" / f"{method}-b0.1-s{seed}"
        cell.mkdir()
        (cell / "result.json").write_text(json.dumps({
            "method": method, "budget": 0.1, "seed": seed, "score": score, "loss": loss, "examples": 10,
            "mean_answer_words": 20.0 + seed, "composition": {"true": swapped, "false": 10 - swapped},
            "train_tokens": 100 * (seed + 1), "finetune_seconds": 10.0 * (seed + 1),
            "selection_seconds": 0.0 if method == "random" else 40.0 + seed}))
    return directory


def test_cells_of_another_directory_pair_with_the_first_directory_s_random_at_the_same_seed(tmp_path):
    plain = write_bench(tmp_path / "noisy_smollm2", "off", [
        ("random", 0, 20.0, 1.70, 2), ("random", 1, 22.0, 1.60, 3), ("random", 2, 21.0, 1.65, 1),
        ("datawhisperer", 0, 21.0, 1.69, 0), ("datawhisperer", 1, 21.0, 1.62, 1)])
    length = write_bench(tmp_path / "noisy_length_smollm2", "answer-length", [
        ("datawhisperer", 0, 24.0, 1.66, 0), ("datawhisperer", 1, 23.0, 1.58, 0),
        ("datawhisperer", 2, 25.0, 1.60, 1), ("datawhisperer", 3, 30.0, 1.00, 0),  # seed 3: no random to pair with
        ("random", 0, 19.0, 1.71, 2)])
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in paired.table([plain, length], "swapped=true")
            if line.startswith("| ") and "---" not in line}
    balanced = rows["datawhisperer (--balance answer-length)"]
    # differences +4, +1, +4: mean +3.00, std 1.732, t(2) 4.303 -> half-width 4.30
    assert balanced[2:6] == ["3", "24.00 ± 1.00", "+3.00 [-1.30, +7.30]", "3/3"]
    assert balanced[6].startswith("-0.0367") and balanced[7] == "3/3"  # -0.04, -0.02, -0.05
    # seed 3 left out of words, shares and selection seconds; STR over the one full-pool figure, 200 s
    assert balanced[8:] == ["21.0", "3.3%", "41", "0.20 |"]
    unbalanced = rows["datawhisperer (--balance off)"]  # +1, -1
    assert unbalanced[2:6] == ["2", "21.00 ± 0.00", "+0.00 [-12.71, +12.71]", "1/2"]
    assert unbalanced[-2:] == ["40", "0.20 |"]  # seeds 0 and 1: 40.5 s, rounded to even
    # a random run within another balance is a method of its own, paired like the others
    assert rows["random (within --balance answer-length)"][2:6] == ["1", "19.00", "-1.00", "0/1"]
    assert rows["random"][2:4] == ["3", "21.00 ± 1.00"] and rows["random"][-3:] == ["20.0%", "0", "0.00 |"]
