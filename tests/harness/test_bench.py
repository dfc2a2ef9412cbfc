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
    assert page.count("<table>") == 3 and "Paired with" in page  # the results, each method against random,
    assert "Seed-to-seed agreement" in page  # and how alike two seeds rank
    run_dir = tmp_path / "bench" / "selections" / "datawhisperer-r1-s0"
    assert main(["report", str(run_dir), "--out", str(tmp_path / "sel.html")]) == 0
    page = (tmp_path / "sel.html").read_text()
    assert "Attention weight by demonstration position" in page and "Top examples" in page


def test_bench_rejects_unknown_methods(tmp_path, capsys):
    assert main(["bench", "--pool", "p", "--test", "t", "--out", str(tmp_path), "--methods", "datawhisperer-unifrom"]) == 2
    assert "did you mean 'datawhisperer-uniform'" in capsys.readouterr().err


def test_full_pool_cell_can_be_switched_off(tmp_path, tiny_model_dir):
    from datawhisperer.cli import build_parser, config_from_args
    from datawhisperer.harness.command_configs import BenchConfig

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

    cell = out / "cells" / "length-b0.25-s0" / "result.json"
    result = json.loads(cell.read_text())
    assert result["resolved"] == {"base": "length", "weighting": None, "rounds": 1, "estimator": None,
                                  "strategy": "top", "target_filter": "off"}
    del result["resolved"]["target_filter"]  # as a cell measured before the target filter existed records it
    cell.write_text(json.dumps(result))
    assert main(args + ["--no-full"]) == 0  # what it measured then is what its name means now (no --val: off)
    result["resolved"]["strategy"] = "diverse"  # as if the name had meant another configuration when it ran
    cell.write_text(json.dumps(result))
    assert main(args + ["--no-full"]) == 2
    assert "which its name now means" in capsys.readouterr().err


def test_missing_pool_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    test = write_jsonl(tmp_path / "test.jsonl", plural_records(3))
    out = tmp_path / "bench"
    assert main(["bench", "--pool", str(tmp_path / "nope.jsonl"), "--test", test, "--out", str(out)]) == 2
    assert "--pool" in capsys.readouterr().err and not out.exists()


def test_list_options_take_several_values_or_repeat():
    from datawhisperer.cli import build_parser, config_from_args
    from datawhisperer.harness.command_configs import BenchConfig

    base = ["bench", "--pool", "p", "--test", "t", "--out", "o"]
    spaced = build_parser().parse_args(base + ["--seeds", "0", "1", "2", "--methods", "random", "ifd"])
    repeated = build_parser().parse_args(base + ["--seeds", "0", "--seeds", "1", "2", "--methods", "random",
                                                 "--methods", "ifd"])
    for args in (spaced, repeated):
        config = config_from_args(BenchConfig, args, None)
        assert config.seeds == [0, 1, 2] and config.methods == ["random", "ifd"] and config.budgets == ["0.05", "0.1"]


# --- the bench's configuration: built from the stages' own, one parser of method names ---------------------

BENCH_FLAGS = ["--pool", "--test", "--out", "--task", "--input-field", "--output-field", "--methods", "--budgets",
               "--val", "--drop", "--strata", "--score-weight", "--balance", "--composition-field", "--seeds", "--model", "--scorer-model", "--pool-limit", "--generate-limit", "--n-demos", "--n-queries",
               "--select-max-new-tokens", "--scoring", "--epochs", "--lr", "--batch-size", "--lora-r", "--max-length",
               "--eval-max-new-tokens", "--eval-batch-size", "--full", "--no-full", "--select-only", "--device", "--threads", "--quiet"]


def test_the_bench_flags_are_the_same_as_before_plus_the_strategy_and_target_options():
    import argparse

    from datawhisperer.cli import add_dataclass_arguments
    from datawhisperer.harness.command_configs import BenchConfig

    parser = argparse.ArgumentParser(add_help=False)
    add_dataclass_arguments(parser, BenchConfig)
    assert [s for action in parser._actions for s in action.option_strings] == BENCH_FLAGS


