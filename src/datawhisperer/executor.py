"""The one executor: it runs any step's units of work over ranks, shards and sittings.

A step (`Work`) only says what its units are, which rank or shard owns one, how to play one and how its
records are keyed. The executor decides what this process plays, skips what earlier sittings logged, appends
what it plays to this process's log (through RunDirectory), holds the barriers, and on `merge` checks that
each shard holds its own units and all of them. Units are fixed by the plan alone (episode batches, parts of
PART_SIZE items), so a resumed, distributed or sharded run computes exactly what one uninterrupted process does.
Steps: Data Whisperer's episodes (whisperer.py), a baseline's parts (baselines/base.py), embeddings (embedding.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .episodes import owner_of
from .errors import UserError

if TYPE_CHECKING:
    from .distributed import Group, Topology
    from .inputs import RunInputs
    from .rundir import RunDirectory
    from .vectors import Embeddings

PART_SIZE = 16  # items per part of a step played in parts (a baseline's pool, the embedding step's items)


@dataclass
class Session:
    """What the runner hands the executor: checked inputs, the model on first use, where outputs go."""

    inputs: RunInputs
    out: RunDirectory | None
    topology: Topology
    group: Group
    load_backend: Callable[[], object]  # loads the model on first use, then hands back the same one
    log: Callable[[str], None] = print
    progress: bool = True
    embeddings: Embeddings | None = None  # the embedding step's result, on the main process (rds scores from it)

    @property
    def backend(self):
        return self.load_backend()


@dataclass
class Scored:
    scores: np.ndarray  # float64, higher is selected first; NaN for an example the method could not score
    appearances: np.ndarray  # how often each example was measured (0 where a method does not count)
    info: dict = field(default_factory=dict)  # what run.json records for this method beyond the common fields
    outcomes: list | None = None  # played episodes, kept as episodes.jsonl
    embeddings: np.ndarray | None = None  # [N, dim] the examples' embeddings where the method recorded them


@dataclass
class ShardDone:
    """A shard's share of the work is logged in its directory; `merge` combines the shards."""

    info: dict  # what the shard's run.json records beyond the common fields
    work: str  # what the shard did, for its summary line: "12 episodes (1 failed)"


@dataclass
class Work:
    kind: str  # the run directory's log of this step: "episodes", "parts" or "embedded"
    stages: list[list]  # the units, stage by stage (Data Whisperer's --rounds auto plays a round per stage)
    owner: Callable[[object, int], int]  # (unit, world size) -> the rank or shard that plays it
    play: Callable[[object, dict, Callable[[list], None]], list]  # (unit, done, log) -> the unit's records
    key: Callable[[object], Hashable]  # a record's key in the log
    owner_of_record: Callable[[object, int], int]  # (record, world size) -> who should have logged it
    missing: Callable[[dict, int, int], list]  # (records, index, count) -> the labels of share index's gaps
    size: Callable[[object], int] = lambda unit: 1  # what a unit adds to the progress bar
    desc: str = "scoring"
    unit: str = "episode"  # what the progress bar counts
    piece: str = "episode"  # what the merge's errors call a unit
    after_stage: Callable[[int, dict], bool] | None = None  # (stage, every record so far) -> play the next?
    describe_stage: Callable[[int], str] | None = None  # the progress bar's label for a stage
    postfix: Callable[[list], dict] | None = None  # what the progress bar shows of the records played so far
    state: dict = field(default_factory=dict)  # what the step records of this sitting (its method reads it)


@dataclass
class Executed:
    work: Work
    records: dict  # by key: the whole run's on the main process, a shard's own in a shard, else this rank's
    resumed: dict  # what earlier sittings had logged, by key
    mine: list  # the records of the units this process owns (played now or before), in play order


