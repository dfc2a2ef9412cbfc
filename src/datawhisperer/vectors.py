"""Embeddings as the run's logs hold them (float16, base64: a tenth of the text of JSON floats) and as arrays."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Embeddings:
    pool: np.ndarray | None  # [N, dim] float32, NaN rows where an example has none
    targets: np.ndarray | None  # [M, dim]: the --val examples


def unit(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length one (a zero row stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embedded_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows that hold an embedding (an example too long for the model's context has a NaN row)."""
    return vectors[~np.isnan(vectors).any(axis=1)]


def encode(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f2").tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)


def stack(vectors: dict[int, np.ndarray], n: int) -> np.ndarray | None:
    """[n, dim] float32 with NaN rows where an index has no vector; None when there is none at all."""
    if not vectors:
        return None
    dim = len(next(iter(vectors.values())))
    array = np.full((n, dim), np.nan, dtype=np.float32)
    for index, vector in vectors.items():
        array[index] = vector
    return array
