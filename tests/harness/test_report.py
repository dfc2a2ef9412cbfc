"""The HTML report: Markdown code spans rendered, and the pool's records found from any directory."""

import json

from conftest import plural_records, write_jsonl

from datawhisperer.cli import main
from datawhisperer.harness.report import _markdown_blocks


def test_markdown_code_spans_become_escaped_code_elements():
    text = ("# Benchmark results\n\nPool `data/<pool>.jsonl` (limit None), task `math & more`.\n\n"
            "| method | `budget` |\n|---|---|\n| `random` | 0.1 |")
    page = _markdown_blocks(text)
    assert "`" not in page
    assert "<code>data/&lt;pool&gt;.jsonl</code>" in page and "<code>math &amp; more</code>" in page
    assert "<th><code>budget</code></th>" in page and "<td><code>random</code></td>" in page


def _select_here(tmp_path, monkeypatch) -> tuple:
    """A run made in work/ with relative paths, as a user types them; a decoy pool.jsonl elsewhere."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    records = [{"text": f"pooled {r['text']}", "label": r["label"]} for r in plural_records(12)]
    write_jsonl(work / "pool.jsonl", records)
    write_jsonl(elsewhere / "pool.jsonl", [{"text": "decoy", "label": "decoys"}] * 12)
    monkeypatch.chdir(work)
    assert main(["select", "pool.jsonl", "--backend", "fake", "--task", "classification", "--out", "runs/first",
                 "--budget", "0.25", "--quiet"]) == 0
    monkeypatch.chdir(elsewhere)
    return work / "runs" / "first", records


def _record_cells(page: str) -> list[str]:
    return [cell for cell in page.split("<td>") if cell.startswith("<pre>")]


def test_records_are_shown_when_the_report_is_made_from_another_directory(tmp_path, monkeypatch):
    run_dir, records = _select_here(tmp_path, monkeypatch)
    assert main(["report", str(run_dir), "--out", "report.html"]) == 0
    page = (tmp_path / "elsewhere" / "report.html").read_text()
    cells = _record_cells(page)
    assert cells and all("pooled" in c for c in cells) and "decoy" not in page


def test_a_relative_pool_path_of_an_older_run_is_found_and_checked(tmp_path, monkeypatch):
    run_dir, records = _select_here(tmp_path, monkeypatch)
    run_file = run_dir / "run.json"
    info = json.loads(run_file.read_text())
    info["config"]["data"] = "pool.jsonl"  # as runs recorded it before paths were made absolute
    run_file.write_text(json.dumps(info))
    assert main(["report", str(run_dir), "--out", "old.html"]) == 0
    page = (tmp_path / "elsewhere" / "old.html").read_text()
    assert _record_cells(page) and "decoy" not in page  # the decoy here has the same name, not the same content

    write_jsonl(tmp_path / "work" / "pool.jsonl", records[::-1])  # the pool changed since the run
    (tmp_path / "elsewhere" / "pool.jsonl").unlink()
    assert main(["report", str(run_dir), "--out", "changed.html"]) == 0
    page = (tmp_path / "elsewhere" / "changed.html").read_text()
    assert not _record_cells(page) and "is not the pool this run scored" in page


def test_a_selection_report_shows_the_runs_reliability(tmp_path):
    from conftest import labelled_records

    import datawhisperer
    from datawhisperer.backends.fake import FakeBackend
    from datawhisperer.harness.command_configs import ReportConfig
    from datawhisperer.harness.report import report

    out = tmp_path / "run"
    datawhisperer.select(labelled_records(24), backend_instance=FakeBackend(), task="classification", rounds=2,
                         n_demos=3, n_queries=2, out=str(out), quiet=True, estimator="paper")
    page = report(ReportConfig(str(out))).read_text()
    assert "<h2>Reliability</h2>" in page and "halves by rounds" in page


def test_the_report_shows_what_rounds_auto_decided(tmp_path):
    from conftest import labelled_records

    import datawhisperer
    from datawhisperer.backends.fake import FakeBackend
    from datawhisperer.harness.command_configs import ReportConfig
    from datawhisperer.harness.report import report

    out = tmp_path / "run"
    datawhisperer.select(labelled_records(40), backend_instance=FakeBackend(), task="classification", rounds="auto",
                         estimator="calibrated", panel=4, max_rounds=2, target_reliability=1.0, out=str(out), quiet=True)
    page = report(ReportConfig(str(out))).read_text()
    assert "rounds_played" in page and "reliability_by_round" in page and "halves by panel queries" in page
