"""A run directory and every file in it. Nothing else opens a file inside one.

    run.json          the configuration, fingerprint and figures of the run ("status": running/finished)
    episodes.jsonl    one line per played episode (the checkpoint, then the audit trail); under a
                      torch.distributed job each rank appends to episodes.rank-R-of-W.jsonl until rank 0 merges
    parts.jsonl       a baseline's checkpoint: one line per scored part of the pool (`ScoredPart`), per rank
                      as above; removed once scores.jsonl holds them all
    scores.jsonl      one line per pool example: {"index", "score", "appearances"}
    selected-<B>.ext  the best ⌊B·N⌋ records, in the pool's own format

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from .data import Table, atomic_write_json, atomic_write_text, write_subset
from .errors import UserError
from .scoring import EpisodeOutcome

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
PARTS_FILE = "parts.jsonl"
SCORES_FILE = "scores.jsonl"


@dataclass(frozen=True)
class ScoredPart:
    """A baseline's scores of the pool examples start, start+1, ... (None where unscored), and where the
    baseline measures in halves (nuggets: even and odd anchors), the scores from each half."""

    start: int
    scores: list[float | None]
    halves: tuple[list[float | None], list[float | None]] | None = None
    seconds: float | None = None  # what scoring the part took (a resumed run is charged for it)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict) -> ScoredPart:
        def floats(values: list) -> list[float | None]:
            return [None if v is None else float(v) for v in values]

        halves = data.get("halves")
        return cls(int(data["start"]), floats(data["scores"]), None if halves is None else
                   (floats(halves[0]), floats(halves[1])), data.get("seconds"))


class AppendLog:
    """Append-only JSON lines of one record type (`record`: to_json / from_dict)."""

    record: ClassVar[type] = EpisodeOutcome
    what: ClassVar[str] = "an episode record"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = None

    def read(self, repair: bool = True) -> list:
        """All complete lines; a torn final line (a kill mid-write) is ignored, and with `repair` cut off."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        outcomes = []
        for lineno, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            try:
                outcomes.append(self.record.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
                raise UserError(f"{self.path}: line {lineno} is not {self.what} ({exc})") from None
        if repair and len(complete) != len(data):
            self._cut_torn_tail()
        return outcomes

    def _cut_torn_tail(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "r+b") as fh:
            data = fh.read()
            complete = data.rfind(b"\n") + 1
            if complete != len(data):
                fh.truncate(complete)

    def append(self, outcomes: list) -> None:
        """One write and one fsync for a whole batch of records: a kill leaves all of them or none."""
        if not outcomes:
            return
        if self._fh is None:
            self._cut_torn_tail()
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write("".join(outcome.to_json() + "\n" for outcome in outcomes))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class EpisodeLog(AppendLog):
    """The episodes a Data Whisperer run has played (EpisodeOutcome)."""


class PartLog(AppendLog):
    """The parts of the pool a baseline has scored (ScoredPart)."""

    record = ScoredPart
    what = "a scored part"


def describe_differences(saved: dict, current: dict) -> str:
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys)


class Ranked(Protocol):
    """What the run directory writes of a selection (selection.Selection)."""

    table: Table

    def score_rows(self) -> list[dict]: ...

    def top_indices(self, budget: float | str) -> list[int]: ...


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
            or any(self.path.glob("parts*.jsonl"))

    def check(self, fingerprint: dict, resume: bool, overwrite: bool) -> None:
        """Read-only: refuse to mix runs. Another run's directory needs --resume (same settings) or --overwrite."""
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
        found = [self.path / n for n in (RUN_FILE, SCORES_FILE) if (self.path / n).exists()]
        return found + sorted(self.path.glob("episodes*.jsonl")) + sorted(self.path.glob("parts*.jsonl")) \
            + sorted(self.path.glob("selected-*"))

    # --- run.json ---------------------------------------------------------------------------------------

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

    # --- a baseline's scored parts ------------------------------------------------------------------------

    def part_log(self, rank: int | None = None, world_size: int = 1) -> PartLog:
        """The log a baseline's process appends its scored parts to (one per rank under torch.distributed)."""
        name = PARTS_FILE if rank is None else f"parts.rank-{rank:05d}-of-{world_size:05d}.jsonl"
        return PartLog(self.path / name)

    def parts(self) -> dict[int, ScoredPart]:
        """Every scored part in the run's part logs, by its first example."""
        if not self.path.is_dir():
            return {}
        return {part.start: part for path in sorted(self.path.glob("parts*.jsonl"))
                for part in PartLog(path).read(repair=False)}

    def remove_parts(self) -> None:
        """Once scores.jsonl holds every part, the checkpoint has served."""
        for path in self.path.glob("parts*.jsonl"):
            path.unlink()

    # --- scores and subsets -----------------------------------------------------------------------------

    def write_selection(self, selection: Ranked, budgets: list[str]) -> list[Path]:
        """scores.jsonl and `selected-<budget as typed><ext>` in the pool's own format."""
        self.path.mkdir(parents=True, exist_ok=True)
        scores = self.path / SCORES_FILE
        atomic_write_text(scores, "".join(json.dumps(row) + "\n" for row in selection.score_rows()))
        subsets = [write_subset(selection.table, selection.top_indices(budget),
                                self.path / f"selected-{budget}{selection.table.suffix}") for budget in budgets]
        return [scores, *subsets]

    def score_rows(self) -> list[dict]:
        path = self.path / SCORES_FILE
        if not path.exists():
            raise UserError(f"{self.path} holds no {SCORES_FILE}")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def scores(self) -> np.ndarray:
        """The scores the run wrote, NaN where an example was unscored."""
        return np.array([math.nan if row["score"] is None else row["score"] for row in self.score_rows()],
                        dtype=np.float64)
