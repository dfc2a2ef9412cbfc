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

from datawhisperer.harness.tables import PAIRED_REFERENCE, collect, full_seconds, paired_with

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = {"noisy": "swapped=true", "mixed": 'source="bioinstruct"'}  # the composition value whose share is shown


def balance_of(directory: Path) -> str:
    settings = json.loads((directory / "protocol.json").read_text(encoding="utf-8"))["settings"]
    return settings.get("balance", "off")


def table(directories: list[Path], field: str | None) -> list[str]:
    reference = collect(directories[0])
    random_cells = [c for c in reference["cells"] if c["method"] == PAIRED_REFERENCE]
    cells = []
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
    # one full-pool figure for the whole scenario, so that the STR of every row has the same denominator
    full, _ = full_seconds({**reference, "cells": cells + random_cells})
    paired = {(c["budget"], c["seed"]) for c in random_cells}
    cells = [c for c in cells if (c["budget"], c["seed"]) in paired]  # every column over the paired seeds
    by_key: dict[tuple[str, float], list[dict]] = {}
    for cell in cells + random_cells:
        by_key.setdefault((cell["method"], cell["budget"]), []).append(cell)
    lines = [f"| method | budget | seeds | ROUGE-L | − {PAIRED_REFERENCE} [95%] | wins | loss − {PAIRED_REFERENCE} "
             f"[95%] | wins | answer words |{f' {field} |' if field else ''} selection s | STR |",
             "|---" * (11 + bool(field)) + "|"]
    rows = paired_with({"cells": cells + random_cells}, PAIRED_REFERENCE)
    rows += [{"method": PAIRED_REFERENCE, "budget": b, "seeds": sum(c["budget"] == b for c in random_cells)}
             for b in sorted({c["budget"] for c in random_cells})]
    for row in rows:
        group = by_key[(row["method"], row["budget"])]
        outcome = [_diff(row, "score", 2), f"{row['score_wins']}/{row['seeds']}", _diff(row, "loss", 4),
                   f"{row['loss_wins']}/{row['seeds']}"] if row["method"] != PAIRED_REFERENCE else ["–"] * 4
        selection = _mean([c.get("selection_seconds") or 0.0 for c in group])
        cols = [row["method"], f"{row['budget']:.0%}", str(row["seeds"]), _spread([c["score"] for c in group]),
                *outcome, f"{_mean([c['mean_answer_words'] for c in group]):.1f}"]
        if field:
            value = field.split("=", 1)[1]
            share = _mean([(c.get("composition") or {}).get(value, 0) / max(c["examples"], 1) for c in group])
            cols.append(f"{100 * share:.1f}%")
        cols += [f"{selection:.0f}", f"{selection / full:.2f}" if full == full and full else "–"]
        lines.append("| " + " | ".join(cols) + " |")
    return lines


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _spread(values: list[float]) -> str:
    """mean ± std (sample), or the one value."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    mean = _mean(values)
    return f"{mean:.2f} ± {(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5:.2f}"


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
