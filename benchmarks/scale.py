"""Scaling: selection time and peak memory as the pool grows (tiny random model, synthetic pool).

    python benchmarks/scale.py                     # 5,000 and 20,000 examples
    python benchmarks/scale.py --sizes 1000 4000   # quicker

Each size runs `datawhisperer select` in its own process, so peak memory is that run's alone.
Target: 4x the pool costs at most 4.4x the time, and peak memory grows at most 10%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def write_pool(path: Path, size: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(size):
            words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 5)]
            fh.write(json.dumps({"text": " ".join(words) + f" {i}", "label": words[0]}) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    from datawhisperer.testing import byte_tokenizer, tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = byte_tokenizer()
        tiny_model("llama", tokenizer, layers=2, hidden=32).save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        for size in args.sizes:
            pool = tmp / f"pool{size}.jsonl"
            write_pool(pool, size)
            out = tmp / f"run{size}"
            command = [sys.executable, "-m", "datawhisperer", "select", str(pool), "--out", str(out), "--model",
                       str(tmp / "model"), "--task", "classification", "--max-new-tokens", "4", "--quiet",
                       "--device", "cpu"]
            subprocess.run(command, check=True)
            info = json.loads((out / "run.json").read_text())
            rows.append({"size": size, "seconds": info["selection_seconds"], "peak_rss_mb": info["peak_rss_mb"],
                         "episodes": info["episodes"]})
            print(f"{size:>7} examples: {info['episodes']:>6} episodes, {info['selection_seconds']:8.1f} s, "
                  f"peak RSS {info['peak_rss_mb']:.0f} MB", flush=True)
    first, last = rows[0], rows[-1]
    growth = last["size"] / first["size"]
    time_ratio = last["seconds"] / first["seconds"]
    memory_ratio = last["peak_rss_mb"] / first["peak_rss_mb"]
    print(f"{growth:.0f}x the pool: {time_ratio:.2f}x the time (target <= {1.1 * growth:.1f}x), "
          f"{memory_ratio:.3f}x the peak memory (target <= 1.10x)")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "time_ratio": time_ratio, "memory_ratio": memory_ratio},
                                             indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
