"""Two selections side by side on one machine (issue 19): with the default threads and with --threads 1 each,
against one run alone. Prints each run's wall seconds and the ratios; run it on an otherwise idle machine.

    python benchmarks/threads.py --records 60

Uses the demo pool (built by the project) and the embedded model; the runs write under a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(pool: Path, out: Path, threads: int | None) -> list[str]:
    return [sys.executable, "-m", "datawhisperer", "select", str(pool), "--task", str(ROOT / "demo" / "plurals.yaml"),
            "--out", str(out), "--quiet", "--overwrite", "--n-demos", "5", "--n-queries", "3",
            *(["--threads", str(threads)] if threads else [])]


def side_by_side(pool: Path, work: Path, threads: int | None, count: int) -> list[float]:
    """The selection seconds of `count` runs started together."""
    processes = [subprocess.Popen(command(pool, work / f"run{k}", threads)) for k in range(count)]
    if any(process.wait() != 0 for process in processes):
        raise SystemExit("a run failed")
    return [json.loads((work / f"run{k}" / "run.json").read_text())["selection_seconds"] for k in range(count)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60)
    args = parser.parse_args(argv)
    from datawhisperer.demo import build

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pool = work / "pool.jsonl"
        pool.write_text("".join(json.dumps(r) + "\n" for r in build()[: args.records]))
        side_by_side(pool, work, 1, 1)  # warm the model cache and the page cache
        results = {}
        for name, threads, count in (("default alone", None, 1), ("--threads 1 alone", 1, 1),
                                     ("default, two side by side", None, 2), ("--threads 1, two side by side", 1, 2)):
            results[name] = side_by_side(pool, work, threads, count)
            print(f"{name}: selection seconds {', '.join(f'{s:.1f}' for s in results[name])}", flush=True)
    default, single = results["default alone"][0], results["--threads 1 alone"][0]
    print(f"two default runs side by side: {max(results['default, two side by side']) / default:.2f}x one default "
          "run alone (aim: at most 2.5x)")
    print(f"two --threads 1 runs side by side: {max(results['--threads 1, two side by side']) / single:.2f}x one "
          "--threads 1 run alone (aim: at most 1.2x)")
    out = ROOT / "benchmarks" / "results" / "threads_cpu.json"
    out.write_text(json.dumps({"records": args.records, **results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
