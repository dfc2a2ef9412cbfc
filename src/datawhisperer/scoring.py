"""From episode outcomes to one score per pool example (all in float64).

Each finished episode j gives every demonstration i it showed the credit w_i * s_q for each of
its queries q; an example's score is its total credit divided by the number of query scorings
it received. Failed episodes give no credit at all (their demonstrations are re-drawn).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from .registry import Registry


@dataclass
class EpisodeOutcome:
    """One line of episodes.jsonl."""

    episode: int
    attempt: int
    round: int
    demos: list[int]  # pool indices of the demonstrations shown, in prompt order
    queries: list[int]
    query_scores: list[float] | None  # None when the episode failed
    attention: list[float]  # per demonstration: layer attention mass / its token count
    weights: list[float]  # the paper's weights: attention normalised to sum to 1
    failed: bool = False
    reason: str | None = None
    answers: list[str] = field(default_factory=list)
    demo_tokens: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # demonstrations left out to fit the context
    unfit: list[int] = field(default_factory=list)  # dropped ones that alone, beside the queries, do not fit
    targets: list[int] = field(default_factory=list)  # a make-up try's demonstrations to score (else empty)
    prompt_tokens: int = 0
    seconds: float = 0.0
    answer_logprobs: list[list[float]] = field(default_factory=list)  # per query, each gold answer token's (calibrated)
    coherence: float | None = None  # calibrated: the demonstration's answer log-prob after its input minus after none
    embedding: str | None = None  # calibrated: the demonstration's hidden state alone (vectors.encode)

    def to_json(self) -> str:
        record = asdict(self)
        if not record["answer_logprobs"]:  # only the calibrated estimator records them
            del record["answer_logprobs"], record["coherence"]
        if record["embedding"] is None:
            del record["embedding"]
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeOutcome:
        return cls(**data)


def normalise(values: Iterable[float]) -> list[float]:
    array = np.asarray(list(values), dtype=np.float64)
    total = array.sum()
    if not np.isfinite(total) or total <= 0:
        return [1.0 / len(array)] * len(array)
    return (array / total).tolist()


Weighting = Callable[[EpisodeOutcome, "dict[tuple[int, int], float]"], list[float]]
WEIGHTINGS: Registry[Weighting] = Registry("weighting")


@WEIGHTINGS.register("paper")
def paper_weights(outcome: EpisodeOutcome, slot_means: dict) -> list[float]:
    return normalise(outcome.attention)


@WEIGHTINGS.register("uniform")
def uniform_weights(outcome: EpisodeOutcome, slot_means: dict) -> list[float]:
    """The paper's 'w/o attention' ablation."""
    return [1.0 / len(outcome.demos)] * len(outcome.demos)


@WEIGHTINGS.register("debiased")
def debiased_weights(outcome: EpisodeOutcome, slot_means: dict) -> list[float]:
    """Paper weights divided by the run's mean weight at each prompt slot, renormalised:
    removes the position bias (later slots draw most attention) from the credit."""
    n = len(outcome.demos)
    paper = normalise(outcome.attention)
    return normalise(w / max(slot_means.get((n, slot), 1.0 / n), 1e-12) for slot, w in enumerate(paper))


def slot_mean_weights(outcomes: list[EpisodeOutcome]) -> dict[tuple[int, int], float]:
    """Mean paper weight by (demonstrations shown, slot) over the finished episodes."""
    sums: dict[tuple[int, int], list[float]] = defaultdict(list)
    for outcome in outcomes:
        n = len(outcome.demos)
        for slot, weight in enumerate(normalise(outcome.attention)):
            sums[(n, slot)].append(weight)
    return {key: float(np.mean(values)) for key, values in sums.items()}


@dataclass
class Aggregate:
    scores: np.ndarray  # float64, NaN for examples no finished episode scored
    appearances: np.ndarray  # finished episodes in which the example was a demonstration
    scorings: np.ndarray  # query scorings received


DEFAULT_WEIGHTING = "paper"


def aggregate(outcomes: Iterable[EpisodeOutcome], n_pool: int, weighting: str = DEFAULT_WEIGHTING) -> Aggregate:
    finished = [o for o in outcomes if not o.failed]
    weigh = WEIGHTINGS.get(weighting)
    slot_means = slot_mean_weights(finished)
    credit = np.zeros(n_pool, dtype=np.float64)
    scorings = np.zeros(n_pool, dtype=np.int64)
    appearances = np.zeros(n_pool, dtype=np.int64)
    for outcome in finished:
        weights = np.asarray(weigh(outcome, slot_means), dtype=np.float64)
        score_sum = float(np.sum(np.asarray(outcome.query_scores, dtype=np.float64)))
        demos = np.asarray(outcome.demos, dtype=np.int64)
        np.add.at(credit, demos, weights * score_sum)
        np.add.at(scorings, demos, len(outcome.query_scores))
        np.add.at(appearances, demos, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(scorings > 0, credit / np.maximum(scorings, 1), np.nan)
    return Aggregate(scores, appearances, scorings)


TOO_LONG = "too long for the context"
ALL_FAILED = "every episode failed"


def unscored_examples(outcomes: Iterable[EpisodeOutcome]) -> dict[int, str]:
    """Pool indices that some episode tried to show but no finished episode scored, with the reason:
    too long to fit the context even alone, or else every episode that tried them failed."""
    tried: set[int] = set()
    scored: set[int] = set()
    unfit: set[int] = set()
    for outcome in outcomes:
        tried.update(outcome.demos, outcome.dropped)
        unfit.update(outcome.unfit)
        if not outcome.failed:
            scored.update(outcome.demos)
    return {i: TOO_LONG if i in unfit else ALL_FAILED for i in sorted(tried - scored)}


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices from best to worst; unscored (NaN) examples last; ties keep input order."""
    keyed = np.where(np.isnan(scores), -np.inf, scores)
    return np.lexsort((np.arange(len(scores)), -keyed, np.isnan(scores)))
