"""Content hashes of a run's inputs: a run's fingerprint names its data by content, not by path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def content_hash(path: str | os.PathLike | None) -> str | None:
    """sha256 of a file, or of every file under a directory (names included)."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def records_hash(records: list[dict]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
