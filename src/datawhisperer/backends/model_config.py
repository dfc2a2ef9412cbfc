"""What a model's config says about the sequences we may give it, read before any weights load."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..models import ModelFiles, ModelSource, context_length_of, converted_weights, load_config


def read_config(source: ModelSource):
    """The config of a resolved model without loading its weights (a GGUF file's metadata is read directly)."""
    ready = converted_weights(source)
    if ready is not None:
        return load_config(ModelFiles(source.name, ready))
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.path, gguf_file=source.gguf, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read the model config of {Path(source.path) / (source.gguf or '')}: {first}") \
            from None


def sliding_window_of(config) -> int | None:
    """The attention window of a model whose layers (some or all) attend only to recent tokens; None when none do."""
    config = getattr(config, "text_config", None) or config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not window or (layer_types and not any("sliding" in str(t) for t in layer_types)):
        return None
    return int(window)


def usable_length(config, max_length: int | None) -> int:
    """The longest sequence (prompt and answer) an episode may use.

    With a sliding window we keep every sequence shorter than the window: there the windowed layers compute
    exactly what full attention does, so the attention read, the cache and the packed likelihood rows are exact.
    """
    context = context_length_of(config) or 4096
    window = sliding_window_of(config)
    limit = min(context, window - 1) if window else context
    if max_length is None:
        return limit
    if window and max_length > limit:
        raise UserError(f"--max-length {max_length} is longer than this model's sliding attention window "
                        f"({window} tokens); pass --max-length {limit} or less")
    return min(max_length, context)
