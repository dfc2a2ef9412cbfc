"""One registry of selection methods, one signature, driven by one runner (runner.py).

Every method, Data Whisperer and each baseline, is a `Method`: `run(session)` scores the pool and returns
`Scored`, `ShardDone` from a shard (its work waits for `datawhisperer merge`, which calls `merge`), or None
on a rank other than 0. The runner does what every method shares around it: the checks, the model, the
output directory, run.json, scores and subsets. Every method splits its work over ranks and shards and
continues it with --resume: Data Whisperer by episodes of its seeded plan (whisperer.py), a baseline by
fixed parts of the pool, each scored in one call and logged (`RunDirectory.part_log`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .episodes import owner_of
from .errors import UserError
from .registry import Registry, import_object
from .reliability import split_half
from .rundir import ScoredPart

if TYPE_CHECKING:
    from .distributed import Group, Topology
    from .inputs import RunInputs
    from .rundir import RunDirectory
    from .tasks import Example


@dataclass
class Session:
    """What the runner hands a method: checked inputs, the model on first use, where outputs go."""

    inputs: RunInputs
    out: RunDirectory | None
    topology: Topology
    group: Group
    load_backend: Callable[[], object]  # loads the model on first use, then hands back the same one
    log: Callable[[str], None] = print
    progress: bool = True

    @property
    def backend(self):
        return self.load_backend()


@dataclass
class Scored:
    scores: np.ndarray  # float64, higher is selected first; NaN for an example the method could not score
    appearances: np.ndarray  # how often each example was measured (0 where a method does not count)
    info: dict = field(default_factory=dict)  # what run.json records for this method beyond the common fields
    outcomes: list | None = None  # played episodes, kept as episodes.jsonl


@dataclass
class ShardDone:
    """A shard's share of the work is logged in its directory; `merge` combines the shards."""

    info: dict  # what the shard's run.json records beyond the common fields
    work: str  # what the shard did, for its summary line: "12 episodes (1 failed)"


class Method(Protocol):
    needs_model: bool
    plays_episodes: bool

    def run(self, session: Session) -> Scored | ShardDone | None: ...

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]]) -> Scored:
        """Combine finished shards (directory, run.json) of one run, refusing what is missing or misplaced."""


@dataclass
class MethodContext:
    """What a baseline's score function sees."""

    examples: list[Example]
    instruction: str
    seed: int
    load_backend: Callable[[], object]  # the session's model on first use; random and length never call it
    log: Callable[[str], None] = print
    options: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # what a score function computes once per process (anchors ...)

    @property
    def backend(self):
        return self.load_backend()

    @property
    def builder(self):
        from .prompts import PromptBuilder

        return PromptBuilder(self.backend.tokenizer, self.instruction, "single")


# Examples per logged part. Parts are fixed by the pool and each is scored in one call, so a resumed, ranked or
# sharded run scores exactly what one process does (the HF backend batches and sorts within a call).
PART_SIZE = 16


