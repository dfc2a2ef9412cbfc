"""GraNd (Paul et al., 2021): the norm of the loss gradient of each example at the pretrained model.
Large norms mark examples the model finds hard; they are selected first."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm


def grand_scores(context) -> np.ndarray:
    """The gradient norm of each gold answer's loss after its zero-shot prompt, on the sequence fine-tuning
    trains on (the backend's `gradient_norms`); one example at a time, so the bar shows progress."""
    backend, builder = context.backend, context.builder
    requests = [builder.render_completion(e) for e in context.examples]
    norms = [norm for request in tqdm(requests, desc="grand", unit="example", dynamic_ncols=True,
                                      disable=context.options.get("quiet", False))
             for norm in backend.gradient_norms([request])]
    return np.array(norms, dtype=np.float64)
