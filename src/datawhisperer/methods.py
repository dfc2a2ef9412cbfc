"""One registry of selection methods, one signature, run by one executor (executor.py).

Every method, Data Whisperer and each baseline, is a `Method`: it says what its units of work are
(`work`: episodes of its plan, fixed parts of the pool, or none), and how finished units become scores
(`result`), a shard's record (`shard_result`) or a merged run (`merge`). The executor plays the units over
ranks, shards and sittings; the runner does what every method shares around it: the checks, the model, the
output directory, run.json, scores and subsets. What is particular to a method (its options and their
checks, its fingerprint keys, whether it is seeded, how it words its reliability, its names in `bench`) is
on its registry entry, never in a branch elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .registry import Registry
from .reliability import Wording

if TYPE_CHECKING:
    from .executor import Executed, Scored, ShardDone, Work
    from .inputs import RunInputs
    from .rundir import RunDirectory
    from .select_config import SelectConfig
    from .vectors import Embeddings


@runtime_checkable
class Method(Protocol):
    needs_model: bool
    plays_episodes: bool
    default_strategy: str  # what --strategy auto means for this method
    needs_embeddings: bool
    reference: bool
    seeded: bool  # draws at random: another seed gives another ranking (the bench selects once per seed)
    wording: Wording

    def work(self, inputs: RunInputs, backend: Callable[[], object]) -> Work | None:
        """The method's units of work for the executor (None: it has none of its own)."""

    def result(self, inputs: RunInputs, executed: Executed | None, sitting: dict) -> Scored:
        """The whole run's scores from its finished units; `sitting`: model, world_size, embeddings."""

    def shard_result(self, inputs: RunInputs, executed: Executed | None, sitting: dict) -> ShardDone: ...

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings: Embeddings | None
              ) -> Scored:
        """Combine finished shards (directory, run.json) of one run, refusing what is missing or misplaced."""

    def check(self, config: SelectConfig) -> None:
        """Refuse options this method cannot honour (a one-line UserError)."""

    def preflight(self, inputs: RunInputs, backend) -> None:
        """With the model loaded, before the output directory changes: refuse what could score nothing."""

    def fingerprint(self, config: SelectConfig, estimator) -> dict:
        """The run fingerprint's keys that only this method reads."""

    def bench_names(self) -> list[str]:
        """The names `bench --methods` knows this method by."""

    def parse_bench_name(self, name: str) -> dict | None:
        """A bench name's parts (base, weighting, rounds, estimator), or None when the name is not this method's."""


class MethodDefaults:
    """What a method has when it says nothing: no options of its own, one bench name (its registry name), and
    its ranking taken as it is (strategy top) when --strategy is auto."""

    name: str
    default_strategy: str = "top"
    needs_embeddings: bool = False  # scores by the examples' embeddings (rds): the run's embedding step makes them
    reference: bool = False  # the method every other is measured against (random)

    def records_embeddings(self, inputs: RunInputs) -> bool:
        """Its own work yields every example's embedding (so the embedding step need not)."""
        return False

    def check(self, config: SelectConfig) -> None:
        return None

    def preflight(self, inputs: RunInputs, backend) -> None:
        return None

    def fingerprint(self, config: SelectConfig, estimator) -> dict:
        return {}

    def bench_names(self) -> list[str]:
        return [self.name]

    def parse_bench_name(self, name: str) -> dict | None:
        return {"base": self.name, "weighting": None, "rounds": 1} if name == self.name else None


def wording_of(name: str) -> Wording:
    """The wording of the estimator or method a run.json's reliability entry names."""
    from .estimators import ESTIMATORS

    if name in ESTIMATORS:
        return ESTIMATORS.get(name).wording
    return METHODS.get(name).wording if name in METHODS else Wording(name)


def reference_method() -> str:
    """The method every other is measured against (the bench pairs each with it): the entry marked `reference`."""
    return next(name for name in METHODS.names() if METHODS.get(name).reference)


def methods_help() -> str:
    """`select --method`'s help, from the registry."""
    baselines = [name for name in METHODS.names() if not METHODS.get(name).plays_episodes]
    return f"selection method: datawhisperer, or a baseline ({', '.join(baselines)}) (default: datawhisperer)"


def bench_names() -> list[str]:
    """Every name `bench --methods` knows, from the registries."""
    return [n for method in METHODS.names() for n in METHODS.get(method).bench_names()]


METHODS: Registry[Method] = Registry("selection method", Method)
METHODS.register("datawhisperer", "datawhisperer.whisperer:DATA_WHISPERER")
METHODS.register("random", "datawhisperer.baselines.simple:RANDOM")
METHODS.register("length", "datawhisperer.baselines.simple:LENGTH")
METHODS.register("perplexity", "datawhisperer.baselines.likelihood:PERPLEXITY")
METHODS.register("ifd", "datawhisperer.baselines.likelihood:IFD")
METHODS.register("nuggets", "datawhisperer.baselines.nuggets:NUGGETS")
METHODS.register("grand", "datawhisperer.baselines.grand:GRAND")
METHODS.register("rds", "datawhisperer.baselines.rds:RDS")