@dataclass
class Measured:
    """What a score function returns when its scores average several measurements: the scores, and the same
    scores from two disjoint halves of the measurements, from which the run reports its split-half reliability."""

    scores: np.ndarray
    halves: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """A method that scores examples with one function `score(context, indices) -> np.ndarray` (higher first;
    an example's score depends on nothing but the example, the seed and the model). The pool is scored in
    fixed parts of PART_SIZE examples, part k by rank or shard k mod W, each logged as it is done, so a
    resumed, distributed or sharded run writes exactly what one uninterrupted process does."""

    score: str  # "module:function", imported on first use
    needs_model: bool = True
    plays_episodes: bool = False
    split: str | None = None  # what the halves of a Measured score hold, for run.json ("anchors")
    reliability: dict | None = None  # a fixed entry where there is nothing to split (random: 0 by design)

    def run(self, session: Session) -> Scored | ShardDone | None:
        from tqdm.auto import tqdm

        inputs, topology, out = session.inputs, session.topology, session.out
        n = len(inputs.examples)
        done = out.parts() if out is not None else {}
        session.group.barrier()  # everyone has read the old logs before anyone appends
        context = MethodContext(inputs.examples, inputs.instruction, inputs.config.seed, lambda: session.backend,
                                session.log, {"anchors": inputs.config.anchors})
        score = import_object(self.score)
        mine = _owned_parts(n, topology.rank, topology.world_size)
        log = None
        if out is not None:
            log = out.part_log(topology.rank, topology.world_size) if topology.launched else out.part_log()
        scored: dict[int, ScoredPart] = {}
        share = sum(min(PART_SIZE, n - s) for s in mine)  # examples this process owns
        try:
            with tqdm(total=share, desc=inputs.config.method, unit="example", dynamic_ncols=True,
                      disable=not session.progress) as bar:
                for start in mine:
                    indices = list(range(start, min(start + PART_SIZE, n)))
                    if start not in done:
                        began = time.perf_counter()
                        result = score(context, indices)
                        scored[start] = _scored_part(start, result, len(indices), time.perf_counter() - began)
                        if log is not None:
                            log.append([scored[start]])
                    bar.update(len(indices))
        finally:
            if log is not None:
                log.close()
        session.group.barrier()
        # what the parts scored in earlier sittings cost then (the bench charges a selection for every sitting)
        resumed = {"resumed_part_seconds": round(sum(done[s].seconds or 0.0 for s in mine if s in done), 3)}
        if topology.shard:
            return ShardDone({"method": inputs.config.method, "resumed_parts": sum(s in done for s in mine),
                              **resumed}, f"{share} examples")
        if not topology.is_main:
            return None
        result = self._result(inputs, out.parts() if out is not None else scored)
        result.info["resumed_part_seconds"] = round(sum(p.seconds or 0.0 for p in done.values()), 3)
        return result  # the runner removes the part logs once scores.jsonl is written

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]]) -> Scored:
        n, parts = len(inputs.examples), {}
        for shard, info in shards:
            index, count = info["shard"]["index"], info["shard"]["count"]
            found = shard.parts()
            for start in found:
                if owner_of(start // PART_SIZE, 1, count) != index:
                    raise UserError(f"{shard.path} (shard {index}/{count}) holds part {start} of another shard")
            _assemble(found, n, index, count, where=f"{shard.path} (shard {index}/{count})")
            parts.update(found)
        return self._result(inputs, parts)

    def _result(self, inputs: RunInputs, parts: dict[int, ScoredPart]) -> Scored:
        n = len(inputs.examples)
        info: dict = {"method": inputs.config.method}
        if self.split is not None:
            halves = (_assemble(parts, n, 0, 1, half=h) for h in (0, 1))
            info["reliability"] = {"estimator": inputs.config.method, **split_half(*halves, self.split)}
        elif self.reliability is not None:
            info["reliability"] = {"estimator": inputs.config.method, **self.reliability}
        return Scored(_assemble(parts, n, 0, 1), np.zeros(n, dtype=np.int64), info)


def _owned_parts(n: int, index: int, count: int) -> list[int]:
    """The first examples of the parts that rank or shard `index` of `count` scores."""
    return [start for start in range(0, n, PART_SIZE) if owner_of(start // PART_SIZE, 1, count) == index]


def _assemble(parts: dict, n: int, index: int, count: int, where: str = "the run", half: int | None = None
              ) -> np.ndarray:
    """The scores (or one half's) of the parts a share owns, in order; a one-line error for the first part
    missing."""
    owned = _owned_parts(n, index, count)
    missing = [s for s in owned if s not in parts or len(parts[s].scores) != min(PART_SIZE, n - s)]
    if missing:
        raise UserError(f"{where} lacks the scores of examples {missing[0]}-{min(missing[0] + PART_SIZE, n) - 1} "
                        f"({len(missing)} of {len(owned)} parts); rerun with --resume")
    values = [v for s in owned for v in (parts[s].scores if half is None else parts[s].halves[half])]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _floats(values) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _scored_part(start: int, scores: np.ndarray | Measured, expected: int, seconds: float) -> ScoredPart:
    measured = scores if isinstance(scores, Measured) else None
    values = _floats(measured.scores if measured else scores)
    if len(values) != expected:
        raise RuntimeError(f"a score function returned {len(values)} scores for {expected} examples")
    halves = (_floats(measured.halves[0]), _floats(measured.halves[1])) if measured else None
    return ScoredPart(start, values, halves, round(seconds, 3))


METHODS: Registry[Method] = Registry("selection method")
METHODS.register("datawhisperer", "datawhisperer.whisperer:DATA_WHISPERER")
METHODS.register("random", Baseline("datawhisperer.baselines.simple:random_scores", needs_model=False, reliability={
    "split": "a random draw, which another seed shares nothing of", "split_half_spearman": None,
    "projected": 0.0, "examples": None}))
METHODS.register("length", Baseline("datawhisperer.baselines.simple:length_scores", needs_model=False))
METHODS.register("perplexity", Baseline("datawhisperer.baselines.likelihood:perplexity_scores"))
METHODS.register("ifd", Baseline("datawhisperer.baselines.likelihood:ifd_scores"))
METHODS.register("nuggets", Baseline("datawhisperer.baselines.nuggets:nuggets_scores", split="anchors"))
METHODS.register("grand", Baseline("datawhisperer.baselines.grand:grand_scores"))
