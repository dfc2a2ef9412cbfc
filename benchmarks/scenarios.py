"""The three pools users meet (issue 18), each a `datawhisperer bench` directory of its own under
benchmarks/results/: resumable cell by cell (rerun the same command to continue).

    selective  the first 1,000 records of bioinstruct/pool.json, budgets 2% and 4% (20 and 40 examples)
    noisy      the bench's 400-record pool with the answers of a fifth of its records swapped among them, 10%;
               each record carries `swapped` (true/false) and results.md tallies it per subset
    mixed      200 BioInstruct + 200 GSM8K records (question and answer in the instruction and output fields),
               shuffled, `--val` 50 BioInstruct records outside the pool, 10%; `source` is tallied

Every scenario is tested on bioinstruct/test.json with the bench's protocol (5 epochs, lr 1e-3, LoRA r 16, loss
on all 501 test records, ROUGE-L on the first 100).

    python benchmarks/scenarios.py noisy --methods random datawhisperer-calibrated-stratified --seeds 0 1 2
    python benchmarks/scenarios.py mixed --methods rds --seeds 0 --no-full

Arguments after the scenario's name go to `datawhisperer bench` as they are. Reads ../shared/data by path and
skips cleanly when it is absent; the pools it writes (copies of those records) are gitignored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(os.environ.get("RESULTS", ROOT / "benchmarks" / "results"))  # a run from a worktree writes into main
PROTOCOL = ["--task", "instruction", "--generate-limit", "100", "--epochs", "5", "--lr", "1e-3", "--batch-size", "8",
            "--lora-r", "16", "--n-demos", "5", "--n-queries", "3", "--select-max-new-tokens", "64"]
N_NOISY, SWAPPED_SHARE = 400, 0.2
N_MIXED_EACH, N_VAL = 200, 50


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def _bio() -> list[dict]:
    return json.loads((DATA / "bioinstruct" / "pool.json").read_text(encoding="utf-8"))


def noisy_pool(out: Path) -> list[str]:
    """The answers of a fifth of the records move one place along the chosen ones (as reliability.py's copy)."""
    records = [dict(r, swapped=False) for r in _bio()[:N_NOISY]]
    chosen = sorted(np.random.default_rng(13).choice(N_NOISY, int(SWAPPED_SHARE * N_NOISY), replace=False).tolist())
    answers = [records[i]["output"] for i in np.roll(chosen, 1)]
    for i, answer in zip(chosen, answers):
        records[i].update(output=answer, swapped=True)
    return ["--pool", str(_write(out / "data" / "pool.jsonl", records)), "--composition-field", "swapped"]


def mixed_pool(out: Path) -> list[str]:
    bio = _bio()
    gsm8k = json.loads((DATA / "gsm8k" / "train.json").read_text(encoding="utf-8"))
    records = [dict(r, source="bioinstruct") for r in bio[:N_MIXED_EACH]]
    records += [{"instruction": r["question"], "input": "", "output": r["answer"], "source": "gsm8k"}
                for r in gsm8k[:N_MIXED_EACH]]
    order = np.random.default_rng(18).permutation(len(records))
    val = [dict(r, source="bioinstruct") for r in bio[-N_VAL:]]  # outside the pool (and the selective scenario)
    return ["--pool", str(_write(out / "data" / "pool.jsonl", [records[i] for i in order])),
            "--val", str(_write(out / "data" / "val.jsonl", val)), "--composition-field", "source"]


def selective_pool(out: Path) -> list[str]:
    return ["--pool", str(DATA / "bioinstruct" / "pool.json"), "--pool-limit", "1000"]


SCENARIOS = {  # name -> (pool and its options, budgets)
    "selective": (selective_pool, ["0.02", "0.04"]),
    "noisy": (noisy_pool, ["0.1"]),
    "mixed": (mixed_pool, ["0.1"]),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SCENARIOS:
        print(f"usage: scenarios.py {{{','.join(SCENARIOS)}}} [bench options ...]", file=sys.stderr)
        return 2
    if not (DATA / "bioinstruct" / "pool.json").exists():
        print(f"skipped: {DATA / 'bioinstruct' / 'pool.json'} is not here")
        return 0
    name, rest = argv[0], argv[1:]
    out = RESULTS / f"{name}_smollm2"
    make_pool, budgets = SCENARIOS[name]
    budget_flags = [] if "--budgets" in rest else [f for b in budgets for f in ("--budgets", b)]
    command = [sys.executable, "-m", "datawhisperer", "bench", *make_pool(out), "--test",
               str(DATA / "bioinstruct" / "test.json"), "--out", str(out), *PROTOCOL, *budget_flags, *rest]
    # this checkout's code, also when the interpreter's environment has another checkout installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
