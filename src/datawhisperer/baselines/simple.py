"""Baselines that need no model."""

from __future__ import annotations

import numpy as np

from .base import Baseline


def random_scores(context, indices: list[int]) -> np.ndarray:
    """Uniformly random order, fixed by the seed (one draw for the whole pool, whatever part is asked)."""
    return np.random.default_rng([context.seed, 0x5E1EC7]).random(len(context.examples))[indices]


def length_scores(context, indices: list[int]) -> np.ndarray:
    """Shortest gold answers first (in words): a control for answer length."""
    return -np.array([len(context.examples[i].answer.split()) for i in indices], dtype=np.float64)


RANDOM = Baseline("random", "datawhisperer.baselines.simple:random_scores", needs_model=False, seeded=True, reference=True,
                  reliability={"split": "a random draw, which another seed shares nothing of",
                               "split_half_spearman": None, "projected": 0.0, "examples": None})
LENGTH = Baseline("length", "datawhisperer.baselines.simple:length_scores", needs_model=False)
