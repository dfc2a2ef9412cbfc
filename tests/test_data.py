import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datawhisperer.data import load_table, write_subset
from datawhisperer.errors import UserError

RECORDS = [{"text": f"row {i}", "label": f"L{i}", "extra": {"nested": [i, 2 * i], "note": "é"}} for i in range(6)]


def test_jsonl_subset_is_byte_for_byte(tmp_path):
    lines = ['{"text": "a",   "label": "x", "odd":  1}', '{"label":"y","text":"b"}', '{"text": "c", "label": "z"}']
    src = tmp_path / "pool.jsonl"
    src.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    table = load_table(src)
    assert len(table) == 3 and table.records[0]["odd"] == 1
    out = write_subset(table, [2, 0], tmp_path / "sel.jsonl")
    assert out.read_text(encoding="utf-8") == lines[2] + "\n" + lines[0] + "\n"


def test_json_array_subset_keeps_each_record_text(tmp_path):
    src = tmp_path / "pool.json"
    src.write_text('[\n  {"text": "a", "label": "x"},\n  {"text":"b",\n   "label":"y"}\n]', encoding="utf-8")
    table = load_table(src)
    out = write_subset(table, [1], tmp_path / "sel.json")
    assert '{"text":"b",\n   "label":"y"}' in out.read_text(encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8")) == [{"text": "b", "label": "y"}]


def test_csv_subset_keeps_rows_with_embedded_newlines(tmp_path):
    src = tmp_path / "pool.csv"
    src.write_text('text,label\n"multi\nline",a\nplain,"b, c"\n', encoding="utf-8")
    table = load_table(src)
    assert table.records == [{"text": "multi\nline", "label": "a"}, {"text": "plain", "label": "b, c"}]
    out = write_subset(table, [1, 0], tmp_path / "sel.csv")
    assert out.read_text(encoding="utf-8") == 'text,label\nplain,"b, c"\n"multi\nline",a\n'


def test_parquet_round_trip_keeps_schema(tmp_path):
    src = tmp_path / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), src)
    table = load_table(src)
    out = write_subset(table, [3, 1], tmp_path / "sel.parquet")
    back = pq.read_table(out)
    assert back.schema == pq.read_table(src).schema
    assert back.to_pylist() == [RECORDS[3], RECORDS[1]]


def test_save_to_disk_directory(tmp_path):
    import datasets

    datasets.Dataset.from_list(RECORDS).save_to_disk(str(tmp_path / "ds"))
    table = load_table(tmp_path / "ds")
    assert table.format == "hf" and len(table) == 6
    out = write_subset(table, [5, 0], tmp_path / "sel")
    assert datasets.load_from_disk(str(out)).to_list() == [RECORDS[5], RECORDS[0]]


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", '{"a": 1}\n{"a": 2\n', "line 2"),
    ("bad.json", '[{"a": 1},\n {"a": }]', "line 2"),
    ("bad.json", '{"a": 1}', "JSON array"),
    ("bad.jsonl", '[1, 2]\n', "not an object"),
    ("bad.csv", 'a,b\n1,2,3\n', "3 fields"),
    ("bad.txt", 'hello', "unsupported file type"),
])
def test_malformed_files_get_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        load_table(path)
    assert "\n" not in str(info.value)


def test_wrong_encoding_and_missing_file(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_table(path)
    with pytest.raises(UserError, match="no such file"):
        load_table(tmp_path / "missing.jsonl")
