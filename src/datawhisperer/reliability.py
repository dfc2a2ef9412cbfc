"""How far a ranking can be trusted: rank correlations, split-half reliability, the Spearman-Brown projection."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Wording:
    """How a run's reliability is worded for a method or an estimator (its registry entry carries it), and
    what to do when it is low."""

    label: str  # "the paper estimator", "nuggets"
    advice: str = "another seed, and compare"  # when the projected reliability is low
    unknown: str | None = None  # when nothing could be projected


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    result = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        result[order[start: stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation over the entries both score (NaN elsewhere); NaN if fewer than 3 or constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3:
        return float("nan")
    ra, rb = ranks(a[both]), ranks(b[both])
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def spearman_brown(r: float, factor: float = 2.0) -> float:
    """The reliability of a measurement `factor` times as long as one whose reliability is r."""
    if not np.isfinite(r) or r <= -1:
        return float("nan")
    return float(factor * r / (1 + (factor - 1) * r))


def top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    """How many of the k best of a are among the k best of b (NaN ranks last)."""
    def best(x):
        keyed = np.where(np.isfinite(x), x, -np.inf)
        return set(np.argsort(-keyed, kind="mergesort")[:k].tolist())

    return len(best(np.asarray(a)) & best(np.asarray(b)))


def seed_to_seed(scores: dict[int, np.ndarray], tops: tuple[int, ...] = (20, 40)) -> dict:
    """How alike several seeds' scores of one pool rank it, as means over every pair of seeds: Spearman
    (`seed_spearman`) and the overlap of the k best (`top<k>`). Needs two seeds or more."""
    pairs = list(itertools.combinations(sorted(scores), 2))
    figures = {"seed_spearman": float(np.mean([spearman(scores[a], scores[b]) for a, b in pairs]))}
    for k in tops:
        figures[f"top{k}"] = float(np.mean([top_overlap(scores[a], scores[b], k) for a, b in pairs]))
    return figures


def split_half(scores_a: np.ndarray, scores_b: np.ndarray, split: str) -> dict:
    """run.json's reliability entry: the halves' Spearman and its projection to the whole run."""
    r = spearman(scores_a, scores_b)
    projected = spearman_brown(r)
    both = int((np.isfinite(scores_a) & np.isfinite(scores_b)).sum())
    return {"split": split, "split_half_spearman": _rounded(r), "projected": _rounded(projected), "examples": both}


def _rounded(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def describe(reliability: dict, wording: Wording) -> str:
    """A run's reliability entry in one sentence (the summary line, the HTML report)."""
    who = wording.label
    halves, projected = reliability.get("split_half_spearman"), reliability.get("projected")
    if halves is None and projected is not None:
        return f"Reliability ({who}): {projected:.2f} by design ({reliability['split']})."
    if halves is None:
        return f"Reliability ({who}): not measurable (halves by {reliability['split']}: too few examples in both)."
    if projected is None:
        return f"Reliability ({who}): not measurable from one round: its only split is by {reliability['split']}."
    return (f"Reliability ({who}, halves by {reliability['split']}): the halves' rankings agree at Spearman "
            f"{reliability['split_half_spearman']:.2f}, {reliability['projected']:.2f} projected for the whole run: "
            "about how well a new seed's ranking would agree with this one (1 = the same ranking, 0 = chance).")


def verdict(reliability: dict | None, wording: Wording) -> str | None:
    """A plain warning when the projected reliability says the ranking is mostly noise."""
    if not reliability or reliability.get("split_half_spearman") is None:
        return None  # nothing measured (random: 0 by design, which its user chose)
    if reliability.get("projected") is None:
        return wording.unknown or "how far this ranking would survive another seed is unknown"
    projected = reliability["projected"]
    if projected >= 0.6:
        return None
    level = "mostly noise" if projected < 0.3 else "noisy"
    return (f"the ranking is {level}: its split-half reliability projects to {projected:.2f} (1 = the same ranking "
            f"with another seed, 0 = chance); use {wording.advice}")
