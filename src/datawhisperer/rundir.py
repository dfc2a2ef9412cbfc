"""A run directory and every file in it. Nothing else opens a file inside one.

    run.json          the configuration, fingerprint and figures of the run ("status": running/finished)
    episodes.jsonl    one line per played episode (the checkpoint, then the audit trail); under a
                      torch.distributed job each rank appends to episodes.rank-R-of-W.jsonl until rank 0 merges
    parts.jsonl       a baseline's checkpoint: one line per scored part of the pool (`ScoredPart`), per rank
                      as above; removed once scores.jsonl holds them all
    embedded.jsonl    the embedding step's checkpoint (`EmbeddedPart`), likewise; removed once embeddings.npz is written
    embeddings.npz    `pool` [N, dim] (NaN rows: no embedding) and `targets` [M, dim] (the --val examples), float32
    scores.jsonl      one line per pool example: {"index", "score", "appearances"}
    selected-<B>.ext  the budget's records as the strategy picks them, best-scored first, in the pool's own format

Crash safety: episode lines are appended a batch at a time, flushed and fsync'ed; a torn last line (a kill
mid-write) is dropped when read back. Every other file is written to a temporary file and renamed. Two
processes cannot write one directory: an flock on the directory guards it (the kernel releases it when a
process dies, even by kill -9).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from pathlib import Path
from typing import Protocol

import numpy as np

from .data import Table, atomic_write_json, atomic_write_text, write_subset
from .errors import UserError
from .runlogs import PART_LOGS, AppendLog, EmbeddedPart, EpisodeLog, ScoredPart
from .scoring import EpisodeOutcome

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
SCORES_FILE = "scores.jsonl"
EMBEDDINGS_FILE = "embeddings.npz"
SUBSET_FILE = "subset.json"  # what a `datawhisperer subset` directory was made from


def describe_differences(saved: dict, current: dict) -> str:
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys)


class Ranked(Protocol):
    """What the run directory writes of a selection (selection.Selection)."""

    table: Table

    def score_rows(self) -> list[dict]: ...

    def chosen(self, budget: float | int | str) -> list[int]: ...


class RunDirectory:
    """One output directory: claiming it, its episode logs, its outcomes, scores, subsets and run.json."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # --- claiming: one writer, never another run's files -----------------------------------------------

    def holds_run(self) -> bool:
        return (self.path / RUN_FILE).exists() or any(self.path.glob("episodes*.jsonl")) \
            or any(p for stem in PART_LOGS for p in self.path.glob(f"{stem}*.jsonl"))

    def check(self, fingerprint: dict, resume: bool, overwrite: bool, added: dict | None = None) -> None:
        """Read-only: refuse to mix runs. Another run's directory needs --resume (same settings) or --overwrite.
        `added`: fingerprint keys newer than some runs, with the value every run made before them used."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} exists and is not a directory")
        if not self.path.is_dir() or not self.holds_run() or overwrite:
            return
        if not resume:
            raise UserError(f"{self.path} holds another run's files; use --resume to continue it or --overwrite to "
                            "replace it")
        try:
            saved = json.loads((self.path / RUN_FILE).read_text(encoding="utf-8")).get("fingerprint", {})
        except (OSError, json.JSONDecodeError):
            raise UserError(f"cannot resume: {self.path / RUN_FILE} is missing or unreadable") from None
        saved = {**{k: v for k, v in (added or {}).items() if k in fingerprint and k not in saved}, **saved}
        if saved != fingerprint:
            raise UserError(f"cannot resume: the run in {self.path} was made with other settings "
                            f"({describe_differences(saved, fingerprint)})")

    def lock(self) -> None:
        """An exclusive flock on the directory itself (no lock file is left behind)."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.path} is in use by another datawhisperer process") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def claim(self, overwrite: bool) -> None:
        """Create and lock the directory; on --overwrite remove an earlier run's files (and no others)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock()
        if overwrite:
            for path in self._our_files():
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    @staticmethod
    def output_names(budgets: list[str], suffix: str, episodes: bool) -> list[str]:
        """The files a finished run holds, as a user reads them in a summary."""
        return [SCORES_FILE, *(f"selected-{b}{suffix}" for b in budgets), RUN_FILE, *([EPISODES_FILE] if episodes else [])]

    def _our_files(self) -> list[Path]:
        found = [self.path / n for n in (RUN_FILE, SCORES_FILE, EMBEDDINGS_FILE) if (self.path / n).exists()]
        return found + sorted(self.path.glob("episodes*.jsonl")) \
            + [p for stem in PART_LOGS for p in sorted(self.path.glob(f"{stem}*.jsonl"))] \
            + sorted(self.path.glob("selected-*"))

    # --- run.json ---------------------------------------------------------------------------------------

    @property
    def info_file(self) -> Path:
        return self.path / RUN_FILE

    def info(self) -> dict:
        """run.json; a one-line error when there is none or it is broken."""
        run_file = self.path / RUN_FILE
        if not run_file.exists():
            raise UserError(f"{self.path} holds no run ({RUN_FILE} is missing)")
        try:
            return json.loads(run_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UserError(f"{run_file} is not valid JSON") from None

    def finished(self) -> bool:
        try:
            return self.info().get("status") == "finished"
        except UserError:
            return False

    def write_info(self, info: dict) -> None:
        atomic_write_json(self.path / RUN_FILE, info)

    # --- episodes ---------------------------------------------------------------------------------------

    def episode_log(self, rank: int | None = None, world_size: int = 1) -> EpisodeLog:
        """The log a process appends to: the run's own, or one rank's under a torch.distributed job."""
        name = EPISODES_FILE if rank is None else f"episodes.rank-{rank:05d}-of-{world_size:05d}.jsonl"
        return EpisodeLog(self.path / name)

    def outcomes(self) -> dict[tuple[int, int], EpisodeOutcome]:
        """Every outcome in the run's episode logs (its own and any rank's), by (episode, attempt)."""
        found: dict[tuple[int, int], EpisodeOutcome] = {}
        if not self.path.is_dir():
            return found
        for path in sorted(self.path.glob("episodes*.jsonl")):
            for outcome in EpisodeLog(path).read(repair=False):
                found[(outcome.episode, outcome.attempt)] = outcome
        return found

    def write_outcomes(self, ordered: list[EpisodeOutcome]) -> None:
        """The merged episode log, in order; the ranks' logs it replaces are removed."""
        atomic_write_text(self.path / EPISODES_FILE, "".join(o.to_json() + "\n" for o in ordered))
        for rank_log in self.path.glob("episodes.rank-*.jsonl"):
            rank_log.unlink()

    # --- any step's log, by kind (executor.py) -------------------------------------------------------------

    def log(self, kind: str, rank: int | None = None, world_size: int = 1) -> AppendLog:
        """The log a process appends a step's records to: "episodes", "parts" or "embedded"."""
        return self.episode_log(rank, world_size) if kind == "episodes" else self.part_log(rank, world_size, kind)

    def records(self, kind: str) -> dict:
        """Every record of a step in the run's logs (its own and any rank's), by key."""
        return self.outcomes() if kind == "episodes" else self.parts(kind)

    # --- a baseline's scored parts ------------------------------------------------------------------------

    def part_log(self, rank: int | None = None, world_size: int = 1, kind: str = "parts") -> AppendLog:
        """The log a process appends its finished parts to (one per rank under torch.distributed): a baseline's
        scored parts (`parts`) or the embedding step's (`embedded`)."""
        name = f"{kind}.jsonl" if rank is None else f"{kind}.rank-{rank:05d}-of-{world_size:05d}.jsonl"
        return PART_LOGS[kind](self.path / name)

    def parts(self, kind: str = "parts") -> dict[int, ScoredPart | EmbeddedPart]:
        """Every finished part in the run's logs of that kind, by its first item."""
        if not self.path.is_dir():
            return {}
        return {part.start: part for path in sorted(self.path.glob(f"{kind}*.jsonl"))
                for part in PART_LOGS[kind](path).read(repair=False)}

    def remove_parts(self) -> None:
        """Once scores.jsonl and embeddings.npz hold every part, the checkpoints have served."""
        for stem in PART_LOGS:
            for path in self.path.glob(f"{stem}*.jsonl"):
                path.unlink()

    # --- embeddings ---------------------------------------------------------------------------------------

    def write_embeddings(self, pool: np.ndarray, targets: np.ndarray | None) -> None:
        arrays = {"pool": pool, **({"targets": targets} if targets is not None else {})}
        path = self.path / EMBEDDINGS_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        with open(temporary, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)

    def embeddings(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(pool, targets) as the run wrote them; (None, None) for a run that has none."""
        path = self.path / EMBEDDINGS_FILE
        if not path.exists():
            return None, None
        try:
            with np.load(path) as data:
                return data["pool"], (data["targets"] if "targets" in data.files else None)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path} is not an embeddings file ({exc})") from None

    # --- scores and subsets -----------------------------------------------------------------------------

    def write_selection(self, selection: Ranked, budgets: list[str]) -> list[Path]:
        """scores.jsonl and `selected-<budget as typed><ext>` in the pool's own format."""
        self.path.mkdir(parents=True, exist_ok=True)
        scores = self.path / SCORES_FILE
        atomic_write_text(scores, "".join(json.dumps(row) + "\n" for row in selection.score_rows()))
        return [scores, *self._subsets(selection, budgets)]

    def _subsets(self, selection: Ranked, budgets: list[str]) -> list[Path]:
        return [write_subset(selection.table, selection.chosen(budget),
                             self.path / f"selected-{budget}{selection.table.suffix}") for budget in budgets]

    def write_subsets(self, selection: Ranked, budgets: list[str], info: dict, overwrite: bool) -> list[Path]:
        """A re-selection's subsets and what made them (subset.json); subsets already here need `overwrite`."""
        if self.path.exists() and not overwrite and (any(self.path.glob("selected-*"))
                                                     or (self.path / SUBSET_FILE).exists()):
            raise UserError(f"{self.path} holds subsets already; pass --overwrite to replace them")
        self.path.mkdir(parents=True, exist_ok=True)
        subsets = self._subsets(selection, budgets)
        atomic_write_json(self.path / SUBSET_FILE, info)
        for stale in set(self.path.glob("selected-*")) - set(subsets):  # an earlier re-selection's other budgets
            stale.unlink()
        return subsets

    def score_rows(self) -> list[dict]:
        path = self.path / SCORES_FILE
        if not path.exists():
            raise UserError(f"{self.path} holds no {SCORES_FILE}")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def scores(self) -> np.ndarray:
        """The scores the run wrote, NaN where an example was unscored."""
        return np.array([math.nan if row["score"] is None else row["score"] for row in self.score_rows()],
                        dtype=np.float64)
