"""One scenario's paired table over several bench directories: every method of each directory against the
random cells of one reference directory, at the same budget and seed (the README's scenario tables).

A bench directory holds one protocol, so a `--balance` other than the first directories' lives in a directory of
its own (`<scenario>_length_smollm2`, which has no random cells): this pairs its cells with the plain random
subsets a user would otherwise take.

    python benchmarks/paired.py noisy                  # noisy_smollm2 and noisy_length_smollm2, random of the first
    python benchmarks/paired.py selective --field ''   # no composition column
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datawhisperer.harness.tables import PAIRED_REFERENCE, collect, paired_with

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = {"noisy": "swapped=true", "mixed": 'source="bioinstruct"'}  # the composition value whose share is shown


def balance_of(directory: Path) -> str:
    settings = json.loads((directory / "protocol.json").read_text(encoding="utf-8"))["settings"]
    return settings.get("balance", "off")


def table(directories: list[Path], field: str | None) -> list[str]:
    reference = collect(directories[0])
    random_cells = [c for c in reference["cells"] if c["method"] == PAIRED_REFERENCE]
    cells, words, shares = [], {}, {}
    for directory in directories:
        balance = balance_of(directory)
        for cell in collect(directory)["cells"]:
            if cell["method"] == PAIRED_REFERENCE and directory != directories[0]:
                cell = {**cell, "method": f"{PAIRED_REFERENCE} (within --balance {balance})"}
            elif cell["method"] != PAIRED_REFERENCE:
                cell = {**cell, "method": f"{cell['method']} (--balance {balance})"}
            else:
                continue
            cells.append(cell)
    paired = {(c["budget"], c["seed"]) for c in random_cells}
    cells = [c for c in cells if (c["budget"], c["seed"]) in paired]  # words and shares over the paired seeds
    for cell in cells + random_cells:
        key = (cell["method"], cell["budget"])
        words.setdefault(key, []).append(cell["mean_answer_words"])
        if field:
            value = field.split("=", 1)[1]
            counts = cell.get("composition") or {}
            shares.setdefault(key, []).append(counts.get(value, 0) / max(cell["examples"], 1))
    lines = [f"| method | budget | seeds | ROUGE-L − {PAIRED_REFERENCE} [95%] | wins | loss − {PAIRED_REFERENCE} [95%] | "
             f"wins | answer words |{f' {field} |' if field else ''}", "|---" * (8 + bool(field)) + "|"]
    for row in paired_with({"cells": cells + random_cells}, PAIRED_REFERENCE):
        key = (row["method"], row["budget"])
        cols = [row["method"], f"{row['budget']:.0%}", str(row["seeds"]), _diff(row, "score", 2),
                f"{row['score_wins']}/{row['seeds']}", _diff(row, "loss", 4), f"{row['loss_wins']}/{row['seeds']}",
                f"{sum(words[key]) / len(words[key]):.1f}"]
        if field:
            cols.append(f"{100 * sum(shares[key]) / len(shares[key]):.1f}%")
        lines.append("| " + " | ".join(cols) + " |")
    for budget in sorted({c["budget"] for c in random_cells}):
        key = (PAIRED_REFERENCE, budget)
        n = sum(c["budget"] == budget for c in random_cells)
        lines.append(f"| {PAIRED_REFERENCE} | {budget:.0%} | {n} | – | – | – | – | {sum(words[key]) / n:.1f} |"
                     + (f" {100 * sum(shares[key]) / n:.1f}% |" if field else ""))
    return lines


def _diff(row: dict, key: str, digits: int) -> str:
    interval = row[f"{key}_diff_ci95"]
    shown = f"{row[f'{key}_diff']:+.{digits}f}"
    return shown if interval is None else f"{shown} [{interval[0]:+.{digits}f}, {interval[1]:+.{digits}f}]"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="paired.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", help="noisy, mixed, selective, or any prefix of <prefix>_smollm2 directories")
    parser.add_argument("--field", default=None, help="composition value to show, as name=value (default: the "
                        "scenario's; '' for none)")
    args = parser.parse_args(argv)
    directories = [d for d in (RESULTS / f"{args.scenario}_smollm2", RESULTS / f"{args.scenario}_length_smollm2")
                   if (d / "protocol.json").exists()]
    if not directories:
        print(f"paired.py: error: no {RESULTS / (args.scenario + '_smollm2')}/protocol.json", file=sys.stderr)
        return 2
    field = FIELDS.get(args.scenario) if args.field is None else (args.field or None)
    print("\n".join(table(directories, field)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
