"""Selection strategies: how a budget is filled from per-example scores (and, for `diverse`, embeddings).

`top`: the best-scored examples. `stratified` (after coverage-centric coreset selection, Zheng et al. 2023):
drop the lowest-scored fraction (broken and off-task records), cut the remaining score range into strata of
equal width and spread the budget over them, smallest stratum first, drawing at random within each.
`diverse` (quality with coverage): after the same drop, greedy maximisation of a facility-location coverage
term over embeddings (how well the picks cover the targets: the --val examples when given, else the kept
pool) plus the mean score percentile of the picks, traded by `score_weight`.

Every strategy returns the chosen pool indices, best-scored first; it is a pure function of the scores, the
embeddings, the options and the seed. When the answers are labels (classification), `pick` gives each label
its share of the budget and applies the strategy within each.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import UserError
from .ontask import on_task
from .registry import Registry
from .scoring import ranking
from .vectors import embedded_rows, unit

MAX_TARGETS = 1024  # coverage is measured on at most this many targets (a seeded sample): memory is candidates x targets


@dataclass(frozen=True)
class Candidates:
    """What a strategy picks from."""

    scores: np.ndarray  # float64, NaN for an example nothing scored
    embeddings: np.ndarray | None = None  # [n, dim] float32, NaN rows where an example has none
    targets: np.ndarray | None = None  # [m, dim]: what `diverse` covers (the --val examples); None: the pool
    seed: int = 0
    groups: np.ndarray | None = None  # a label per example: each label keeps its share of the pool (see pick)
    centre: np.ndarray | None = None  # what embeddings are centred on: the whole pool's mean (None: these rows')

    def part(self, members: np.ndarray) -> Candidates:
        """The candidates of one label, centred as the whole pool is."""
        if self.embeddings is None:
            return Candidates(self.scores[members], None, self.targets, self.seed)
        centre = self.centre if self.centre is not None else np.nanmean(self.embeddings, axis=0)
        return Candidates(self.scores[members], self.embeddings[members], self.targets, self.seed, centre=centre)


@dataclass(frozen=True)
class StrategyOptions:
    drop: float = 0.4  # stratified, diverse: the lowest-scored fraction left out first
    strata: int = 10  # stratified: strata over the kept score range
    score_weight: float = 0.0  # diverse: 0 = coverage alone, 1 = scores alone
    target_filter: bool = False  # pick from the records like the --val examples only (ontask.py)

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop < 1.0:
            raise UserError(f"drop must be in [0, 1), got {self.drop}")
        if self.strata < 1:
            raise UserError(f"strata must be at least 1, got {self.strata}")
        if not 0.0 <= self.score_weight <= 1.0:
            raise UserError(f"score-weight must be in [0, 1], got {self.score_weight}")


@runtime_checkable
class Strategy(Protocol):
    needs_embeddings: bool
    drops: bool  # leaves out the lowest --drop first (so the target filter must keep more than the budget)

    def choose(self, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
        """`count` distinct pool indices, best-scored first."""


def best_first(indices, scores: np.ndarray) -> list[int]:
    chosen = np.asarray(sorted(int(i) for i in indices), dtype=np.int64)
    return chosen[ranking(scores[chosen])].tolist()


def kept_after_drop(scores: np.ndarray, drop: float) -> np.ndarray:
    """Indices of the scored examples outside the lowest `drop` fraction; ties at the cut are kept (so a
    constant score drops nothing)."""
    scored = np.flatnonzero(~np.isnan(scores))
    if not len(scored):
        return scored
    threshold = np.sort(scores[scored])[int(np.floor(drop * len(scored)))]  # drop < 1: the index is in range
    return scored[scores[scored] >= threshold]


def _enough(kept: np.ndarray, count: int, n: int, name: str, drop: float) -> None:
    if count > len(kept):
        raise UserError(f"strategy {name} can pick from {len(kept)} of the {n} examples (the scored ones, less the "
                        f"lowest {drop:.0%}: --drop {drop}), fewer than the budget's {count}: lower the budget or "
                        "--drop")


@dataclass(frozen=True)
class Top:
    needs_embeddings: bool = False
    drops: bool = False

    def choose(self, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
        return ranking(candidates.scores)[:count].tolist()


@dataclass(frozen=True)
class Stratified:
    needs_embeddings: bool = False
    drops: bool = True

    def choose(self, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
        scores = candidates.scores
        kept = kept_after_drop(scores, options.drop)
        _enough(kept, count, len(scores), "stratified", options.drop)
        low, high = float(scores[kept].min()), float(scores[kept].max())
        edges = np.linspace(low, high, options.strata + 1)[1:-1]
        bins = np.searchsorted(edges, scores[kept], side="right") if high > low else np.zeros(len(kept), dtype=int)
        strata = [kept[bins == b] for b in range(options.strata) if np.any(bins == b)]
        quota = _allocate([len(s) for s in strata], count)
        rng = np.random.default_rng([candidates.seed, 0x57A7])
        chosen = [i for stratum, q in zip(strata, quota) for i in rng.choice(stratum, q, replace=False)]
        return best_first(chosen, scores)


def _allocate(sizes: list[int], count: int) -> list[int]:
    """CCS's budget split: the smallest stratum first, each taking an equal share of what is left (or all of
    itself); what rounding leaves goes one by one to the strata with room, largest first."""
    quota, remaining = [0] * len(sizes), count
    order = sorted(range(len(sizes)), key=lambda s: (sizes[s], s))
    for position, s in enumerate(order):
        quota[s] = min(sizes[s], remaining // (len(order) - position))
        remaining -= quota[s]
    for s in sorted(order, key=lambda s: (-sizes[s], s)):
        extra = min(remaining, sizes[s] - quota[s])
        quota[s] += extra
        remaining -= extra
    return quota


@dataclass(frozen=True)
class Diverse:
    needs_embeddings: bool = True
    drops: bool = True

    def choose(self, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
        scores, embeddings = candidates.scores, candidates.embeddings
        if embeddings is None:
            raise UserError("strategy diverse needs the examples' embeddings, and this run has none: run select with "
                            "--strategy diverse (--resume on a finished Data Whisperer run computes only them)")
        kept = kept_after_drop(scores, options.drop)
        kept = kept[~np.isnan(embeddings[kept]).any(axis=1)]
        _enough(kept, count, len(scores), "diverse", options.drop)
        # mean-pooled hidden states share a large common direction: centre them on the pool's mean
        centre = candidates.centre if candidates.centre is not None else np.nanmean(embeddings, axis=0)
        pool = unit(embeddings[kept] - centre).astype(np.float32)
        targets = pool if candidates.targets is None else \
            unit(embedded_targets(candidates.targets) - centre).astype(np.float32)
        if len(targets) > MAX_TARGETS:
            rng = np.random.default_rng([candidates.seed, 0xD1FE])
            targets = targets[np.sort(rng.choice(len(targets), MAX_TARGETS, replace=False))]
        similarity = (1.0 + pool @ targets.T) / 2.0  # in [0, 1]: facility location stays monotone
        order = np.argsort(np.argsort(scores[kept], kind="stable"), kind="stable")
        quality = (order + 1) / len(kept)  # score percentile among the candidates
        picks = _greedy(similarity, quality, count, options.score_weight)
        return best_first(kept[picks], scores)


def embedded_targets(targets: np.ndarray) -> np.ndarray:
    """The target examples that have an embedding (one too long for the model's context has none)."""
    rows = embedded_rows(targets)
    if not len(rows):
        raise UserError("none of the --val examples fits the model's context, so there is nothing to cover or "
                        "compare with: give shorter --val examples, or a smaller --answer-tokens")
    return rows


def _greedy(similarity: np.ndarray, quality: np.ndarray, count: int, weight: float) -> list[int]:
    """Lazy greedy on (1 - weight) * mean_t max_s sim(s, t) + weight * mean quality of the picks: exact for
    this submodular objective, ties to the lower index."""
    covered = np.zeros(similarity.shape[1], dtype=np.float32)

    def gain(c: int) -> float:
        coverage = float(np.maximum(similarity[c] - covered, 0.0).mean())
        return (1.0 - weight) * coverage + weight * float(quality[c]) / count

    heap = [(-gain(c), c) for c in range(len(quality))]
    heapq.heapify(heap)
    picks: list[int] = []
    while len(picks) < count:
        _, c = heapq.heappop(heap)
        fresh = gain(c)
        if heap and (-fresh, c) > heap[0]:  # stale bound: someone else may now gain more
            heapq.heappush(heap, (-fresh, c))
            continue
        picks.append(c)
        covered = np.maximum(covered, similarity[c])
    return picks


def records_needed(strategy: Strategy, count: int, drop: float) -> int:
    """Records the strategy needs to fill `count` (what the target filter must keep): more than `count` when it
    first drops the lowest `drop`."""
    return math.ceil(count / (1.0 - drop)) if strategy.drops else count


def pick(strategy: Strategy, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
    """The strategy's picks; with the target filter, from the on-task records only; with groups (labels, or
    answer-length fifths: balance_groups), each group gets its share of the budget (largest remainders) and the
    strategy picks within it, so that no subset drops or swamps a class."""
    if options.target_filter:
        if candidates.embeddings is None or candidates.targets is None:
            raise UserError("the target filter compares the pool's embeddings with the --val examples', and this "
                            "run has none: --target-filter off, or select again with --val")
        members = on_task(candidates.embeddings, candidates.targets, records_needed(strategy, count, options.drop))
        if members is not None:
            within = replace(candidates.part(members),
                             groups=None if candidates.groups is None else candidates.groups[members])
            return best_first(members[_by_group(strategy, within, count, options)], candidates.scores)
    return _by_group(strategy, candidates, count, options)


def _by_group(strategy: Strategy, candidates: Candidates, count: int, options: StrategyOptions) -> list[int]:
    if candidates.groups is None:
        return strategy.choose(candidates, count, options)
    groups, sizes = np.unique(candidates.groups, return_counts=True)
    quota = _proportional(sizes, count, candidates.seed)
    chosen: list[int] = []
    for group, share in zip(groups, quota):
        if share:
            members = np.flatnonzero(candidates.groups == group)
            chosen += members[strategy.choose(candidates.part(members), int(share), options)].tolist()
    return best_first(chosen, candidates.scores)


def _proportional(sizes: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Largest remainders; equal remainders in a seeded order, so that the spare places of a budget that does
    not divide evenly fall on no fixed group (the first of the length fifths holds the shortest answers)."""
    exact = sizes * count / sizes.sum()
    quota = np.floor(exact).astype(int)
    ties = np.random.default_rng([seed, 0xBA1]).permutation(len(sizes))
    for g in np.lexsort((ties, -np.round(exact - quota, 9)))[: count - quota.sum()]:
        quota[g] += 1
    return quota


def needs_embeddings(config, method) -> bool:
    """Whether a run must have its examples' embeddings: its strategy covers them, its method scores by them, or
    the target filter compares them with the --val examples' (config: resolved, as check_inputs makes it)."""
    return STRATEGIES.get(config.strategy).needs_embeddings or method.needs_embeddings or \
        config.target_filter == "on"


STRATEGIES: Registry[Strategy] = Registry("strategy", Strategy)
STRATEGIES.register("top", Top())
STRATEGIES.register("stratified", Stratified())
STRATEGIES.register("diverse", Diverse())