def test_each_stage_gets_what_the_bench_passes_on_under_its_own_names():
    from datawhisperer.harness.command_configs import BenchConfig

    config = BenchConfig(pool="p", test="t.jsonl", out="o", task="math", model="target", scorer_model="scorer",
                         n_demos=4, n_queries=2, select_max_new_tokens=7, eval_max_new_tokens=9, batch_size=3,
                         eval_batch_size=5, max_length=256, epochs=2, lr=0.5, lora_r=4, generate_limit=10,
                         device="cpu", quiet=True)
    select = config.select_config("datawhisperer-debiased-r3", seed=2, data="pool.jsonl", out="sel")
    assert (select.data, select.out, select.model, select.method, select.seed, select.rounds) == \
        ("pool.jsonl", "sel", "scorer", "datawhisperer", 2, 3)
    assert (select.task, select.n_demos, select.n_queries, select.max_new_tokens, select.device, select.quiet) == \
        ("math", 4, 2, 7, "cpu", True)
    assert select.resume and not select.overwrite and select.max_length is None  # --max-length is not selection's
    baseline = config.select_config("length", seed=2, data="pool.jsonl", out="sel")
    assert (baseline.method, baseline.seed, baseline.resume, baseline.overwrite) == ("length", 0, True, False)
    assert config.select_config("random", seed=2, data="p", out="o").seed == 2  # seeded: one selection per seed

    finetune = config.finetune_config(seed=1)
    assert (finetune.seed, finetune.epochs, finetune.lr, finetune.batch_size, finetune.lora_r, finetune.max_length,
            finetune.model, finetune.task) == (1, 2, 0.5, 3, 4, 256, "target", "math")
    evaluate = config.evaluate_config()
    assert (evaluate.data, evaluate.model, evaluate.max_new_tokens, evaluate.batch_size, evaluate.max_length,
            evaluate.generate_limit) == ("t.jsonl", "target", 9, 5, 256, 10)
    assert BenchConfig(pool="p", test="t", out="o").select_config("ifd", 0, "p", "o").model is None


def test_defaults_and_help_come_from_the_stage_that_uses_them():
    from dataclasses import fields

    from datawhisperer.harness.command_configs import BenchConfig, EvaluateConfig, FinetuneConfig
    from datawhisperer.select_config import SelectConfig

    bench = {f.name: f for f in fields(BenchConfig)}
    for bench_name, owner, name in (("n_demos", SelectConfig, "n_demos"), ("epochs", FinetuneConfig, "epochs"),
                                    ("eval_batch_size", EvaluateConfig, "batch_size"),
                                    ("select_max_new_tokens", SelectConfig, "max_new_tokens")):
        source = next(f for f in fields(owner) if f.name == name)
        assert bench[bench_name].default == source.default
        assert bench[bench_name].metadata["help"].endswith(source.metadata["help"])
    assert bench["eval_batch_size"].metadata["help"].startswith("evaluation: ")


