"""What every baseline is: one score function over fixed parts of the pool, as a registry entry of methods.py.

A baseline is `Baseline(name, "module:function")`: the function `score(context, indices)` returns one score per
example (higher first), which depends on nothing but the example, the seed and the model. The executor plays
the pool in fixed parts (executor.parts_work), so a resumed, distributed or sharded run writes exactly what one
uninterrupted process does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError
from ..executor import PART_SIZE, Executed, Scored, ShardDone, Work, merge_shards, owned_parts, parts_work
from ..methods import MethodDefaults
from ..registry import import_object
from ..reliability import Wording, split_half
from ..runlogs import ScoredPart

if TYPE_CHECKING:
    from ..inputs import RunInputs
    from ..rundir import RunDirectory
    from ..tasks import Example


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
        from ..prompts import PromptBuilder

        return PromptBuilder(self.backend.tokenizer, self.instruction, "single")


@dataclass
class Measured:
    """What a score function returns when its scores average several measurements: the scores, and the same
    scores from two disjoint halves of the measurements, from which the run reports its split-half reliability."""

    scores: np.ndarray
    halves: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Baseline(MethodDefaults):
    name: str
    score: str  # "module:function", imported on first use
    needs_model: bool = True
    seeded: bool = False
    options: tuple[str, ...] = ()  # the SelectConfig fields the score function reads (in the fingerprint)
    split: str | None = None  # what the halves of a Measured score hold, for run.json ("anchors")
    reliability: dict | None = None  # a fixed entry where there is nothing to split (random: 0 by design)
    advice: str = Wording("").advice  # what its low-reliability warning recommends
    reference: bool = False  # the method every other is measured against (random)
    needs_embeddings: bool = False
    plays_episodes: bool = False

    @property
    def wording(self) -> Wording:
        return Wording(self.name, self.advice)

    def fingerprint(self, config, estimator) -> dict:
        return {name: getattr(config, name) for name in self.options}

    def work(self, inputs: RunInputs, backend) -> Work:
        context = MethodContext(inputs.examples, inputs.instruction, inputs.config.seed, backend, print,
                                {name: getattr(inputs.config, name) for name in self.options})
        score = import_object(self.score)
        return parts_work("parts", len(inputs.examples), lambda items: score(context, items), _scored_part,
                          desc=inputs.config.method)

    def result(self, inputs: RunInputs, executed: Executed, sitting: dict) -> Scored:
        result = self._result(inputs, executed.records)
        # what the parts scored in earlier sittings cost then (the bench charges a selection for every sitting)
        result.info["resumed_part_seconds"] = _seconds(executed.resumed.values())
        return result  # the runner removes the part logs once scores.jsonl is written

    def shard_result(self, inputs: RunInputs, executed: Executed, sitting: dict) -> ShardDone:
        resumed = [p for p in executed.mine if p.start in executed.resumed]
        return ShardDone({"method": inputs.config.method, "resumed_parts": len(resumed),
                          "resumed_part_seconds": _seconds(resumed)}, f"{sum(p.count for p in executed.mine)} examples")

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings=None) -> Scored:
        return self._result(inputs, merge_shards(self.work(inputs, backend=None), shards))

    def _result(self, inputs: RunInputs, parts: dict[int, ScoredPart]) -> Scored:
        n = len(inputs.examples)
        info: dict = {"method": inputs.config.method}
        if self.split is not None:
            halves = (_assemble(parts, n, half=h) for h in (0, 1))
            info["reliability"] = {"estimator": inputs.config.method, **split_half(*halves, self.split)}
        elif self.reliability is not None:
            info["reliability"] = {"estimator": inputs.config.method, **self.reliability}
        return Scored(_assemble(parts, n), np.zeros(n, dtype=np.int64), info)


def _seconds(parts) -> float:
    return round(sum(p.seconds or 0.0 for p in parts), 3)


def _assemble(parts: dict, n: int, half: int | None = None) -> np.ndarray:
    """The scores (or one half's) of every part, in order; a one-line error for the first part missing."""
    starts = owned_parts(n, 0, 1)
    missing = [s for s in starts if s not in parts or parts[s].count != min(PART_SIZE, n - s)]
    if missing:
        raise UserError(f"the run lacks the scores of examples {missing[0]}-{min(missing[0] + PART_SIZE, n) - 1} "
                        f"({len(missing)} of {len(starts)} parts); rerun with --resume")
    values = [v for s in starts for v in (parts[s].scores if half is None else parts[s].halves[half])]
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
