"""Baselines from the model's likelihood of the gold answers (one forward pass per example)."""

from __future__ import annotations

import numpy as np

from .base import Baseline


def _answer_nll(context, indices: list[int]) -> np.ndarray:
    """Mean per-token negative log-likelihood of each gold answer after its zero-shot prompt."""
    builder = context.builder
    requests = [builder.render_completion(context.examples[i]) for i in indices]
    results = context.backend.loglikelihood(requests)
    return np.array([-total / max(n, 1) for total, n in results], dtype=np.float64)


def perplexity_scores(context, indices: list[int]) -> np.ndarray:
    """The model's loss on the gold answer; the hardest (highest-perplexity) examples first."""
    return _answer_nll(context, indices)


def ifd_scores(context, indices: list[int]) -> np.ndarray:
    """Instruction-following difficulty (Li et al., 2024): loss of the answer given the instruction and input,
    divided by its loss alone. High IFD: the instruction helps little, the example teaches the most."""
    conditioned = _answer_nll(context, indices)
    alone = context.backend.loglikelihood([("", context.examples[i].answer) for i in indices])
    unconditioned = np.array([-total / max(n, 1) for total, n in alone], dtype=np.float64)
    return conditioned / np.maximum(unconditioned, 1e-6)


PERPLEXITY = Baseline("perplexity", "datawhisperer.baselines.likelihood:perplexity_scores")
IFD = Baseline("ifd", "datawhisperer.baselines.likelihood:ifd_scores")
