"""Nuggets (Li et al., 2023): an example's one-shot gain. Shown as the single demonstration, on how many
examples of a small fixed anchor set does it lower the model's loss on the gold answer?"""

from __future__ import annotations

import numpy as np

from ..prompts import EpisodePrompt
from .base import Baseline, Measured


def golden_score(gain: np.ndarray) -> float:
    """The share of anchors an example helps; its mean gain breaks ties."""
    return float(np.mean(gain > 0)) + 1e-3 * float(np.tanh(np.mean(gain)))


def nuggets_scores(context, indices: list[int]) -> Measured:
    """Each example's golden score over the anchors, and over the even and the odd anchors apart (the run's
    split-half reliability: another seed draws other anchors)."""
    n_anchors = int(context.options.get("anchors", 8))
    rng = np.random.default_rng([context.seed, 0xA4C])
    anchor_ids = rng.choice(len(context.examples), min(n_anchors, len(context.examples)), replace=False)
    anchors = [context.examples[i] for i in anchor_ids]
    answers = [a.answer for a in anchors]
    backend, builder = context.backend, context.builder

    def anchor_logprobs(prompt: EpisodePrompt) -> np.ndarray:
        [result] = backend.score([prompt], [answers])
        return np.array(result.token_logprobs, dtype=np.float64)

    if "zero_shot" not in context.memo:  # once per process, whatever parts it scores
        context.memo["zero_shot"] = anchor_logprobs(builder.build([], anchors))
    scores, halves = np.zeros(len(indices)), (np.zeros(len(indices)), np.zeros(len(indices)))
    for k, i in enumerate(indices):
        gain = anchor_logprobs(builder.build([context.examples[i]], anchors)) - context.memo["zero_shot"]
        scores[k] = golden_score(gain)
        for parity, half in enumerate(halves):
            half[k] = golden_score(gain[parity::2]) if len(gain[parity::2]) else np.nan
    return Measured(scores, halves)


NUGGETS = Baseline("nuggets", "datawhisperer.baselines.nuggets:nuggets_scores", seeded=True, options=("anchors",),
                   split="anchors", advice="more --anchors")
