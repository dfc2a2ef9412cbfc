"""Seeded episode plans: which examples are demonstrations and which are queries, episode by episode.

The plan is a pure function of (pool size, validation size, n_demos, n_queries, rounds, seed):
it never depends on how the work is later spread over processes. Each planned episode is then
tried until its demonstrations are scored: a failed try is re-drawn with fresh queries, and the
demonstrations it still left unscored (dropped to fit the context, or every try failed) get
make-up tries. Every try is a pure function of (seed, episode id, attempt) and the outcomes of the
episode's own earlier tries, so whoever plays an episode plays the same tries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from .errors import UserError

QUERY_SOURCES = ("auto", "val", "fold", "rest")


def owner_of(episode_id: int, group_size: int, world_size: int) -> int:
    """Which rank or shard does a unit of work: a planned episode (and all its later tries), or a baseline's
    part of the pool. Units are batched in fixed groups of `group_size` consecutive ids, and group k goes to
    rank k mod world_size."""
    return (episode_id // group_size) % world_size


@dataclass(frozen=True)
class Episode:
    id: int
    round: int
    demos: tuple[int, ...]  # pool indices
    queries: tuple[int, ...]  # pool indices, or validation indices when the plan uses a validation set
    attempt: int = 0  # 0 for the planned episode, k for its k-th later try (a re-draw or a make-up)
    targets: tuple[int, ...] = ()  # a make-up's demonstrations to score; the others only fill the prompt


class TryOutcome(Protocol):
    """What deciding an episode's next try reads from the outcome of an earlier one."""

    failed: bool
    demos: list[int]  # the demonstrations shown
    unfit: list[int]  # demonstrations that alone, beside the queries, exceed the context


