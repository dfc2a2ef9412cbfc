import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_varied, labelled_records, plural_records, read_episodes, write_jsonl

from datawhisperer.cli import main

FAKE = ["--backend", "fake", "--task", "classification", "--estimator", "paper", "--strategy", "top", "--n-demos", "3",
        "--n-queries", "2", "--quiet"]


def run_cli(*args):
    return main([str(a) for a in args])


def test_select_writes_every_output(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(24))
    out = tmp_path / "out"
    assert run_cli("select", pool, "--out", out, "--budget", "0.1", "--budget", "0.25", "--balance", "off", *FAKE) == 0
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(24))
    assert all(r["appearances"] >= 1 and isinstance(r["score"], float) for r in rows)
    assert_varied([r["score"] for r in rows])  # else "best first" below holds for any order
    lines = (tmp_path / "pool.jsonl").read_text().splitlines()
    best = sorted(rows, key=lambda r: (-r["score"], r["index"]))
    selected = (out / "selected-0.1.jsonl").read_text().splitlines()
    assert selected == [lines[r["index"]] for r in best[:2]]  # floor(0.1 * 24) = 2, best first, verbatim
    assert len((out / "selected-0.25.jsonl").read_text().splitlines()) == 6
    info = json.loads((out / "run.json").read_text())
    for key in ("config", "model", "layer", "episodes", "failed_episodes", "selection_seconds",
                "model_load_seconds", "peak_rss_mb"):
        assert key in info
    assert info["episodes"] == 8 and info["failed_episodes"] == 0
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 8 and all(len(e["weights"]) == 3 and len(e["query_scores"]) == 2 for e in episodes)
    # scores.jsonl is the credit of episodes.jsonl: sum over episodes of weight x summed query scores,
    # over the query scorings received; the weights are the attention normalised
    credit, scorings = [0.0] * 24, [0] * 24
    for e in read_episodes(out):
        assert e["weights"] == pytest.approx([a / sum(e["attention"]) for a in e["attention"]], rel=1e-12)
        for demo, weight in zip(e["demos"], e["weights"]):
            credit[demo] += weight * sum(e["query_scores"])
            scorings[demo] += len(e["query_scores"])
    assert [r["score"] for r in rows] == pytest.approx([c / n for c, n in zip(credit, scorings)], rel=1e-9)


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "hf"])
def test_selected_subset_keeps_the_input_format(tmp_path, fmt):
    records = plural_records(20)
    if fmt == "json":
        pool = tmp_path / "pool.json"
        pool.write_text(json.dumps(records, indent=1))
    elif fmt == "csv":
        pool = tmp_path / "pool.csv"
        pool.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in records))
    elif fmt == "parquet":
        pool = tmp_path / "pool.parquet"
        pq.write_table(pa.Table.from_pylist(records), pool)
    else:
        import datasets

        pool = tmp_path / "pool_ds"
        datasets.Dataset.from_list(records).save_to_disk(str(pool))
    out = tmp_path / "out"
    assert run_cli("select", pool, "--out", out, "--budget", "0.2", *FAKE) == 0
    suffix = {"hf": ""}.get(fmt, "." + fmt)
    selected = out / f"selected-0.2{suffix}"
    assert selected.exists()
    from datawhisperer.data import load_table

    chosen = load_table(selected).records
    assert len(chosen) == 4 and all(r in records for r in chosen)


def test_chat_records(tmp_path):
    records = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"q{i}"}]}
               for i in range(12)]
    pool = write_jsonl(tmp_path / "chat.jsonl", records)
    assert run_cli("select", pool, "--out", tmp_path / "out", *FAKE) == 0


def test_unparseable_answers_fail_episodes_and_are_never_scored_zero(tmp_path):
    import datawhisperer
    from datawhisperer.backends.fake import FakeBackend
    from datawhisperer.errors import UserError

    out = tmp_path / "out"
    with pytest.raises(UserError, match="no example could be scored"):  # and so no subset is written
        datawhisperer.select(plural_records(12), backend_instance=FakeBackend(answer_fn=lambda suffix: "no idea"),
                             task="classification", query_mode="multi", max_retries=1, n_demos=3, n_queries=2,
                             out=str(out), quiet=True, estimator="paper")
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and not list(out.glob("selected-*"))
    # 4 planned episodes, each re-drawn once; then each of its 3 demonstrations gets make-up tries in new
    # company (one target per make-up, given up after 1 + max_retries failures): 4 x (2 + 3 x 2)
    assert info["episodes"] == 0 and info["failed_episodes"] == 32
    assert info["failure_reasons"] == {"numbered answers could not be parsed": 32}
    assert info["unscored_examples"] == 12 and info["unscored_reasons"] == {"every episode failed": 12}


