import json

import pytest
from conftest import plural_records, write_jsonl

from datawhisperer.cli import main
from datawhisperer.harness import bench as bench_module


def bench_args(tmp_path, tiny_model_dir):
    pool = write_jsonl(tmp_path / "pool.jsonl", plural_records(16))
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(5))
    return ["bench", "--pool", pool, "--test", test, "--out", str(tmp_path / "bench"), "--task", "classification",
            "--model", str(tiny_model_dir), "--methods", "datawhisperer-paper", "--methods", "datawhisperer-debiased",
            "--methods", "random", "--methods", "length", "--budgets", "0.25", "--seeds", "0", "--seeds", "1",
            "--epochs", "1", "--lora-r", "2", "--n-demos", "3", "--n-queries", "2", "--select-max-new-tokens", "2",
            "--eval-max-new-tokens", "2", "--generate-limit", "3", "--quiet"]


def test_bench_runs_every_cell_and_resumes_without_redoing_any(tmp_path, tiny_model_dir, monkeypatch):
    args = bench_args(tmp_path, tiny_model_dir)
    assert main(args) == 0
    out = tmp_path / "bench"
    results = json.loads((out / "results.json").read_text())
    assert len(results["cells"]) == 8 and len(results["full"]) == 2 and results["zero_shot"]["loss"] > 0
    cell = results["cells"][0]
    for key in ("method", "budget", "seed", "score", "loss", "selection_seconds", "finetune_seconds"):
        assert cell[key] is not None
    # one Data Whisperer selection per seed serves every weighting
    assert sorted(p.name for p in (out / "selections").iterdir()) == [
        "datawhisperer-r1-s0", "datawhisperer-r1-s1", "length", "random-s0", "random-s1"]
    assert (out / "charts" / "score.png").exists() and "| random | 0.25 |" in (out / "results.md").read_text()
    summary = {(r["method"], r["budget"]): r for r in results["summary"]}
    assert summary[("random", 0.25)]["seeds"] == 2 and summary[("random", 0.25)]["str"] is not None

    # a selection resumed over several sittings is charged for every sitting
    run_file = out / "selections" / "datawhisperer-r1-s1" / "run.json"
    info = json.loads(run_file.read_text())
    info["resumed_episode_seconds"] = 100.0
    run_file.write_text(json.dumps(info))
    (out / "cells" / "datawhisperer-paper-b0.25-s1" / "result.json").unlink()
    assert main(args) == 0
    redone = json.loads((out / "cells" / "datawhisperer-paper-b0.25-s1" / "result.json").read_text())
    assert redone["selection_seconds"] == pytest.approx(info["selection_seconds"] + 100.0)

    def no_work(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(bench_module.Bench, "train_and_evaluate", no_work)
    monkeypatch.setattr(bench_module.Bench, "selection", no_work)
    assert main(args) == 0  # everything is finished: nothing runs again
    (out / "cells" / "length-b0.25-s1" / "result.json").unlink()
    with pytest.raises(AssertionError, match="recomputed"):
        main(args)  # exactly the missing cell is redone


def test_report_pages(tmp_path, tiny_model_dir):
    assert main(bench_args(tmp_path, tiny_model_dir)[:-1] + ["--quiet"]) == 0
    assert main(["report", str(tmp_path / "bench")]) == 0
    page = (tmp_path / "bench" / "report.html").read_text()
    assert "data:image/png;base64," in page and "datawhisperer-debiased" in page
    assert page.count("<table>") == 2 and "Paired with" in page  # the results, then each method against random
    run_dir = tmp_path / "bench" / "selections" / "datawhisperer-r1-s0"
    assert main(["report", str(run_dir), "--out", str(tmp_path / "sel.html")]) == 0
    page = (tmp_path / "sel.html").read_text()
    assert "Attention weight by demonstration position" in page and "Top examples" in page


def test_bench_rejects_unknown_methods(tmp_path, capsys):
    assert main(["bench", "--pool", "p", "--test", "t", "--out", str(tmp_path), "--methods", "datawhisperer-unifrom"]) == 2
    assert "did you mean 'uniform'" in capsys.readouterr().err


def test_full_pool_cell_can_be_switched_off(tmp_path, tiny_model_dir):
    from datawhisperer.cli import build_parser, config_from_args
    from datawhisperer.harness.configs import BenchConfig

    args = bench_args(tmp_path, tiny_model_dir)
    assert config_from_args(BenchConfig, build_parser().parse_args(args), None).full is True
    off = build_parser().parse_args(args + ["--no-full"])
    assert config_from_args(BenchConfig, off, None).full is False


def test_scorer_model_selects_and_the_target_model_is_fine_tuned(tmp_path, tiny_model_dir):
    from conftest import byte_tokenizer, tiny_model

    scorer_dir = tmp_path / "scorer"
    tokenizer = byte_tokenizer()
    tiny_model("llama", tokenizer, seed=1, layers=2, hidden=32).save_pretrained(scorer_dir)
    tokenizer.save_pretrained(scorer_dir)
    args = bench_args(tmp_path, tiny_model_dir)
    args[args.index("--methods"):args.index("--budgets")] = ["--methods", "datawhisperer-paper"]
    assert main(args + ["--scorer-model", str(scorer_dir), "--no-full"]) == 0
    out = tmp_path / "bench"
    run = json.loads((out / "selections" / "datawhisperer-r1-s0" / "run.json").read_text())
    assert run["model"]["model"] == str(scorer_dir) and run["model"]["num_layers"] == 2
    tuned = json.loads((out / "cells" / "datawhisperer-paper-b0.25-s0" / "result.json").read_text())
    assert tuned["model"] == str(tiny_model_dir)
    assert not (out / "full").exists()  # --no-full: no full-pool fine-tune


def test_bench_refuses_to_mix_settings_or_data_but_not_paths(tmp_path, tiny_model_dir, capsys):
    args = bench_args(tmp_path, tiny_model_dir)
    args[args.index("--methods"):args.index("--budgets")] = ["--methods", "length"]
    args[args.index("--seeds"):args.index("--epochs")] = ["--seeds", "0"]
    assert main(args + ["--no-full"]) == 0
    out = tmp_path / "bench"
    cells = sorted(p.name for p in (out / "cells").iterdir())

    assert main(args + ["--no-full", "--lr", "0.01"]) == 2  # another learning rate
    assert "other settings (lr: 0.0001 -> 0.01)" in capsys.readouterr().err
    pool = args[args.index("--pool") + 1]
    with open(pool, "a", encoding="utf-8") as fh:
        fh.write('{"text": "new 99", "label": "news 99"}\n')  # the same path, other data
    assert main(args + ["--no-full"]) == 2
    assert "pool (content)" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "cells").iterdir()) == cells  # nothing was added or removed

    moved = tmp_path / "elsewhere.jsonl"
    moved.write_text("".join(open(pool, encoding="utf-8").readlines()[:-1]), encoding="utf-8")
    args[args.index("--pool") + 1] = str(moved)  # the original data under another path: the same benchmark
    assert main(args + ["--no-full", "--seeds", "1"]) == 0
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(cells + ["length-b0.25-s1"])
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["lr"] == 0.0001 and "methods" not in results["config"]


def test_missing_pool_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(3))
    out = tmp_path / "bench"
    assert main(["bench", "--pool", str(tmp_path / "nope.jsonl"), "--test", test, "--out", str(out)]) == 2
    assert "--pool" in capsys.readouterr().err and not out.exists()


def test_list_options_take_several_values_or_repeat():
    from datawhisperer.cli import build_parser, config_from_args
    from datawhisperer.harness.configs import BenchConfig

    base = ["bench", "--pool", "p", "--test", "t", "--out", "o"]
    spaced = build_parser().parse_args(base + ["--seeds", "0", "1", "2", "--methods", "random", "ifd"])
    repeated = build_parser().parse_args(base + ["--seeds", "0", "--seeds", "1", "2", "--methods", "random",
                                                 "--methods", "ifd"])
    for args in (spaced, repeated):
        config = config_from_args(BenchConfig, args, None)
        assert config.seeds == [0, 1, 2] and config.methods == ["random", "ifd"] and config.budgets == ["0.05", "0.1"]