@dataclass(frozen=True)
class EpisodePlan:
    n_pool: int
    n_demos: int
    n_queries: int
    rounds: int = 1
    seed: int = 0
    n_val: int = 0  # > 0: queries come from a validation set of this size
    query_source: str = "auto"
    fixed_panel: bool = False  # every episode asks the same queries: one panel per fold (or of --val), drawn once

    def __post_init__(self) -> None:
        if self.n_demos < 1 or self.n_queries < 1:
            raise UserError("n_demos and n_queries must be at least 1")
        if self.rounds < 1:
            raise UserError("rounds must be at least 1")
        if self.n_pool < 1:
            raise UserError("the pool is empty")
        if self.query_source not in QUERY_SOURCES:
            raise UserError(f"query source must be one of {QUERY_SOURCES}")
        object.__setattr__(self, "query_source", self._resolve_source())
        if self.query_source == "val":
            if self.n_val < self.n_queries:
                raise UserError(f"the validation set has {self.n_val} examples, fewer than n_queries={self.n_queries}")
            if self.n_pool < self.n_demos:
                raise UserError(f"the pool has {self.n_pool} examples, fewer than n_demos={self.n_demos}")
        elif self.n_pool < self.n_demos + self.n_queries:
            raise UserError(f"the pool has {self.n_pool} examples, fewer than n_demos + n_queries = "
                            f"{self.n_demos + self.n_queries}")
        if self.query_source == "fold" and self.n_pool // 2 < max(self.n_demos, self.n_queries):
            raise UserError(f"a 2-fold split of {self.n_pool} examples is too small for n_demos={self.n_demos}, "
                            f"n_queries={self.n_queries}; use query source 'rest'")
        if self.fixed_panel and self.query_source == "rest":
            raise UserError(f"a fixed query panel of {self.n_queries} needs a 2-fold split of the pool (at least "
                            f"{2 * self.n_queries} examples) or --val FILE")
        if self.fixed_panel and self.rounds > self.fresh_panels:
            source = "validation set" if self.query_source == "val" else "fold"
            raise UserError(f"each round asks a new panel of {self.n_queries} queries, and the {source} it is drawn "
                            f"from has {self._panel_source_size} examples: at most {self.fresh_panels} rounds (use "
                            "fewer --rounds or a smaller --panel)")

    def _resolve_source(self) -> str:
        if self.query_source != "auto":
            return self.query_source
        if self.n_val:
            return "val"
        return "fold" if self.n_pool // 2 >= max(self.n_demos, self.n_queries) else "rest"

    @cached_property
    def folds(self) -> tuple[np.ndarray, np.ndarray]:
        """The 2-fold split of the pool (sorted index arrays)."""
        order = np.random.default_rng([self.seed, 0xF01D]).permutation(self.n_pool)
        half = self.n_pool // 2
        return np.sort(order[:half]), np.sort(order[half:])

    @cached_property
    def _fold_of(self) -> np.ndarray:
        fold_of = np.zeros(self.n_pool, dtype=np.int8)
        fold_of[self.folds[1]] = 1
        return fold_of

    def episodes(self) -> list[Episode]:
        """Every planned episode, in id order. Each pool example is a demonstration at least once per round."""
        groups = list(self.folds) if self.query_source == "fold" else [np.arange(self.n_pool)]
        plan: list[Episode] = []
        for rnd in range(self.rounds):
            rng = np.random.default_rng([self.seed, rnd])
            for group in groups:
                order = rng.permutation(group)
                for start in range(0, len(order), self.n_demos):
                    demos = order[start:start + self.n_demos]
                    if len(demos) < self.n_demos:  # top up the last chunk with other members of the group
                        others = np.setdiff1d(group, demos)
                        demos = np.concatenate([demos, rng.choice(others, self.n_demos - len(demos), replace=False)])
                    demos = tuple(int(i) for i in demos)
                    plan.append(Episode(len(plan), rnd, demos, self._draw_queries(demos, rng, rnd)))
        return plan

    def retry(self, episode: Episode, attempt: int) -> Episode:
        """The same demonstrations with fresh queries; a pure function of (seed, episode id, attempt)."""
        rng = np.random.default_rng([self.seed, 0x2E7, episode.id, attempt])
        return Episode(episode.id, episode.round, episode.demos,
                       self._draw_queries(episode.demos, rng, episode.round), attempt)

    def makeup(self, episode: Episode, targets: tuple[int, ...], attempt: int) -> Episode:
        """A make-up try: the targets, other members of their group to make n_demos (the player drops those
        first when the prompt is too long), in random order, and fresh queries. A full set of demonstrations
        keeps the weights, which sum to 1 per episode, comparable with the planned episodes'."""
        rng = np.random.default_rng([self.seed, 0x3A4E, episode.id, attempt])
        chosen = np.asarray(targets, dtype=np.int64)
        group = self.folds[int(self._fold_of[targets[0]])] if self.query_source == "fold" else np.arange(self.n_pool)
        fillers = rng.choice(np.setdiff1d(group, chosen), self.n_demos - len(targets), replace=False)
        demos = tuple(int(i) for i in rng.permutation(np.concatenate([chosen, fillers])))
        return Episode(episode.id, episode.round, demos, self._draw_queries(demos, rng, episode.round), attempt,
                       tuple(targets))

    def next_try(self, episode: Episode, history: Sequence[TryOutcome], max_retries: int) -> Episode | None:
        """The try after `history` (the outcomes of the episode's tries so far, by attempt), or None when done.

        The planned demonstrations are tried until a try succeeds, re-drawing the queries after each failure,
        at most 1 + max_retries times. What that leaves unscored (demonstrations dropped to fit the context,
        or all of them when every try failed) are the targets of make-up tries, a few at a time so that a
        demonstration whose tries all failed meets new company. A success scores at least one target (the
        player drops fillers first); a target is given up after 1 + max_retries failed make-ups, or when it
        does not fit the context alone beside the queries (the outcome lists it as unfit)."""
        per_makeup = max(1, self.n_demos // 2)
        targets: list[int] | None = None  # None while the planned demonstrations are tried
        failures, charges, unfit = 0, Counter(), set()

        def pending() -> list[int]:
            return [d for d in targets if d not in unfit and charges[d] <= max_retries][:per_makeup]

        for outcome in history:  # replayed in order: what each make-up tried depends on what came before it
            if targets is None:
                if not outcome.failed:
                    targets = [d for d in episode.demos if d not in outcome.demos]
                elif (failures := failures + 1) > max_retries:
                    targets = list(episode.demos)
            elif outcome.failed:
                charges.update(pending())
            else:
                targets = [d for d in targets if d not in outcome.demos]
            unfit.update(outcome.unfit)
        attempt = len(history)
        if targets is None:
            if attempt and set(episode.demos) <= unfit:
                return None
            return episode if attempt == 0 else self.retry(episode, attempt)
        chosen = pending()
        return self.makeup(episode, tuple(chosen), attempt) if chosen else None

    @property
    def _panel_source_size(self) -> int:
        """Examples in the smaller source of panel queries: the validation set, or the smaller fold."""
        return self.n_val if self.query_source == "val" else self.n_pool // 2

    @property
    def fresh_panels(self) -> int:
        """How many panels of n_queries queries, none asked twice, the smaller query source holds."""
        return self._panel_source_size // self.n_queries

    @cached_property
    def panels(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """The fixed query panels, panels[round][k]: for fold k, drawn from the other fold; with --val, one
        drawn from it. Each round asks queries no earlier round asked (the plan has no more rounds than that
        allows), so a query is one column of the credit and lies in one half of the split."""
        sources = [np.arange(self.n_val)] if self.query_source == "val" else [self.folds[1], self.folds[0]]
        rounds = []
        for rnd in range(self.rounds):
            panels = []
            for k, source in enumerate(sources):
                asked = [q for earlier in rounds for q in earlier[k]]
                fresh = np.setdiff1d(source, np.asarray(asked, dtype=np.int64))
                rng = np.random.default_rng([self.seed, 0xFA7E1, k] + ([rnd] if rnd else []))
                panels.append(tuple(int(i) for i in np.sort(rng.choice(fresh, self.n_queries, replace=False))))
            rounds.append(tuple(panels))
        return tuple(rounds)

    def _draw_queries(self, demos: tuple[int, ...], rng: np.random.Generator, rnd: int) -> tuple[int, ...]:
        if self.fixed_panel:
            return self.panels[rnd][0 if self.query_source == "val" else int(self._fold_of[demos[0]])]
        if self.query_source == "val":
            candidates = np.arange(self.n_val)
        elif self.query_source == "fold":
            candidates = self.folds[1 - int(self._fold_of[demos[0]])]
        else:
            candidates = np.setdiff1d(np.arange(self.n_pool), np.asarray(demos))
        return tuple(int(i) for i in rng.choice(candidates, self.n_queries, replace=False))
