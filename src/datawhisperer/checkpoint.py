"""Crash-safe run directories: an append-only episode log, a lock, and the run's fingerprint.

Every finished episode is one JSON line, flushed and fsync'ed before the next episode starts,
so a kill loses at most the episode in flight. A torn last line (killed mid-write) is dropped
when the log is read back. Two processes cannot write one directory: an flock guards it (the
kernel releases it when a process dies, even by kill -9).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .data import atomic_write_json
from .errors import UserError
from .scoring import EpisodeOutcome

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"


class EpisodeLog:
    """Append-only JSON lines of EpisodeOutcome."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = None

    def read(self, repair: bool = True) -> list[EpisodeOutcome]:
        """All complete lines; a torn final line (a kill mid-write) is ignored, and with `repair` cut off."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        outcomes = []
        for lineno, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            try:
                outcomes.append(EpisodeOutcome.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise UserError(f"{self.path}: line {lineno} is not an episode record ({exc})") from None
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

    def append(self, outcomes: list[EpisodeOutcome]) -> None:
        """One write and one fsync for a whole batch of outcomes: a kill leaves all of them or none."""
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


class DirectoryLock:
    """An exclusive flock on the directory itself (no lock file is left behind)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> None:
        self._fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise UserError(f"{self.directory} is in use by another datawhisperer process") from None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_logs(directory: Path) -> dict[tuple[int, int], EpisodeOutcome]:
    """Every outcome in the directory's episode logs (the run's own and any rank's), by (episode, attempt)."""
    outcomes: dict[tuple[int, int], EpisodeOutcome] = {}
    if directory is None or not Path(directory).is_dir():
        return outcomes
    for path in sorted(Path(directory).glob("episodes*.jsonl")):
        for outcome in EpisodeLog(path).read(repair=False):
            outcomes[(outcome.episode, outcome.attempt)] = outcome
    return outcomes


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


def describe_differences(saved: dict, current: dict) -> str:
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys)


def our_files(directory: Path) -> list[Path]:
    """Files a run writes into its directory."""
    names = [RUN_FILE, "scores.jsonl"]
    found = [directory / n for n in names if (directory / n).exists()]
    found += sorted(directory.glob("episodes*.jsonl")) + sorted(directory.glob("selected-*"))
    return found


def holds_run(directory: Path) -> bool:
    return (directory / RUN_FILE).exists() or any(directory.glob("episodes*.jsonl"))


def check_directory(directory: Path, fingerprint: dict, resume: bool, overwrite: bool) -> None:
    """Read-only: refuse to mix runs. Another run's directory needs --resume (same settings) or --overwrite."""
    if not directory.is_dir() or not holds_run(directory) or overwrite:
        return
    if not resume:
        raise UserError(f"{directory} holds another run's files; use --resume to continue it or --overwrite to replace it")
    run_file = directory / RUN_FILE
    try:
        saved = json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint", {})
    except (OSError, json.JSONDecodeError):
        raise UserError(f"cannot resume: {run_file} is missing or unreadable") from None
    if saved != fingerprint:
        raise UserError(f"cannot resume: the run in {directory} was made with other settings "
                        f"({describe_differences(saved, fingerprint)})")


def clear_directory(directory: Path) -> None:
    """Remove a previous run's files (--overwrite); other files are left alone."""
    import shutil

    for path in our_files(directory):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@contextlib.contextmanager
def claimed_directory(directory: Path, overwrite: bool) -> Iterator[Path]:
    """Create and lock an output directory for one writer, clearing an earlier run's files on --overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        if overwrite:
            clear_directory(directory)
        yield directory
    finally:
        lock.release()


def write_run_file(directory: Path, info: dict) -> None:
    atomic_write_json(directory / RUN_FILE, info)