def test_prompt_longer_than_context_drops_demonstrations(tmp_path):
    records = [{"text": ("long " * 40 if i % 3 == 0 else "w") + str(i), "label": str(i)} for i in range(18)]
    pool = write_jsonl(tmp_path / "pool.jsonl", records)
    out = tmp_path / "out"
    assert run_cli("select", pool, "--out", out, "--max-length", "70", *FAKE) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["truncated_episodes"] > 0 and info["demonstrations_dropped_for_context"] > 0


def test_tiny_hf_model_directory_end_to_end(tmp_path, tiny_model_dir):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(10))
    out = tmp_path / "out"
    assert run_cli("select", pool, "--out", out, "--model", tiny_model_dir, "--task", "classification",
                   "--n-demos", "2", "--n-queries", "2", "--max-new-tokens", "3", "--quiet", "--metric",
                   "label_match") == 0  # (exact_match needs whole answers, which a random model never ends)
    info = json.loads((out / "run.json").read_text())
    assert info["model"]["architecture"] == "LlamaForCausalLM" and info["layer"] == 1
    assert len((out / "scores.jsonl").read_text().splitlines()) == 10


BAD = [
    (["missing.jsonl"], "no such file"),
    (["bad.jsonl"], "malformed JSON on line 2"),
    (["latin.jsonl"], "not UTF-8"),
    (["nofield.jsonl"], "record 1 has no field 'label'"),
    (["empty.jsonl"], "holds no records"),
    (["small.jsonl"], "fewer than n_demos + n_queries"),
    (["pool.jsonl", "--budget", "1.5"], "neither a fraction in (0, 1]"),
    (["pool.jsonl", "--budget", "ten"], "not a number"),
    (["pool.jsonl", "--budget", "0"], "neither a fraction in (0, 1]"),
    (["pool.jsonl", "--task", "clasification"], "did you mean 'classification'"),
    (["pool.jsonl", "--metric", "rougel"], "did you mean 'rouge_l'"),
    (["pool.jsonl", "--n-demos", "0"], "n-demos must be at least 1"),
    (["pool.jsonl", "--n-queries", "0"], "n-queries must be at least 1"),
    (["pool.jsonl", "--backend", "hf", "--model", "no/such/dir"], "not found"),
    (["pool.jsonl", "--layer", "99"], "layer 99 is outside the model"),
    (["pool.jsonl", "--scoring", "likelihood", "--query-mode", "multi"], "use it with --query-mode single"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_one_line_error_nothing_written(tmp_path, capsys, args, message):
    write_jsonl(tmp_path / "pool.jsonl", plural_records(12))
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "b"}\n{"text": \n')
    (tmp_path / "latin.jsonl").write_bytes('{"text": "caf\xe9", "label": "x"}\n'.encode("latin-1"))
    write_jsonl(tmp_path / "nofield.jsonl", [{"text": "a", "label": "b"}, {"text": "c"}])
    (tmp_path / "empty.jsonl").write_text("")
    write_jsonl(tmp_path / "small.jsonl", plural_records(4))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    code = run_cli("select", tmp_path / args[0], "--out", out, *FAKE, *args[1:])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_refuses_to_mix_with_another_run(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(12))
    out = tmp_path / "out"
    assert run_cli("select", pool, "--out", out, *FAKE) == 0
    before = (out / "scores.jsonl").read_bytes()
    assert run_cli("select", pool, "--out", out, *FAKE, "--seed", "5") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "scores.jsonl").read_bytes() == before
    assert run_cli("select", pool, "--out", out, *FAKE, "--seed", "5", "--overwrite") == 0


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "datawhisperer", "select", str(tmp_path / "x.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"datawhisperer select: error: no such file or directory: {tmp_path / 'x.jsonl'}"


def test_python_api_mirrors_the_cli(tmp_path):
    import datawhisperer

    records = labelled_records(16)
    selection = datawhisperer.select(records, backend="fake", task="classification", n_demos=3, n_queries=2,
                                     quiet=True, budget=[0.25], estimator="paper")
    assert len(selection.scores) == 16 and (selection.appearances >= 1).all()
    assert_varied(selection.scores.tolist())  # so the first of the subset is the best for a reason
    subset = selection.subset(0.25)
    assert len(subset) == 4 and subset[0] == records[int(selection.ranking()[0])]


def test_budget_as_percent(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(20))
    assert run_cli("select", pool, "--out", tmp_path / "out", "--budget", "10%", *FAKE) == 0
    assert len((tmp_path / "out" / "selected-10%.jsonl").read_text().splitlines()) == 2


def test_unwritable_output_and_broken_model_are_one_line_errors(tmp_path, capsys, tiny_model_dir):
    import shutil

    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(12))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_cli("select", pool, "--out", blocker / "sub", *FAKE) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    assert run_cli("select", pool, "--out", tmp_path / "o2", "--model", broken, "--task", "classification",
                   "--quiet") == 2
    err = capsys.readouterr().err
    assert "cannot load the model" in err and len(err.strip().splitlines()) == 1


def test_a_layer_outside_the_model_is_reported_before_any_weights_load(tmp_path, monkeypatch, capsys):
    """A GGUF model is converted (its weights read) on first use: the config alone must catch --layer 999."""
    from test_models import write_tiny_gguf

    cache = tmp_path / "cache"
    monkeypatch.setenv("DATAWHISPERER_CACHE", str(cache))
    model = write_tiny_gguf(tmp_path / "tiny.gguf", layers=2)
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(12))
    code = run_cli("select", pool, "--out", tmp_path / "out", "--model", model, "--layer", "999", "--quiet",
                   "--task", "classification")
    err = capsys.readouterr().err
    assert code == 2 and "layer 999 is outside the model, which has 2 layers" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    assert not cache.exists() or not any(cache.rglob("*.safetensors"))  # nothing was converted



