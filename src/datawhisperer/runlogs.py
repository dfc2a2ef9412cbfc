"""The append-only logs of a run directory, line by line: what one line holds and how a log is read back.

Crash safety: lines are appended a batch at a time, flushed and fsync'ed; a torn last line (a kill mid-write)
is dropped when read back. Which file each log is, is the run directory's to say (rundir.py)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from .errors import UserError
from .scoring import EpisodeOutcome


@dataclass(frozen=True)
class ScoredPart:
    """A baseline's scores of the pool examples start, start+1, ... (None where unscored), and where the
    baseline measures in halves (nuggets: even and odd anchors), the scores from each half."""

    start: int
    scores: list[float | None]
    halves: tuple[list[float | None], list[float | None]] | None = None
    seconds: float | None = None  # what scoring the part took (a resumed run is charged for it)

    @property
    def count(self) -> int:
        return len(self.scores)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict) -> ScoredPart:
        def floats(values: list) -> list[float | None]:
            return [None if v is None else float(v) for v in values]

        halves = data.get("halves")
        return cls(int(data["start"]), floats(data["scores"]), None if halves is None else
                   (floats(halves[0]), floats(halves[1])), data.get("seconds"))


@dataclass(frozen=True)
class EmbeddedPart:
    """The embeddings (vectors.encode; None where an item could not be embedded) of the items start, start+1, ...
    of a run's embedding step (pool examples, then --val examples)."""

    start: int
    vectors: list[str | None]
    seconds: float | None = None

    @property
    def count(self) -> int:
        return len(self.vectors)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict) -> EmbeddedPart:
        return cls(int(data["start"]), list(data["vectors"]), data.get("seconds"))


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


class EmbeddedLog(AppendLog):
    """The parts of a run's embedding step done so far (EmbeddedPart)."""

    record = EmbeddedPart
    what = "an embedded part"


PART_LOGS = {"parts": PartLog, "embedded": EmbeddedLog}  # the logs of work done in fixed parts, by file stem
