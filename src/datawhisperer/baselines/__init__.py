"""Selection methods to compare against, each a registry entry with one signature:
`method(context) -> scores` (higher is selected first). `datawhisperer select --method NAME` runs any
of them and writes the same outputs as Data Whisperer itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..registry import Registry
from ..tasks import Example


@dataclass
class MethodContext:
    examples: list[Example]
    instruction: str
    seed: int
    load_backend: Callable[[], object]  # loads the model on first use; random and length never call it
    log: Callable[[str], None] = print
    options: dict = field(default_factory=dict)
    _backend: object = None

    @property
    def backend(self):
        if self._backend is None:
            self._backend = self.load_backend()
        return self._backend

    @property
    def builder(self):
        from ..prompts import PromptBuilder

        return PromptBuilder(self.backend.tokenizer, self.instruction, "single")


Method = Callable[[MethodContext], np.ndarray]
METHODS: Registry[Method] = Registry("selection method")
METHODS.register("datawhisperer", "datawhisperer.runner:select")  # the method itself (see runner.py)
METHODS.register("random", "datawhisperer.baselines.simple:random_scores")
METHODS.register("length", "datawhisperer.baselines.simple:length_scores")
METHODS.register("perplexity", "datawhisperer.baselines.likelihood:perplexity_scores")
METHODS.register("ifd", "datawhisperer.baselines.likelihood:ifd_scores")
METHODS.register("nuggets", "datawhisperer.baselines.nuggets:nuggets_scores")
METHODS.register("grand", "datawhisperer.baselines.grand:grand_scores")

NEEDS_NO_MODEL = {"random", "length"}
