"""The `datawhisperer` command. Flags are generated from the config dataclasses, so the CLI, the
Python API and `--config file.yaml` (defaults that flags override) always agree."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable

from .errors import UserError
from .registry import import_object


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _base_type(annotation) -> type:
    hints = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if str in hints:  # a number or a word (--rounds 3, --rounds auto): the config reads it
        return str
    inner = hints[0]
    if typing.get_origin(inner) in (list, tuple):
        return typing.get_args(inner)[0]
    return inner if isinstance(inner, type) else str


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        help_text = import_object(meta["help_from"])() if "help_from" in meta else meta.get("help", "")
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        show_default = "default" not in help_text
        if f.default == "" and not meta.get("positional"):
            help_text, show_default = f"{help_text} (required)", False
        flag = "--" + f.name.replace("_", "-")
        annotation = hints[f.name]
        if meta.get("positional"):
            parser.add_argument(f.name, help=help_text, nargs=meta.get("nargs"))
        elif annotation is bool:
            # a field that defaults to on needs a way off: --full / --no-full
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            parser.add_argument(flag, action=action, default=argparse.SUPPRESS, help=help_text)
        elif meta.get("repeat"):  # both `--seeds 0 1 2` and `--seeds 0 --seeds 1`
            parser.add_argument(flag, dest=f.name, action="extend", nargs="+", default=argparse.SUPPRESS,
                                type=_base_type(annotation), help=f"{help_text} (default: {' '.join(map(str, f.default))})" if show_default else help_text)
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            parser.add_argument(flag, dest=f.name, type=_base_type(annotation), default=argparse.SUPPRESS,
                                metavar=f.name.upper(),
                                help=f"{help_text} (default: {default})" if show_default else help_text)


def config_from_args(cls, args: argparse.Namespace, config_file: str | None):
    """Field values: dataclass defaults < --config YAML < command-line flags."""
    values: dict = {}
    if config_file:
        values.update(_read_config_file(config_file, cls))
    values.update({k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(cls)}})
    return cls(**values)


def _read_config_file(path: str, cls) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must be a mapping of option names to values")
    known = {f.name for f in dataclasses.fields(cls)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{path}: unknown options {unknown}")
    return data


# --- commands ---------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str, build: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable) -> Callable:
        COMMANDS[name] = (help_text, build, run)
        return run

    return register


def _dataclass_command(name: str, help_text: str, config_path: str, run_path: str) -> None:
    """A command whose flags are one config dataclass and whose body is one function taking it."""

    def build(parser: argparse.ArgumentParser) -> None:
        add_dataclass_arguments(parser, import_object(config_path))
        parser.add_argument("--config", help="YAML file of option defaults; flags override it")

    def run(args: argparse.Namespace) -> int:
        import_object(run_path)(config_from_args(import_object(config_path), args, args.config))
        return 0

    command(name, help_text, build)(run)


_dataclass_command("select", "score a pool and write the selected subsets",
                   "datawhisperer.select_config:SelectConfig", "datawhisperer.runner:select")
_dataclass_command("subset", "pick subsets again from a finished run's scores, with any strategy and budget",
                   "datawhisperer.subset:SubsetConfig", "datawhisperer.subset:subset")
_dataclass_command("merge", "combine the shards of a `select --shard i/n` run into one run's outputs",
                   "datawhisperer.merge:MergeConfig", "datawhisperer.merge:merge")
_dataclass_command("finetune", "LoRA fine-tuning on a (selected) dataset",
                   "datawhisperer.harness.command_configs:FinetuneConfig", "datawhisperer.harness.finetune:finetune")
_dataclass_command("bench", "select with several methods, fine-tune on each subset, evaluate and compare",
                   "datawhisperer.harness.command_configs:BenchConfig", "datawhisperer.harness.bench:bench")
_dataclass_command("report", "a self-contained HTML page for a selection run or a bench directory",
                   "datawhisperer.harness.command_configs:ReportConfig", "datawhisperer.harness.report:report")
_dataclass_command("evaluate", "task metric and gold-answer loss of a model on a test set",
                   "datawhisperer.harness.command_configs:EvaluateConfig", "datawhisperer.harness.evaluate:evaluate")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = _Parser(prog="datawhisperer", description="Data selection for task-specific fine-tuning with the "
                     "target model's own few-shot in-context learning (Data Whisperer).")
    parser.add_argument("--version", action="version", version=f"datawhisperer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, build, run) in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        build(child)
        child.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"datawhisperer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the user named cannot be written or read
        where = f": {exc.filename}" if exc.filename else ""
        print(f"datawhisperer {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("datawhisperer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
