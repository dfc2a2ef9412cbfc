"""RDS (representation-based data selection; RDS+ in Ivison et al., 2025): how close each example is to the
target task in the target model's own representation. The score is the mean cosine similarity of the
example's embedding (embedding.py) to the --val examples' embeddings, or without --val to the examples of the
other fold of the pool (the queries Data Whisperer would draw); embeddings are centred on the pool's mean
first, since mean-pooled hidden states share one large common direction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..episodes import EpisodePlan
from ..executor import Scored, ShardDone
from ..methods import MethodDefaults
from ..reliability import Wording
from ..strategies import embedded_targets
from ..vectors import unit

if TYPE_CHECKING:
    from ..inputs import RunInputs
    from ..vectors import Embeddings


def similarity_scores(pool: np.ndarray, targets: np.ndarray | None, seed: int) -> np.ndarray:
    """Mean cosine similarity to the targets (NaN where an example has no embedding); targets None: each
    example against the other fold of the pool's 2-fold split (seeded, as Data Whisperer splits it)."""
    centre = np.nanmean(pool, axis=0)
    units = unit(pool - centre)
    if targets is not None:
        target_mean = np.mean(unit(embedded_targets(targets) - centre), axis=0)
        return (units @ target_mean).astype(np.float64)
    scores = np.full(len(pool), np.nan)
    folds = EpisodePlan(len(pool), 1, 1, seed=seed, query_source="rest").folds
    for mine, other in (folds, folds[::-1]):
        scores[mine] = units[mine] @ np.nanmean(units[other], axis=0)
    return scores


@dataclass(frozen=True)
class RepresentationSimilarity(MethodDefaults):
    name: str = "rds"
    needs_model: bool = True
    plays_episodes: bool = False
    seeded: bool = True  # without --val the fold split is seeded (with it, every seed gives the same scores)
    needs_embeddings: bool = True  # all its work is the run's embedding step
    wording: Wording = Wording("rds")

    def work(self, inputs: RunInputs, backend) -> None:
        return None

    def result(self, inputs: RunInputs, executed, sitting: dict) -> Scored:
        return self._result(inputs, sitting["embeddings"])

    def shard_result(self, inputs: RunInputs, executed, sitting: dict) -> ShardDone:
        return ShardDone({"method": self.name}, "its share of the examples' embeddings")

    def merge(self, inputs: RunInputs, shards, embeddings: Embeddings | None = None) -> Scored:
        return self._result(inputs, embeddings)

    def _result(self, inputs: RunInputs, embeddings: Embeddings) -> Scored:
        scores = similarity_scores(embeddings.pool, embeddings.targets, inputs.config.seed)
        target = "the --val examples" if embeddings.targets is not None else "the other fold of the pool"
        return Scored(scores, np.zeros(len(scores), dtype=np.int64), {"method": self.name, "similar_to": target})


RDS = RepresentationSimilarity()
