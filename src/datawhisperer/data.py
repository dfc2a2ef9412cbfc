"""Reading a pool from disk and writing subsets of it back in the same format.

Subsets are the input records themselves: JSON, JSONL and CSV records are kept as the exact
text they had in the file; Parquet and `save_to_disk` directories are sliced with Arrow.
Every write goes to a temporary file first and is renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError


@dataclass
class Table:
    """The records of one file, plus what is needed to write any subset back byte-for-byte."""

    records: list[dict]
    format: str
    path: Path | None = None
    raw: list[str] | None = None  # exact source text of each record (json, jsonl, csv)
    header: str = ""  # csv header line
    arrow: object = field(default=None, repr=False)  # pyarrow.Table (parquet) or datasets.Dataset (hf)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def suffix(self) -> str:
        return {"hf": "", "jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}[self.format]


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return "hf"
        raise UserError(f"{path} is a directory but not one written by datasets.Dataset.save_to_disk")
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext in (".json", ".csv", ".parquet"):
        return ext[1:]
    raise UserError(f"{path}: unsupported file type {ext or '(none)'!r}; use .json, .jsonl, .csv, .parquet "
                    "or a save_to_disk directory")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {exc.start})") from None


def load_table(path: str | os.PathLike) -> Table:
    """Load a pool (json, jsonl, csv, parquet or a save_to_disk directory)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file or directory: {path}")
    fmt = detect_format(path)
    table = _LOADERS[fmt](path)
    table.path = path
    for i, record in enumerate(table.records):
        if not isinstance(record, dict):
            raise UserError(f"{path}: record {i} is a {type(record).__name__}, not an object with fields")
    return table


def _load_jsonl(path: Path) -> Table:
    records, raw = [], []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: malformed JSON on line {lineno}: {exc.msg}") from None
        raw.append(line)
    return Table(records, "jsonl", raw=raw)


def _load_json(path: Path) -> Table:
    text = _read_text(path)
    decoder = json.JSONDecoder()

    def fail(pos: int, msg: str) -> UserError:
        line = text.count("\n", 0, pos) + 1
        return UserError(f"{path}: malformed JSON on line {line}: {msg}")

    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: malformed JSON on line {exc.lineno}: {exc.msg}") from None
        raise UserError(f"{path}: expected a JSON array of records")
    records, raw = [], []
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                record, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise fail(exc.pos, exc.msg) from None
            records.append(record)
            raw.append(text[pos:end])
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
            elif pos < len(text) and text[pos] == "]":
                pos += 1
                break
            else:
                raise fail(pos, "expected ',' or ']' after a record")
    if _skip_ws(text, pos) != len(text):
        raise fail(pos, "extra data after the array")
    return Table(records, "json", raw=raw)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class _LineRecorder:
    """Feeds csv.reader line by line and remembers the text each row was parsed from."""

    def __init__(self, text: str) -> None:
        self._lines = iter(text.splitlines(keepends=True))
        self.consumed: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed.append(line)
        return line

    def take(self) -> str:
        taken, self.consumed = "".join(self.consumed), []
        return taken


def _load_csv(path: Path) -> Table:
    lines = _LineRecorder(_read_text(path))
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return Table([], "csv")
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV header: {exc}") from None
    header_text = lines.take()
    records, raw = [], []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"{path}: malformed CSV on line {reader.line_num}: {exc}") from None
        text = lines.take()
        if not row:
            continue
        if len(row) != len(header):
            raise UserError(f"{path}: CSV line {reader.line_num} has {len(row)} fields, the header has {len(header)}")
        records.append(dict(zip(header, row)))
        raw.append(text if text.endswith("\n") else text + "\n")
    return Table(records, "csv", raw=raw, header=header_text if header_text.endswith("\n") else header_text + "\n")


def _load_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: cannot read Parquet: {exc}") from None
    return Table(arrow.to_pylist(), "parquet", arrow=arrow)


def _load_hf(path: Path) -> Table:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot load a saved dataset: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise UserError(f"{path} holds several splits ({', '.join(ds)}); point at one split's directory")
    return Table(ds.to_list(), "hf", arrow=ds)


_LOADERS = {"json": _load_json, "jsonl": _load_jsonl, "csv": _load_csv, "parquet": _load_parquet, "hf": _load_hf}


def write_subset(table: Table, indices: Sequence[int], dest: str | os.PathLike) -> Path:
    """Write the records at `indices` (in that order) to `dest`, atomically, in the table's format."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    indices = list(indices)
    if table.format == "hf":
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
        table.arrow.select(indices).save_to_disk(str(tmp / "data"))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp / "data", dest)
        shutil.rmtree(tmp, ignore_errors=True)
        return dest
    if table.format == "parquet":
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(table.arrow.take(indices), buffer)
        atomic_write_bytes(dest, buffer.getvalue())
        return dest
    if table.raw is not None:
        chosen = [table.raw[i] for i in indices]
        if table.format == "jsonl":
            text = "".join(line + "\n" for line in chosen)
        elif table.format == "json":
            text = "[\n" + ",\n".join(chosen) + "\n]\n"
        else:
            text = table.header + "".join(chosen)
    else:  # records built in memory (Python API): write plain JSON lines
        text = "".join(json.dumps(table.records[i], ensure_ascii=False) + "\n" for i in indices)
    atomic_write_text(dest, text)
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(dest: Path, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: Path, obj: object) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def table_from_records(records: Sequence[dict]) -> Table:
    """A table for records passed in memory (the Python API); subsets are written as JSONL."""
    records = list(records)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"record {i} is a {type(record).__name__}, not a dict")
    return Table(records, "jsonl", raw=[json.dumps(r, ensure_ascii=False) for r in records])
