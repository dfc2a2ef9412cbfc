"""GraNd (Paul et al., 2021): the norm of the loss gradient of each example at the pretrained model.
Large norms mark examples the model finds hard; they are selected first."""

from __future__ import annotations

import numpy as np

from .base import Baseline


def grand_scores(context, indices: list[int]) -> np.ndarray:
    """The gradient norm of each gold answer's loss after its zero-shot prompt, on the sequence fine-tuning
    trains on (the backend's `gradient_norms`), one example at a time."""
    backend, builder = context.backend, context.builder
    return np.array([norm for i in indices for norm in backend.gradient_norms([builder.render_completion(
        context.examples[i])])], dtype=np.float64)


GRAND = Baseline("grand", "datawhisperer.baselines.grand:grand_scores")
