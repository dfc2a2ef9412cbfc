"""Work done in fixed parts of a list of items: who plays which part, what earlier sittings logged, the logs.

A part is PART_SIZE consecutive items, played in one call and logged as one line; part k goes to rank or
shard k mod W. Parts are fixed by the items alone, so a resumed, distributed or sharded run plays exactly
what one uninterrupted process does. A step only says how many items it has and how to play a part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .episodes import owner_of
from .errors import UserError

if TYPE_CHECKING:
    from .methods import Session

PART_SIZE = 16  # items per logged part


@dataclass(frozen=True)
class PartWork:
    kind: str  # which of the run directory's part logs holds it: "parts" (a baseline) or "embedded"
    size: int  # items
    play: Callable[[list[int]], object]  # the items of one part -> what was measured
    record: Callable[[int, object, int, float], object]  # (start, measured, items, seconds) -> the logged record
    desc: str
    unit: str = "example"


@dataclass
class PartsDone:
    parts: dict  # by first item: every part on the main process (or a shard's own), else this rank's
    resumed: dict  # the parts earlier sittings had logged, by first item
    mine: list[int]  # the first items of the parts this process owns


def owned_parts(size: int, index: int, count: int) -> list[int]:
    """The first items of the parts that rank or shard `index` of `count` plays."""
    return [start for start in range(0, size, PART_SIZE) if owner_of(start // PART_SIZE, 1, count) == index]


def run_parts(session: Session, work: PartWork) -> PartsDone:
    """Play this process's parts that no earlier sitting logged, logging each as it is done."""
    from tqdm.auto import tqdm

    topology, out = session.topology, session.out
    done = out.parts(work.kind) if out is not None else {}
    session.group.barrier()  # everyone has read the old logs before anyone appends
    mine = owned_parts(work.size, topology.rank, topology.world_size)
    log = None
    if out is not None:
        log = out.part_log(topology.rank, topology.world_size, work.kind) if topology.launched \
            else out.part_log(kind=work.kind)
    played: dict = {}
    try:
        with tqdm(total=sum(min(PART_SIZE, work.size - s) for s in mine), desc=work.desc, unit=work.unit,
                  dynamic_ncols=True, disable=not session.progress) as bar:
            for start in mine:
                items = list(range(start, min(start + PART_SIZE, work.size)))
                if start not in done:
                    began = time.perf_counter()
                    played[start] = work.record(start, work.play(items), len(items), time.perf_counter() - began)
                    if log is not None:
                        log.append([played[start]])
                bar.update(len(items))
    finally:
        if log is not None:
            log.close()
    session.group.barrier()
    every = out.parts(work.kind) if out is not None and (topology.is_main or topology.shard) else {**done, **played}
    return PartsDone(every, done, mine)


def check_owned(found: dict, size: int, index: int, count: int, where: str) -> None:
    """A shard's logged parts are its own, and it holds all of them."""
    for start in found:
        if owner_of(start // PART_SIZE, 1, count) != index:
            raise UserError(f"{where} holds part {start} of another shard")
    missing = [s for s in owned_parts(size, index, count) if s not in found]
    if missing:
        raise UserError(f"{where} lacks items {missing[0]}-{min(missing[0] + PART_SIZE, size) - 1} "
                        f"({len(missing)} parts); rerun it with --resume")
