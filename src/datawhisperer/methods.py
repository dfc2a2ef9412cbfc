"""One registry of selection methods, one signature, driven by one runner (runner.py).

Every method, Data Whisperer and each baseline, is a `Method`: `run(session)` scores the pool and returns
`Scored`, `ShardDone` from a shard (its work waits for `datawhisperer merge`, which calls `merge`), or None
on a rank other than 0. The runner does what every method shares around it: the checks, the model, the
output directory, run.json, scores and subsets. Every method splits its work over ranks and shards and
continues it with --resume: Data Whisperer by episodes of its seeded plan (whisperer.py), a baseline by
fixed parts of the pool, each scored in one call and logged (`RunDirectory.part_log`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .episodes import owner_of
from .errors import UserError
from .executor import PART_SIZE, PartWork, owned_parts, run_parts
from .registry import Registry, import_object
from .reliability import split_half
from .runlogs import ScoredPart

if TYPE_CHECKING:
    from .distributed import Group, Topology
    from .embedding import Embeddings
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


class Method(Protocol):
    needs_model: bool
    plays_episodes: bool

    def run(self, session: Session) -> Scored | ShardDone | None: ...

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings: Embeddings | None = None
              ) -> Scored:
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
        inputs, topology = session.inputs, session.topology
        context = MethodContext(inputs.examples, inputs.instruction, inputs.config.seed, lambda: session.backend,
                                session.log, {"anchors": inputs.config.anchors})
        score = import_object(self.score)
        work = PartWork("parts", len(inputs.examples), lambda items: score(context, items), _scored_part,
                        desc=inputs.config.method)
        done = run_parts(session, work)
        # what the parts scored in earlier sittings cost then (the bench charges a selection for every sitting)
        if topology.shard:
            resumed = [done.resumed[s] for s in done.mine if s in done.resumed]
            return ShardDone({"method": inputs.config.method, "resumed_parts": len(resumed),
                              "resumed_part_seconds": _seconds(resumed)},
                             f"{sum(min(PART_SIZE, work.size - s) for s in done.mine)} examples")
        if not topology.is_main:
            return None
        result = self._result(inputs, done.parts)
        result.info["resumed_part_seconds"] = _seconds(done.resumed.values())
        return result  # the runner removes the part logs once scores.jsonl is written

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings=None) -> Scored:
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


def _seconds(parts) -> float:
    return round(sum(p.seconds or 0.0 for p in parts), 3)


def _assemble(parts: dict, n: int, index: int, count: int, where: str = "the run", half: int | None = None
              ) -> np.ndarray:
    """The scores (or one half's) of the parts a share owns, in order; a one-line error for the first part
    missing."""
    owned = owned_parts(n, index, count)
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
METHODS.register("rds", "datawhisperer.baselines.rds:RDS")
