"""--balance: the groups whose shares of the pool every subset keeps (strategies.pick splits the budget over
them). Labels for a classification pool; five groups of equal size by answer length for any other answers,
because the calibrated estimator favours demonstrations with short answers and a plain top-k over it fills a
small budget with them."""

from __future__ import annotations

import numpy as np

BALANCES = ("auto", "on", "off", "answer-length")
LENGTH_BINS = 5


def resolve_balance(answers: list[str], balance: str) -> str | None:
    """What `balance` groups these answers by: "labels" (`on`, or `auto` when the pool has at most 50 distinct
    answers and at least four records per answer on average), "answer-length" (`answer-length`, or `auto` over
    any other answers, unless all have one length), or None (`off`)."""
    if balance == "off" or not answers:
        return None
    distinct = set(map(_label, answers))
    if balance == "on" or (balance == "auto" and len(distinct) <= 50 and len(answers) >= 4 * len(distinct)):
        return "labels"
    return "answer-length" if len(set(answer_lengths(answers).tolist())) > 1 else None


def concrete_balance(answers: list[str], balance: str, saved_before_length_auto: bool = False) -> str:
    """The --balance that `balance` comes to over these answers: on, answer-length or off. A run or bench saved
    before `auto` grouped by answer length reads its `auto` as it then was: labels, or nothing."""
    kind = resolve_balance(answers, balance)
    if saved_before_length_auto and balance == "auto" and kind == "answer-length":
        kind = None
    return {"labels": "on", "answer-length": "answer-length", None: "off"}[kind]


def balance_groups(answers: list[str], balance: str) -> np.ndarray | None:
    """A group id per example, each group to keep its share of the pool in every subset (see pick), or None:
    one group per distinct answer (labels), or LENGTH_BINS groups of equal size by answer length, so that a
    score that favours short (or long) answers cannot fill a subset with them (resolve_balance says which)."""
    kind = resolve_balance(answers, balance)
    if kind != "labels":
        return None if kind is None else _length_bins(answers)
    keys = [_label(a) for a in answers]
    index = {k: g for g, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def answer_lengths(answers: list[str]) -> np.ndarray:
    """Characters of each whitespace-normalised answer: a length in any script."""
    return np.array([len(_normalised(a)) for a in answers], dtype=np.int64)


def _length_bins(answers: list[str]) -> np.ndarray:
    lengths = answer_lengths(answers)  # ties split by pool order
    rank = np.empty(len(answers), dtype=np.int64)
    rank[np.argsort(lengths, kind="stable")] = np.arange(len(answers))
    return rank * min(LENGTH_BINS, max(len(answers), 1)) // max(len(answers), 1)


def _normalised(answer: str) -> str:
    return " ".join(answer.split())


def _label(answer: str) -> str:
    return _normalised(answer).lower()