def execute(session: Session, work: Work) -> Executed:
    """Play this process's units, stage by stage, skipping what is logged; log each record as it is made."""
    from tqdm.auto import tqdm

    topology, out = session.topology, session.out
    done = out.records(work.kind) if out is not None else {}
    session.group.barrier()  # everyone has read the old logs before anyone appends
    log = None
    if out is not None:
        log = out.log(work.kind, topology.rank, topology.world_size) if topology.launched else out.log(work.kind)

    def append(records: list) -> None:
        if log is not None:
            log.append([r for r in records if work.key(r) not in done])

    mine: list = []
    try:
        for number, stage in enumerate(work.stages):
            units = [u for u in stage if work.owner(u, topology.world_size) == topology.rank]
            with tqdm(total=sum(map(work.size, units)), disable=not session.progress, unit=work.unit,
                      desc=work.describe_stage(number) if work.describe_stage else work.desc, file=sys.stderr,
                      dynamic_ncols=True) as bar:
                for unit in units:
                    mine += work.play(unit, done, append)
                    bar.update(work.size(unit))
                    if work.postfix is not None and (shown := work.postfix(mine)):
                        bar.set_postfix(shown)
            if work.after_stage is not None:
                session.group.barrier()  # logs are fsync'ed as they grow: every rank reads the same records
                seen = out.records(work.kind) if out is not None else {work.key(r): r for r in mine}
                if not work.after_stage(number, seen):
                    break
    finally:
        if log is not None:
            log.close()
    session.group.barrier()
    if out is not None and (topology.is_main or topology.shard):
        records = out.records(work.kind)
    else:
        records = {**done, **{work.key(r): r for r in mine}}
    return Executed(work, records, done, mine)


def run_method(session: Session, method) -> Scored | ShardDone | None:
    """A method's units through `execute`, then its scores (the main process), a shard's record, or None."""
    work = method.work(session.inputs, session.load_backend)
    executed = execute(session, work) if work is not None else None
    topology = session.topology
    sitting = {"model": session.backend.description if method.needs_model else None,
               "world_size": topology.world_size, "embeddings": session.embeddings}
    if topology.shard:
        return method.shard_result(session.inputs, executed, sitting)
    if not topology.is_main:
        return None
    return method.result(session.inputs, executed, sitting)


def merge_shards(work: Work, shards: list[tuple[RunDirectory, dict]]) -> dict:
    """Every shard's logged records, refusing one that holds another shard's unit or lacks one of its own."""
    records: dict = {}
    for shard, info in shards:
        index, count = info["shard"]["index"], info["shard"]["count"]
        where = f"{shard.path} (shard {index}/{count})"
        found = shard.records(work.kind)
        for key, record in found.items():
            if work.owner_of_record(record, count) != index:
                raise UserError(f"{where} holds {work.piece} {key[0] if isinstance(key, tuple) else key} of "
                                "another shard")
        gaps = work.missing(found, index, count)
        if gaps:
            raise UserError(f"{where} lacks {len(gaps)} of its {work.piece}s (first: {gaps[0]}); rerun it with --resume")
        records.update(found)
    return records


def parts_work(kind: str, size: int, play: Callable[[list[int]], object],
               record: Callable[[int, object, int, float], object], desc: str, unit: str = "example") -> Work:
    """A step played in fixed parts of PART_SIZE items: part k is played by rank or shard k mod W and logged
    as one record (`record(start, measured, items, seconds)`), keyed by its first item."""
    import time

    starts = list(range(0, size, PART_SIZE))

    def items_of(start: int) -> list[int]:
        return list(range(start, min(start + PART_SIZE, size)))

    def play_part(start: int, done: dict, log: Callable[[list], None]) -> list:
        if start in done:
            return [done[start]]
        began = time.perf_counter()
        items = items_of(start)
        part = record(start, play(items), len(items), time.perf_counter() - began)
        log([part])
        return [part]

    def missing(found: dict, index: int, count: int) -> list:
        return [f"{unit}s {s}-{s + len(items_of(s)) - 1}" for s in owned_parts(size, index, count)
                if s not in found or found[s].count != len(items_of(s))]

    def owner(start: int, world: int) -> int:
        return owner_of(start // PART_SIZE, 1, world)

    return Work(kind, [starts], owner, play_part, key=lambda part: part.start,
                owner_of_record=lambda part, world: owner(part.start, world), missing=missing,
                size=lambda start: len(items_of(start)), desc=desc, unit=unit, piece="part")


def owned_parts(size: int, index: int, count: int) -> list[int]:
    """The first items of the parts that rank or shard `index` of `count` plays."""
    return [start for start in range(0, size, PART_SIZE) if owner_of(start // PART_SIZE, 1, count) == index]
