"""The bundled demo: English noun plurals, a task the embedded 135M model can partly do, with a known
share of deliberately broken examples (wrong plurals, answers swapped between records).

    python -m datawhisperer.demo build demo/plurals.jsonl     # write the pool (deterministic)
    python -m datawhisperer.demo report demo-out demo/plurals.jsonl   # where did the broken ones land?
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from .errors import UserError

REGULAR = """
apple arm bag ball bank bed bell bird boat book boot bottle bowl bread brick bridge bucket cake
camera candle car card carpet cat chair chicken clock cloud coat coin computer cookie cow cup
desk door dog dream drum duck ear egg engine eye farm field finger flag floor flower friend frog
garden gate gift girl goat hand hat head heart hill horse house island jacket key king kite lamp
leg lemon letter lion map market mountain nail nest night nose ocean onion orange owl pen pencil
picture pig plane plant pocket pond queen rabbit ring river road rock room rope school seed ship
shirt shoe shop snake sock song spoon star stone street sun table teacher tiger tent tree truck
umbrella window wing word worm year zoo airport anchor animal badge balloon banana basket battery
blanket button cabin canal carrot castle coffee corner cousin dancer doctor dragon elbow envelope feather
forest fountain guitar hammer helmet insect jewel kettle ladder magnet meadow mirror monkey needle
""".split()
SIBILANT = """
box bus brush church class dish dress fox glass kiss lunch match peach tax watch wish beach bench
bush coach crash fax inch
""".split()
CONSONANT_Y = "baby berry city country family fly lady party penny pony puppy story cherry diary".split()
F_TO_VES = {"leaf": "leaves", "wolf": "wolves", "knife": "knives", "wife": "wives", "life": "lives",
            "shelf": "shelves", "half": "halves", "calf": "calves", "loaf": "loaves", "thief": "thieves"}
IRREGULAR = {"man": "men", "woman": "women", "child": "children", "foot": "feet", "tooth": "teeth",
             "mouse": "mice", "goose": "geese", "person": "people", "ox": "oxen", "sheep": "sheep",
             "fish": "fish", "deer": "deer", "cactus": "cacti", "potato": "potatoes", "tomato": "tomatoes",
             "hero": "heroes"}


def plural(noun: str) -> str:
    if noun in IRREGULAR:
        return IRREGULAR[noun]
    if noun in F_TO_VES:
        return F_TO_VES[noun]
    if noun in CONSONANT_Y:
        return noun[:-1] + "ies"
    if noun in SIBILANT:
        return noun + "es"
    return noun + "s"


def wrong_plural(noun: str, rng: random.Random) -> str:
    """A plausible but wrong plural."""
    correct = plural(noun)
    for candidate in rng.sample([noun, noun + "es", noun + "s", noun + "ies", correct[:-1] + "z"], 5):
        if candidate != correct:
            return candidate
    return noun + "x"


def build(seed: int = 0, wrong_share: float = 0.1, swapped_share: float = 0.1) -> list[dict]:
    """All nouns, shuffled; a share get a wrong plural and a share have their answers swapped in pairs."""
    rng = random.Random(seed)
    nouns = REGULAR + SIBILANT + CONSONANT_Y + list(F_TO_VES) + list(IRREGULAR)
    rng.shuffle(nouns)
    records = [{"noun": n, "plural": plural(n), "kind": "clean"} for n in nouns]
    n_wrong, n_swapped = round(wrong_share * len(records)), round(swapped_share * len(records)) // 2 * 2
    picked = rng.sample(range(len(records)), n_wrong + n_swapped)
    for i in picked[:n_wrong]:
        records[i].update(plural=wrong_plural(records[i]["noun"], rng), kind="wrong")
    swapped = picked[n_wrong:]
    for a, b in zip(swapped[::2], swapped[1::2]):
        records[a]["plural"], records[b]["plural"] = records[b]["plural"], records[a]["plural"]
        records[a]["kind"] = records[b]["kind"] = "swapped"
    return records


def report(run_dir: Path, pool: Path) -> str:
    """Where the broken examples landed in the run's ranking (bottom 20% and mean rank, by kind)."""
    from .rundir import RunDirectory

    records = [json.loads(line) for line in pool.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = RunDirectory(run_dir).score_rows()
    order = sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["index"]))
    rank = {row["index"]: position for position, row in enumerate(order)}
    n = len(order)
    bottom = {row["index"] for row in order[n - n // 5:]}
    lines = [f"Ranked {n} examples; the bottom 20% holds {len(bottom)} of them."]
    for kind in ("wrong", "swapped", "clean"):
        members = [i for i, r in enumerate(records) if r["kind"] == kind]
        if not members:
            continue
        in_bottom = sum(i in bottom for i in members)
        mean_pct = 100 * sum(rank[i] for i in members) / len(members) / max(n - 1, 1)
        lines.append(f"  {kind:8s} {len(members):4d} examples: {in_bottom:3d} ({100 * in_bottom / len(members):5.1f}%) "
                     f"in the bottom 20%, mean rank at {mean_pct:5.1f}% from the top")
    lines.append(f"Broken examples in the bottom 20%: {100 * broken_share(records, bottom):.1f}% (20% expected by "
                 "chance).")
    pool_share = 100 * sum(r["kind"] != "clean" for r in records) / max(len(records), 1)
    for subset in sorted(run_dir.glob("selected-*.jsonl")):  # the subsets as a user gets them
        picked = [json.loads(line) for line in subset.read_text(encoding="utf-8").splitlines() if line.strip()]
        lines.append(f"{subset.name}: {sum(r['kind'] != 'clean' for r in picked)} broken of {len(picked)} "
                     f"({pool_share:.1f}% of the pool is broken).")
    return "\n".join(lines)


def broken_share(records: list[dict], bottom: set[int]) -> float:
    """The share of the broken examples (kind other than clean) that the ranking puts in `bottom`."""
    broken = [i for i, r in enumerate(records) if r["kind"] != "clean"]
    return sum(i in bottom for i in broken) / max(len(broken), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datawhisperer.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the demo pool as JSONL")
    b.add_argument("out")
    b.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("report", help="where the broken examples landed in a run's ranking")
    r.add_argument("run_dir")
    r.add_argument("pool")
    args = parser.parse_args(argv)
    if args.command == "build":
        records = build(args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        print(f"wrote {len(records)} examples ({sum(r['kind'] != 'clean' for r in records)} broken) to {args.out}")
        return 0
    try:
        print(report(Path(args.run_dir), Path(args.pool)))
    except (UserError, OSError) as exc:  # a directory that holds no run, a pool that is not there
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
