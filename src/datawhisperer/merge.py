"""`datawhisperer merge`: combine independent shards (`select --shard i/n`) into one run's outputs.

The shards must come from one plan (same fingerprint: data, model, seed, settings), be finished,
and cover it exactly: each i of n once, and all the work shard i owns present (its episodes, or a
baseline's parts): the method's `merge` checks and combines it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

from .embedding import merge_embedding, plan_embeddings
from .errors import UserError
from .inputs import check_inputs
from .methods import METHODS
from .rundir import RunDirectory, describe_differences
from .runner import common_info, stderr, summary, write_outputs
from .select_config import SelectConfig, option


@dataclass
class MergeConfig:
    shards: list[str] = option((), "the shard directories written by `select --shard i/n`", positional=True, nargs="+")
    out: str = option("", "directory for the merged scores.jsonl, selected-<B>.<ext>, run.json, episodes.jsonl")
    budget: list[str] | None = option(None, "budgets to write (default: the shards' own); one or more", repeat=True)
    strategy: str | None = option(None, "how each budget is filled: top, stratified, diverse (default: the shards')")
    weighting: str | None = option(None, "demonstration weights: paper, uniform, debiased (default: the shards')")
    data: str | None = option(None, "the pool, if it moved since the shards ran (its content must be unchanged)")
    overwrite: bool = option(False, "replace another run's files in --out")
    quiet: bool = option(False, "no summary")


def _read_shard(shard: RunDirectory) -> dict:
    info = shard.info()
    if info.get("status") != "finished":
        raise UserError(f"shard {shard.path} is unfinished; complete it with `datawhisperer select ... --resume`")
    if "shard" not in info:
        raise UserError(f"{shard.path} is not a shard (it was not run with --shard i/n)")
    return info


def merge(config: MergeConfig) -> None:
    start = time.perf_counter()
    if not config.out:
        raise UserError("give --out for the merged results")
    shards = [RunDirectory(d) for d in config.shards]
    directories = [shard.path for shard in shards]
    infos = [_read_shard(shard) for shard in shards]
    first = infos[0]
    for directory, info in zip(directories[1:], infos[1:]):
        if info["fingerprint"] != first["fingerprint"]:
            raise UserError(f"{directory} belongs to another plan than {directories[0]} "
                            f"({describe_differences(first['fingerprint'], info['fingerprint'])})")
    count = first["shard"]["count"]
    seen: dict[int, Path] = {}
    for directory, info in zip(directories, infos):
        index = info["shard"]["index"]
        if info["shard"]["count"] != count:
            raise UserError(f"{directory} is shard {index}/{info['shard']['count']}, the others are of {count}")
        if index in seen:
            raise UserError(f"shard {index}/{count} is given twice: {seen[index]} and {directory}")
        seen[index] = directory
    absent = sorted(set(range(count)) - set(seen))
    if absent:
        raise UserError(f"shard {absent[0]}/{count} is missing ({len(absent)} of {count} shards absent)")

    shard_config = {f.name: first["config"].get(f.name) for f in fields(SelectConfig) if f.name in first["config"]}
    shard_config.setdefault("target_filter", "off")  # shards made before the target filter existed had none
    shard_config.update(out=config.out, shard=None, resume=False, overwrite=config.overwrite, quiet=config.quiet)
    for name in ("budget", "weighting", "data", "strategy"):
        if getattr(config, name):
            shard_config[name] = getattr(config, name)
    select_config = SelectConfig(**shard_config)
    method = METHODS.get(select_config.method)
    inputs = check_inputs(select_config, method)
    if inputs.fingerprint != first["fingerprint"]:
        raise UserError("the pool or settings changed since the shards ran "
                        f"({describe_differences(first['fingerprint'], inputs.fingerprint)})")

    pairs = list(zip(shards, infos))
    embedded = merge_embedding(inputs, plan_embeddings(inputs, method), pairs)
    scored = method.merge(inputs, pairs, embedded)
    out = RunDirectory(config.out)
    out.check(inputs.fingerprint, resume=False, overwrite=config.overwrite)
    out.claim(config.overwrite)
    try:
        timings = {
            "selection_seconds": round(sum(i["selection_seconds"] for i in infos), 3),
            "selection_wall_seconds": round(max(i["selection_seconds"] for i in infos), 3),
            "model_load_seconds": round(max(i["model_load_seconds"] for i in infos), 3),
            "merge_seconds": round(time.perf_counter() - start, 3),
            "shards": [{"index": i["shard"]["index"], "directory": str(d), "selection_seconds": i["selection_seconds"],
                        "peak_rss_mb": i.get("peak_rss_mb")} for d, i in zip(directories, infos)],
        }
        info = {**common_info(inputs, first["model"], timings), **scored.info}
        selection = write_outputs(out, inputs, scored, info, embedded)
    finally:
        out.unlock()
    if not config.quiet:
        stderr(summary(selection, info, out, select_config.budget))
