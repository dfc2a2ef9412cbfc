"""The demo's report: where the broken plurals landed in the ranking and in each subset."""

import json
from pathlib import Path

from datawhisperer.cli import main
from datawhisperer.demo import build, report

ROOT = Path(__file__).parents[1]


def test_report_counts_the_broken_records_of_every_subset_as_written(tmp_path):
    records = build()[:60]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    assert main(["select", str(pool), "--task", str(ROOT / "demo" / "plurals.yaml"), "--out", str(out),
                 "--backend", "fake", "--n-demos", "3", "--n-queries", "2", "--budget", "0.2", "--budget", "30",
                 "--quiet"]) == 0
    text = report(out, pool)
    broken = sum(r["kind"] != "clean" for r in records)
    assert 0 < broken < len(records)
    for name, size in (("selected-0.2.jsonl", 12), ("selected-30.jsonl", 30)):
        picked = [json.loads(line) for line in (out / name).read_text().splitlines()]
        assert len(picked) == size
        held = sum(r["kind"] != "clean" for r in picked)
        assert f"{name}: {held} broken of {size} ({100 * broken / len(records):.1f}% of the pool is broken)." in text
    assert text.splitlines()[0] == "Ranked 60 examples; the bottom 20% holds 12 of them."