def test_version_is_one_value_for_the_cli_and_the_package(capsys):
    import datawhisperer
    from datawhisperer.version import __version__

    assert datawhisperer.__version__ == __version__
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"datawhisperer {__version__}"


LOWER_LAYERS = ("backends", "models", "selection", "scoring", "data", "episodes", "player", "prompts", "attention",
                "metrics", "tasks", "answers", "registry", "errors", "version", "distributed", "memory", "rundir",
                "fingerprint")
COMMAND_LINE_LAYER = ("datawhisperer.select_config", "datawhisperer.cli", "datawhisperer.api", "datawhisperer.harness",
                      "datawhisperer.__init__")


def _imports(path, package: str, src) -> set[str]:
    """The modules a file imports, relative imports resolved; `from . import x` counts as the package's
    __init__ unless x is a submodule (`from . import __version__` reads the package's public face)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found.add(module)
            if node.module is None:
                for alias in node.names:
                    submodule = src.parent.joinpath(*module.split("."), alias.name)
                    is_submodule = submodule.is_dir() or submodule.with_suffix(".py").exists()
                    found.add(f"{module}.{alias.name}" if is_submodule else f"{module}.__init__")
    return found


def test_lower_layers_import_nothing_from_the_command_line_layer():
    from pathlib import Path

    import datawhisperer

    src = Path(datawhisperer.__file__).parent
    offending = {}
    for name in LOWER_LAYERS:
        paths = sorted((src / name).glob("*.py")) if (src / name).is_dir() else [src / f"{name}.py"]
        for path in paths:
            package = ".".join(("datawhisperer", *path.parent.relative_to(src).parts))
            bad = sorted(m for m in _imports(path, package, src) if m.startswith(COMMAND_LINE_LAYER))
            if bad:
                offending[path.relative_to(src).as_posix()] = bad
    assert not offending


@pytest.mark.parametrize("command", ["select", "subset", "merge", "bench", "finetune", "evaluate", "report"])
def test_every_command_prints_its_help(command, capsys):
    """argparse formats help text with %: a literal one ("5%") used to end --help in a traceback."""
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "--" in capsys.readouterr().out