@pytest.mark.parametrize("flags,message", [
    (["--eval-batch-size", "0"], "eval-batch-size must be at least 1"),
    (["--select-max-new-tokens", "0"], "select-max-new-tokens must be at least 1"),
    (["--eval-max-new-tokens", "0"], "eval-max-new-tokens must be at least 1"),
    (["--batch-size", "0"], "batch-size must be at least 1"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--lr", "0"], "lr must be positive"),
    (["--device", "gpu"], "device must be one of auto, cpu, cuda, mps"),
    (["--scoring", "vote"], "scoring must be one of generate, likelihood"),
    (["--budgets", "2.5"], "budget '2.5' is neither a fraction"),
    (["--methods", "randm"], "unknown method 'randm'; did you mean 'random'?"),
])
def test_bad_bench_options_are_refused_before_any_cell_in_the_bench_flag_names(tmp_path, capsys, flags, message):
    out = tmp_path / "bench"
    assert main(["bench", "--pool", "p", "--test", "t", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("name,parsed", [
    ("datawhisperer", ("datawhisperer", None, 1, "calibrated", "top", "auto")),  # the default configuration
    ("datawhisperer-paper", ("datawhisperer", "paper", 1, "paper", "top", "auto")),
    ("datawhisperer-uniform", ("datawhisperer", "uniform", 1, "paper", "top", "auto")),
    ("datawhisperer-debiased-r3", ("datawhisperer", "debiased", 3, "paper", "top", "auto")),
    ("datawhisperer-r2", ("datawhisperer", "paper", 2, "paper", "top", "auto")),
    ("datawhisperer-calibrated", ("datawhisperer", None, 1, "calibrated", "top", "auto")),
    ("datawhisperer-calibrated-stratified", ("datawhisperer", None, 1, "calibrated", "stratified", "auto")),
    ("datawhisperer-paper-r3-diverse", ("datawhisperer", "paper", 3, "paper", "diverse", "auto")),
    ("ifd", ("ifd", None, 1, None, "top", "auto")),
    ("rds-diverse", ("rds", None, 1, None, "diverse", "auto")),
    ("nuggets", ("nuggets", None, 1, None, "top", "auto")),
    ("datawhisperer-calibrated-unfiltered", ("datawhisperer", None, 1, "calibrated", "top", "off")),
    ("datawhisperer-calibrated-stratified-unfiltered", ("datawhisperer", None, 1, "calibrated", "stratified", "off")),
])
def test_method_names(name, parsed):
    from datawhisperer.harness.command_configs import parse_method

    assert tuple(parse_method(name)) == parsed


def test_seeded_methods_select_once_per_seed():
    from datawhisperer.harness.command_configs import parse_method

    assert parse_method("datawhisperer-paper").seeded and parse_method("random").seeded
    assert not parse_method("length").seeded and not parse_method("ifd").seeded


@pytest.mark.parametrize("name,message", [
    ("datawhisperer-unifrom", "did you mean 'datawhisperer-uniform'?"),
    ("datawhisperer-paper-x", "did you mean 'datawhisperer-paper'?"),
    ("datawhisperer-", "unknown method 'datawhisperer-'"),
    ("datawhisperer-paper-r0", "rounds must be at least 1"),
    ("gradn", "did you mean 'grand'?"),
    ("rds-unfiltered-diverse", "unknown method 'rds-unfiltered-diverse'"),  # one spelling: strategy, then -unfiltered
    ("rds-unfiltered-unfiltered", "unknown method"),
    ("bm25", "unknown method 'bm25' (known: datawhisperer, datawhisperer-calibrated, datawhisperer-debiased"),
])
def test_unknown_method_names(name, message):
    from datawhisperer.errors import UserError
    from datawhisperer.harness.command_configs import parse_method

    with pytest.raises(UserError) as caught:
        parse_method(name)
    assert message in str(caught.value)


def test_a_protocol_holds_the_balance_its_pool_came_to_and_an_old_auto_reads_as_it_then_was(tmp_path, tiny_model_dir,
                                                                                           capsys):
    args = bench_args(tmp_path, tiny_model_dir)
    args[args.index("--methods"):args.index("--budgets")] = ["--methods", "length"]
    args[args.index("--seeds"):args.index("--epochs")] = ["--seeds", "0"]
    out = tmp_path / "bench"
    assert main(args + ["--no-full"]) == 0
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["settings"]["balance"] == "answer-length"  # auto over answers that are not labels
    for saved in ("auto", None):  # saved when auto grouped labels only, or before --balance existed: no groups
        if saved is None:
            del protocol["settings"]["balance"]
        else:
            protocol["settings"]["balance"] = saved
        (out / "protocol.json").write_text(json.dumps(protocol))
        assert main(args + ["--no-full"]) == 2
        assert "balance: 'off' -> 'answer-length'" in capsys.readouterr().err
        assert main(args + ["--no-full", "--balance", "off"]) == 0
