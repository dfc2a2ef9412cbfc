"""One registry of selection methods, one signature, driven by one runner (runner.py).

Every method, Data Whisperer and each baseline, is a `Method`: `run(session)` scores the pool and returns
`Scored`, or None on a process whose part of the work is merged elsewhere (a rank other than 0, a shard).
The runner does what every method shares around it: the checks, the model, the output directory, run.json,
scores and subsets. A method that `plays_episodes` has a seeded plan that ranks and shards split and that
--resume continues (see whisperer.py); the baselines score every example in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .registry import Registry, import_object

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


class Method(Protocol):
    needs_model: bool
    plays_episodes: bool

    def run(self, session: Session) -> Scored | None: ...


@dataclass
class MethodContext:
    """What a baseline's score function sees."""

    examples: list[Example]
    instruction: str
    seed: int
    load_backend: Callable[[], object]  # the session's model on first use; random and length never call it
    log: Callable[[str], None] = print
    options: dict = field(default_factory=dict)

    @property
    def backend(self):
        return self.load_backend()

    @property
    def builder(self):
        from .prompts import PromptBuilder

        return PromptBuilder(self.backend.tokenizer, self.instruction, "single")


@dataclass(frozen=True)
class Baseline:
    """A method that scores every example with one function `score(context) -> np.ndarray` (higher first)."""

    score: str  # "module:function", imported on first use
    needs_model: bool = True
    plays_episodes: bool = False

    def run(self, session: Session) -> Scored:
        inputs = session.inputs
        context = MethodContext(inputs.examples, inputs.instruction, inputs.config.seed, lambda: session.backend,
                                session.log, {"anchors": inputs.config.anchors, "quiet": not session.progress})
        scores = np.asarray(import_object(self.score)(context), dtype=np.float64)
        return Scored(scores, np.zeros(len(scores), dtype=np.int64), {"method": inputs.config.method})


METHODS: Registry[Method] = Registry("selection method")
METHODS.register("datawhisperer", "datawhisperer.whisperer:DATA_WHISPERER")
METHODS.register("random", Baseline("datawhisperer.baselines.simple:random_scores", needs_model=False))
METHODS.register("length", Baseline("datawhisperer.baselines.simple:length_scores", needs_model=False))
METHODS.register("perplexity", Baseline("datawhisperer.baselines.likelihood:perplexity_scores"))
METHODS.register("ifd", Baseline("datawhisperer.baselines.likelihood:ifd_scores"))
METHODS.register("nuggets", Baseline("datawhisperer.baselines.nuggets:nuggets_scores"))
METHODS.register("grand", Baseline("datawhisperer.baselines.grand:grand_scores"))
