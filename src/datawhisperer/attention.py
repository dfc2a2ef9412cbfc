"""Reading one layer's attention from the queries to the demonstrations, and nothing more.

We register an attention function through transformers' public `AttentionInterface`: every
layer runs the ordinary SDPA kernel; only while a capture is active, and only in the chosen
layer, do we also form softmax(QK^T) for the query rows against the demonstration columns,
in row chunks so memory stays bounded. No `output_attentions`, no second forward pass, no
model-specific code: any model whose attention modules go through the interface works.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask, sdpa_mask

# Two kernels under our capture: SDPA, and for architectures that SDPA cannot serve (Gemma-2's logit
# soft-capping) the model's own eager attention. transformers checks SDPA support by the name.
ATTN_IMPLEMENTATION = "datawhisperer_sdpa"
ATTN_EAGER = "datawhisperer_eager"


def implementation_for(model) -> str:
    """Our SDPA-based implementation where the architecture supports SDPA, else the eager-based one."""
    return ATTN_IMPLEMENTATION if getattr(model, "_supports_sdpa", False) else ATTN_EAGER
_CHUNK_ELEMENTS = 1 << 24  # logits per chunk (64 MiB in float32)


@dataclass
class CaptureRequest:
    """What to measure in one forward pass.

    column_map: [batch, kv_positions, n_demos] (or one [kv_positions, n_demos] for every row): 0/1 marks of
        each demonstration's key positions.
    row_weights: [batch, query_len] 1.0 for query tokens whose attention counts, 0.0 for padding; or
        [batch, query_len, n_segments] to sum the rows of several segments apart (packed episodes).
    Result `mass`: [batch, n_demos] (or [batch, n_segments, n_demos]) attention summed over heads, query rows
        and demo columns.
    """

    layer: int
    column_map: torch.Tensor
    row_weights: torch.Tensor
    mass: torch.Tensor | None = None
    calls: int = field(default=0)


@dataclass
class PackedLayout:
    """Rows that each hold a prefix and then suffixes that see the prefix and themselves only (see
    backends/packing.py). The full 4D mask says the same; this lets attention skip the masked blocks."""

    width: int
    prefix_lengths: list[int]  # per row
    segments: list[list[tuple[int, int]]]  # per row: [start, stop) of each suffix


_active: CaptureRequest | None = None
_layout: PackedLayout | None = None


@contextlib.contextmanager
def packed(layout: PackedLayout) -> Iterator[PackedLayout]:
    global _layout
    _layout = layout
    try:
        yield layout
    finally:
        _layout = None


@contextlib.contextmanager
def capture(request: CaptureRequest) -> Iterator[CaptureRequest]:
    global _active
    if _active is not None:
        raise RuntimeError("attention captures cannot be nested")  # a programming error, not a user's
    _active = request
    try:
        yield request
    finally:
        _active = None
    if request.calls != 1:
        from .errors import UserError

        raise UserError(
            f"attention at layer {request.layer} was captured {request.calls} times, expected once: this model's "
            "attention modules do not report a usable layer_idx")


def _eager_kernel(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """The architecture's own eager attention (it knows the model's soft-capping and scaling); bool masks and
    is_causal become the additive masks eager attention expects."""
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        from .errors import UserError

        raise UserError(f"{type(module).__name__} supports neither SDPA nor a standard eager attention function")
    if attention_mask is None and is_causal:
        q_len, kv_len = query.shape[2], key.shape[2]
        positions = torch.arange(q_len, device=query.device).unsqueeze(1) + (kv_len - q_len)
        attention_mask = torch.arange(kv_len, device=query.device).unsqueeze(0) <= positions
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        blocked = torch.finfo(query.dtype).min
        attention_mask = torch.zeros_like(attention_mask, dtype=query.dtype).masked_fill(~attention_mask, blocked)
        attention_mask = attention_mask.expand(query.shape[0], 1, -1, -1) if attention_mask.dim() == 4 else \
            attention_mask[None, None].expand(query.shape[0], 1, -1, -1)
    return eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def _capture_with(kernel):
    def attention_with_capture(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        return _attention_with_capture(kernel, module, query, key, value, attention_mask, dropout, scaling, **kwargs)

    return attention_with_capture


def _attention_with_capture(kernel, module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    layout = _layout
    if layout is not None and query.shape[2] == key.shape[2] == layout.width:
        output = (_blockwise_attention(kernel, module, query, key, value, layout, dropout, scaling, **kwargs), None)
    else:
        output = kernel(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)[:1] + \
            (None,)
    request = _active
    if request is not None and getattr(module, "layer_idx", None) == request.layer:
        request.calls += 1
        request.mass = demo_attention_mass(query, key, attention_mask, scaling, request.column_map,
                                           request.row_weights, softcap=kwargs.get("softcap"))
    return output


def _blockwise_attention(kernel, module, query, key, value, layout: PackedLayout, dropout, scaling, **kwargs):
    """SDPA over the unmasked blocks of packed rows only: the prefix (causal) and each suffix against the prefix
    and itself. Padding positions are left at zero: nothing attends to them and their outputs are never read."""
    kwargs.pop("is_causal", None)
    batch, heads, width, _ = query.shape
    out = query.new_zeros(batch, width, heads, value.shape[-1])
    for row in range(batch):
        p = layout.prefix_lengths[row]
        q, k, v = query[row: row + 1], key[row: row + 1], value[row: row + 1]
        out[row: row + 1, :p] = kernel(module, q[:, :, :p], k[:, :, :p], v[:, :, :p], None,
                                       dropout=dropout, scaling=scaling, is_causal=True, **kwargs)[0]
        for start, stop in layout.segments[row]:
            n = stop - start
            allowed = torch.ones(n, p + n, dtype=torch.bool, device=query.device).tril(diagonal=p)
            keys = torch.cat([k[:, :, :p], k[:, :, start:stop]], dim=2)
            values = torch.cat([v[:, :, :p], v[:, :, start:stop]], dim=2)
            out[row: row + 1, start:stop] = kernel(
                module, q[:, :, start:stop], keys, values, allowed[None, None], dropout=dropout, scaling=scaling,
                **kwargs)[0]
    return out


def demo_attention_mass(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None,
                        scaling: float | None, column_map: torch.Tensor, row_weights: torch.Tensor,
                        softcap: float | None = None) -> torch.Tensor:
    """Σ_heads Σ_rows softmax(q k^T)[rows, cols] @ column_map, computed in float32 chunks of query rows.

    query: [b, h, q, d] (after rotary), key: [b, kv_heads, kv, d] (cache included);
    attention_mask: [b or 1, 1, q, kv] bool/additive, or None for plain causal attention.
    """
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    cols = column_map.to(device=query.device, dtype=torch.float32)
    if cols.dim() == 2:
        cols = cols.unsqueeze(0)
    n_cols = cols.shape[1]
    cols = cols[:, None, None]  # [b or 1, 1, 1, n_cols, n_demos]
    keys_t = key.float().unsqueeze(2).transpose(-1, -2)  # [b, kvh, 1, d, kv]
    queries = query.float().view(batch, kv_heads, groups, q_len, dim)
    weights = row_weights.to(device=query.device, dtype=torch.float32)
    segmented = weights.dim() == 3
    if not segmented:
        weights = weights.unsqueeze(-1)
    mass = torch.zeros(batch, weights.shape[-1], cols.shape[-1], dtype=torch.float32, device=query.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * heads * kv_len))
    for start in range(0, q_len, chunk):
        stop = min(q_len, start + chunk)
        rows = weights[:, start:stop]
        if not bool(rows.any()):
            continue
        logits = (queries[:, :, :, start:stop] @ keys_t) * scaling  # [b, kvh, g, c, kv]
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logits = logits + _additive_mask(attention_mask, start, stop, q_len, kv_len, query.device)
        # a fully masked row (padding) is NaN after softmax; its row weight is 0, but 0 * NaN is NaN
        probs = torch.softmax(logits, dim=-1).nan_to_num(0.0)[..., :n_cols]
        per_row = (probs @ cols).sum(dim=(1, 2))  # [b, c, n_demos]
        mass += torch.einsum("bcn,bcs->bsn", per_row, rows)
    return mass if segmented else mass[:, 0]


def _additive_mask(mask: torch.Tensor | None, start: int, stop: int, q_len: int, kv_len: int,
                   device: torch.device) -> torch.Tensor:
    """The mask rows [start, stop) as an additive float tensor broadcastable to [b, kvh, g, c, kv]."""
    if mask is None:  # causal, aligned to the end of the keys (the cache precedes the queries)
        positions = torch.arange(start, stop, device=device).unsqueeze(1) + (kv_len - q_len)
        allowed = torch.arange(kv_len, device=device).unsqueeze(0) <= positions
        return torch.where(allowed, 0.0, float("-inf")).view(1, 1, 1, stop - start, kv_len)
    rows = mask[:, :, start:stop, :kv_len]  # [b, 1, c, kv]
    if rows.dtype == torch.bool:
        rows = torch.where(rows, 0.0, float("-inf"))
    return rows.float().unsqueeze(2)


AttentionInterface.register(ATTN_IMPLEMENTATION, _capture_with(sdpa_attention_forward))
AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
AttentionInterface.register(ATTN_EAGER, _capture_with(_eager_kernel))
AttentionMaskInterface.register(ATTN_EAGER, eager_mask)
