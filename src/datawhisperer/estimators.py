"""Estimators: how Data Whisperer plans its episodes and turns their outcomes into one score per example,
and how it measures, within one run, how reliable those scores are.

`paper`: the paper's estimator, as published. Each episode shows --n-demos demonstrations and asks
--n-queries queries drawn afresh; a demonstration earns its attention weight times each query's score.

`calibrated`: built to give the same ranking with another seed. Each example is shown alone (one
demonstration per prompt, so no companion or slot is credited for it) before the same fixed panel of
--panel queries (one panel per fold, drawn once, so query difficulty is shared by every example it scores;
each further round shows every example again before a new panel).
The outcome is the log-probability of every gold answer token of each panel query, in one teacher-forced
pass (no decoding); each (query, token) column is standardised over the examples that answered it, so an
example's score is how much it moves the answers above or below what the other examples do, token by
token, with every token weighing alike; the score averages those over the tokens and the panel.

Split-half reliability: the estimator scores the run twice from two disjoint halves of its measurements,
chosen to differ in what a new seed changes (the queries, and for the paper's estimator with several rounds
the companions and slots too); the Spearman correlation of the halves, projected to the whole run with the
Spearman-Brown formula, predicts how a new seed's ranking would agree with this one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from .episodes import EpisodePlan
from .errors import UserError
from .registry import Registry
from .reliability import Wording, split_half
from .scoring import Aggregate, EpisodeOutcome, aggregate

UNMEASURABLE = "queries within episodes (they share companions and slots, so no projection: it would over-promise)"


@runtime_checkable
class Estimator(Protocol):
    name: str
    needs_token_logprobs: bool  # the player records every gold answer token's log-probability
    min_auto_rounds: int  # --rounds auto never stops before this many rounds
    wording: Wording

    def check(self, settings) -> None:
        """Refuse options this estimator cannot honour (a one-line UserError)."""

    def overrides(self, settings) -> dict:
        """Settings the estimator fixes whatever the user passed (the calibrated one shows one demonstration)."""

    def fingerprint(self, settings) -> dict:
        """The run fingerprint's keys that only this estimator reads."""

    def records_embeddings(self, settings) -> bool:
        """Its episodes show every example alone, so they record each example's embedding."""

    def plan(self, settings, n_pool: int, n_val: int) -> EpisodePlan: ...

    def credit(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> Aggregate: ...

    def reliability(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> dict: ...


@dataclass(frozen=True)
class PaperEstimator:
    name: str = "paper"
    needs_token_logprobs: bool = False
    min_auto_rounds: int = 2  # one round's split shares companions and slots: it over-promises
    wording: Wording = Wording("paper estimator", advice="--estimator calibrated, or more --rounds",
                               unknown="how far this ranking would survive another seed is unknown (on BioInstruct "
                               "two seeds' one-round rankings agreed at 0.11); use --rounds 2 or more, --rounds "
                               "auto, or --estimator calibrated")

    def check(self, settings) -> None:
        return None

    def overrides(self, settings) -> dict:
        return {}

    def fingerprint(self, settings) -> dict:
        return {}

    def records_embeddings(self, settings) -> bool:
        return False

    def plan(self, settings, n_pool: int, n_val: int) -> EpisodePlan:
        return EpisodePlan(n_pool, settings.n_demos, settings.n_queries, settings.planned_rounds, settings.seed,
                           n_val=n_val, query_source=settings.query_source)

    def credit(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> Aggregate:
        return aggregate(outcomes, n_pool, settings.weighting)

    def reliability(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> dict:
        """Halves by round parity when there are several rounds (other queries, companions and slots). With one
        round only the queries of each episode can be split; those halves share companions and slots and do not
        predict a new seed (0.82 where two seeds agreed at 0.11 on BioInstruct), so no projection is made."""
        finished = [o for o in outcomes if not o.failed]
        by_rounds = len({o.round for o in finished}) > 1
        if by_rounds:
            halves = ([o for o in finished if o.round % 2 == 0], [o for o in finished if o.round % 2 == 1])
        else:
            halves = (_query_half(finished, 0), _query_half(finished, 1))
        a, b = (aggregate(h, n_pool, settings.weighting).scores for h in halves)
        entry = split_half(a, b, "rounds" if by_rounds else UNMEASURABLE)
        return entry if by_rounds else {**entry, "projected": None}


def _query_half(outcomes: list[EpisodeOutcome], parity: int) -> list[EpisodeOutcome]:
    halves = []
    for outcome in outcomes:
        keep = [k for k in range(len(outcome.queries)) if k % 2 == parity]
        if keep:
            halves.append(replace(outcome, queries=[outcome.queries[k] for k in keep],
                                  query_scores=[outcome.query_scores[k] for k in keep]))
    return halves


@dataclass(frozen=True)
class CalibratedEstimator:
    name: str = "calibrated"
    needs_token_logprobs: bool = True
    min_auto_rounds: int = 1  # its panel split predicts a new seed from one round
    wording: Wording = Wording("calibrated estimator", advice="a larger --panel or --rounds auto")

    def check(self, settings) -> None:
        if settings.panel < 2:
            raise UserError(f"panel must be at least 2, got {settings.panel}")

    def fingerprint(self, settings) -> dict:
        return {"estimator": self.name, "panel": settings.panel, "coherence_weight": settings.coherence_weight}

    def records_embeddings(self, settings) -> bool:
        """The coherence pass shows every example alone: its hidden state there is the example's embedding."""
        return bool(settings.coherence_weight)

    def overrides(self, settings) -> dict:
        """One demonstration before the fixed panel, teacher-forced, over the first answer tokens."""
        return {"n_demos": 1, "n_queries": settings.panel, "scoring": "likelihood",
                "query_mode": "single", "max_new_tokens": settings.answer_tokens}

    def plan(self, settings, n_pool: int, n_val: int) -> EpisodePlan:
        """Each round shows every example alone again, before a panel of new queries; --rounds auto plays at most
        as many rounds as the query source has new panels for."""
        plan = EpisodePlan(n_pool, 1, settings.panel, 1, settings.seed, n_val=n_val,
                           query_source=settings.query_source, fixed_panel=True)
        rounds = min(settings.max_rounds, plan.fresh_panels) if settings.rounds == "auto" else settings.rounds
        return replace(plan, rounds=rounds)

    def credit(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> Aggregate:
        gains = standardised_gains(outcomes, n_pool)
        return Aggregate(_with_coherence(gains.scores, outcomes, n_pool, settings.coherence_weight),
                         gains.appearances, gains.scorings)

    def reliability(self, outcomes: list[EpisodeOutcome], n_pool: int, settings) -> dict:
        """Halves of the panel (even and odd positions): what a new seed changes is the panel (the coherence
        term, which no seed changes, is in both halves as it is in every seed's scores)."""
        a, b = (_with_coherence(standardised_gains(outcomes, n_pool, parity=p).scores, outcomes, n_pool,
                                settings.coherence_weight) for p in (0, 1))
        return split_half(a, b, "panel queries")


def _standardised(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    if finite.sum() < 2 or np.std(values[finite]) == 0:
        return np.where(finite, 0.0, np.nan)
    return (values - np.mean(values[finite])) / np.std(values[finite])


def _with_coherence(gains: np.ndarray, outcomes: list[EpisodeOutcome], n_pool: int, weight: float) -> np.ndarray:
    """z(in-context gain) + weight * z(coherence): a demonstration whose answer does not follow from its input
    (a swapped or broken record) helps less than its length alone would make it seem."""
    if not weight:
        return gains
    coherence = np.full(n_pool, np.nan)
    for outcome in outcomes:
        if not outcome.failed and len(outcome.demos) == 1 and outcome.coherence is not None:
            coherence[outcome.demos[0]] = outcome.coherence
    return _standardised(gains) + weight * _standardised(coherence)


def standardised_gains(outcomes: list[EpisodeOutcome], n_pool: int, parity: int | None = None) -> Aggregate:
    """Per panel query and answer token, each example's log-probability standardised over the examples that
    answered it; an example's score is the mean over its tokens and queries. parity keeps half the panel."""
    columns: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    appearances = np.zeros(n_pool, dtype=np.int64)
    for outcome in outcomes:
        if outcome.failed or len(outcome.demos) != 1:
            continue
        appearances[outcome.demos[0]] += 1
        for position, (query, logprobs) in enumerate(zip(outcome.queries, outcome.answer_logprobs)):
            if parity is None or position % 2 == parity:
                columns[query].append((outcome.demos[0], logprobs))
    totals = np.zeros(n_pool, dtype=np.float64)
    counts = np.zeros(n_pool, dtype=np.int64)
    for query in sorted(columns):
        rows = columns[query]
        length = min(len(logprobs) for _, logprobs in rows)
        if length == 0 or len(rows) < 2:
            continue
        table = np.array([logprobs[:length] for _, logprobs in rows], dtype=np.float64)
        z = (table - table.mean(axis=0)) / (table.std(axis=0) + 1e-9)
        for (example, _), value in zip(rows, z.mean(axis=1)):
            totals[example] += value
            counts[example] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    return Aggregate(scores, appearances, counts)


ESTIMATORS: Registry[Estimator] = Registry("estimator", Estimator)
DEFAULT_ESTIMATOR = "calibrated"  # chosen by the scenario benchmarks (benchmarks/README.md)
ESTIMATORS.register("paper", PaperEstimator())
ESTIMATORS.register("calibrated", CalibratedEstimator())
