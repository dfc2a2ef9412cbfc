"""The Data Whisperer method: play the plan's episodes, then credit each demonstration.

Work is split by batches of planned episodes (episodes.owner_of): every later try of an episode (a re-draw
after a failure, a make-up for demonstrations it left unscored) stays with it. An outcome depends only on
its episode and that episode's earlier outcomes (the plan is fixed by the seed; results do not depend on
batch company), so scores never depend on how the work was spread over ranks, shards or sittings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .embedding import recorded_embeddings
from .episodes import EpisodePlan, owner_of
from .errors import UserError
from .estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from .executor import Executed, Scored, ShardDone, Work, merge_shards
from .inputs import RunInputs
from .methods import MethodDefaults
from .player import EpisodePlayer, episode_groups, play_group_tries
from .reliability import Wording
from .scoring import WEIGHTINGS, EpisodeOutcome, unscored_examples
from .select_config import SelectConfig

if TYPE_CHECKING:
    from .rundir import RunDirectory


def missing_episodes(plan: EpisodePlan, max_retries: int, outcomes: dict, share: tuple[int, int] = (0, 1),
                     group_size: int = 1) -> list[int]:
    """Planned episode ids (of one share) whose tries (plan.next_try: re-draws, make-ups) lack an outcome."""
    rank, world = share
    missing = []
    for episode in plan.episodes():
        if owner_of(episode.id, group_size, world) != rank:
            continue
        history: list[EpisodeOutcome] = []
        while (attempt := plan.next_try(episode, history, max_retries)) is not None:
            if (episode.id, attempt.attempt) not in outcomes:
                missing.append(episode.id)
                break
            history.append(outcomes[(episode.id, attempt.attempt)])
    return missing


def episode_info(inputs: RunInputs, outcomes: list[EpisodeOutcome], backend_info: dict) -> dict:
    """What run.json records of the episodes played (of the whole run, or of one shard)."""
    finished = [o for o in outcomes if not o.failed]
    unscored = unscored_examples(outcomes)  # of a shard: among the examples its episodes tried
    return {
        "task": {"name": inputs.task.name, "metric": inputs.fingerprint["metric"],
                 "instruction": inputs.fingerprint["instruction"], "max_new_tokens": inputs.max_new_tokens},
        "layer": backend_info.get("layer"),
        "query_source": inputs.plan.query_source,
        "planned_episodes": len(inputs.plan.episodes()),
        "episodes": len(finished),
        "failed_episodes": len(outcomes) - len(finished),
        "failure_reasons": dict(Counter(o.reason for o in outcomes if o.failed)),
        "truncated_episodes": sum(bool(o.dropped) for o in finished),
        "demonstrations_dropped_for_context": sum(len(o.dropped) for o in finished),
        "makeup_episodes": sum(bool(o.targets) for o in outcomes),
        "unscored_examples": len(unscored),
        "unscored_reasons": dict(sorted(Counter(unscored.values()).items())),
        "prompt_tokens": int(sum(o.prompt_tokens for o in outcomes)),
        "episode_seconds_total": round(sum(o.seconds for o in outcomes), 3),
    }


def credit(inputs: RunInputs, outcomes: dict, info: dict) -> Scored:
    """Every outcome of the plan, in order, credited to the demonstrations."""
    missing = missing_episodes(inputs.plan, inputs.config.max_retries, outcomes)
    if missing:
        raise UserError(f"{len(missing)} episodes have no result (first: {missing[0]}); rerun with --resume")
    planned = len(inputs.plan.episodes())  # a resumed --rounds auto run may hold rounds it decided not to play
    ordered = [outcomes[key] for key in sorted(outcomes) if key[0] < planned]
    n_pool, settings = len(inputs.examples), inputs.config
    result = inputs.estimator.credit(ordered, n_pool, settings)
    reliability = {"estimator": inputs.estimator.name, **inputs.estimator.reliability(ordered, n_pool, settings)}
    return Scored(result.scores, result.appearances, {**info, "reliability": reliability}, ordered,
                  recorded_embeddings(ordered, n_pool))


def episode_work(inputs: RunInputs, backend) -> Work:
    """The plan's episode groups as the executor's units; with --rounds auto one stage per round, after which
    every rank reads every outcome so far and measures the estimator's split-half reliability, so all decide
    alike (and a resumed run decides as the first sitting did): stop once it reaches --target-reliability,
    or after --max-rounds."""
    config, estimator = inputs.config, inputs.estimator
    group_size = config.episode_batch
    groups = episode_groups(inputs.plan, group_size)
    state: dict = {}
    player: list[EpisodePlayer] = []  # made on first use: the model loads once a unit is played

    def play(group, done: dict, log) -> list[EpisodeOutcome]:
        if not player:
            player.append(EpisodePlayer(inputs, backend()))
            state["player"] = player[0]
        return play_group_tries(player[0], group, done, log)

    def owner(group, world: int) -> int:
        return owner_of(group[0].id, group_size, world)

    def missing(found: dict, index: int, count: int) -> list:
        return missing_episodes(inputs.plan, config.max_retries, found, (index, count), group_size)

    work = Work("episodes", [groups], owner, play, key=lambda o: (o.episode, o.attempt),
                owner_of_record=lambda o, world: owner_of(o.episode, group_size, world), missing=missing,
                size=len, postfix=lambda done: {"failed": n} if (n := sum(o.failed for o in done)) else {},
                state=state)
    if config.rounds != "auto":
        return work
    cap = inputs.plan.rounds  # --max-rounds, or fewer where the query source runs out of new panels
    by_round: list[float | None] = []
    state["auto"] = {"rounds_played": 0, "rounds_cap": cap, "reliability_by_round": by_round}
    work.stages = [[kept for group in groups if (kept := [e for e in group if e.round == rnd])] for rnd in range(cap)]

    def after_round(rnd: int, outcomes: dict) -> bool:
        ordered = [outcomes[key] for key in sorted(outcomes) if outcomes[key].round <= rnd]  # a resume may hold more
        by_round.append(estimator.reliability(ordered, len(inputs.examples), config)["projected"])
        state["auto"]["rounds_played"] = len(by_round)
        return not (rnd + 1 >= estimator.min_auto_rounds and (by_round[-1] or 0.0) >= config.target_reliability)

    def describe(rnd: int) -> str:
        reached = f", reliability so far {by_round[-1]:.2f}" if by_round and by_round[-1] is not None else ""
        return f"round {rnd + 1}/{cap}{reached}"

    work.after_stage, work.describe_stage = after_round, describe
    return work


PAPER = "paper"  # the estimator whose credit the weightings are (estimators.py)
_BENCH_NAME = re.compile(r"datawhisperer(?:-(?P<weighting>[a-z_]+))?(?:-r(?P<rounds>\d+))?")


@dataclass(frozen=True)
class DataWhisperer(MethodDefaults):
    name: str = "datawhisperer"
    needs_model: bool = True
    plays_episodes: bool = True
    seeded: bool = True
    default_strategy: str = "top"  # the scenario benchmarks: diverse covered best but fine-tuned worse (benchmarks/README.md)
    wording: Wording = Wording("Data Whisperer")  # a run's reliability is its estimator's, worded by the estimator

    def check(self, config) -> None:
        if config.rounds == "auto" and config.shard is not None:
            raise UserError("--rounds auto decides from the whole run's reliability, which a shard cannot see: "
                            "give --rounds N with --shard")
        ESTIMATORS.get(config.estimator).check(config)

    def fingerprint(self, config, estimator) -> dict:
        auto = {"target_reliability": config.target_reliability, "max_rounds": config.max_rounds,
                "weighting": config.weighting}  # the paper estimator's reliability, and so where auto stops
        return {**(auto if config.rounds == "auto" else {}), **estimator.fingerprint(config)}

    def bench_names(self) -> list[str]:
        """The default configuration (the bare name), each weighting of the paper estimator, each other estimator."""
        return [self.name] + [f"{self.name}-{w}" for w in WEIGHTINGS.names()] + \
            [f"{self.name}-{e}" for e in ESTIMATORS.names() if e not in WEIGHTINGS]

    def parse_bench_name(self, name: str) -> dict | None:
        """datawhisperer[-<weighting>][-r<rounds>] (the paper estimator) or datawhisperer-<estimator>; the bare
        name is the default configuration, with its default strategy."""
        if name == self.name and DEFAULT_ESTIMATOR not in WEIGHTINGS:
            return {"base": self.name, "weighting": None, "rounds": 1, "estimator": DEFAULT_ESTIMATOR,
                    "strategy": self.default_strategy}
        estimator = name.removeprefix(f"{self.name}-")
        if estimator in ESTIMATORS and estimator not in WEIGHTINGS:
            return {"base": self.name, "weighting": None, "rounds": 1, "estimator": estimator}
        match = _BENCH_NAME.fullmatch(name)
        weighting = (match["weighting"] or SelectConfig.__dataclass_fields__["weighting"].default) if match else None
        if weighting not in WEIGHTINGS:
            return None
        rounds = int(match["rounds"] or 1)
        if rounds < 1:
            raise UserError(f"method {name!r}: rounds must be at least 1")
        return {"base": self.name, "weighting": weighting, "rounds": rounds, "estimator": PAPER}

    def records_embeddings(self, inputs: RunInputs) -> bool:
        return inputs.estimator.records_embeddings(inputs.config)

    def preflight(self, inputs: RunInputs, backend) -> None:
        EpisodePlayer(inputs, backend).check_room()

    def work(self, inputs: RunInputs, backend) -> Work:
        return episode_work(inputs, backend)

    def _played(self, inputs: RunInputs, executed: Executed, world_size: int) -> tuple[RunInputs, dict]:
        """The plan as played (--rounds auto: the rounds it decided on) and what this sitting did."""
        state = executed.work.state
        auto = state.get("auto", {})
        if auto:
            inputs = replace(inputs, plan=replace(inputs.plan, rounds=auto["rounds_played"]))
        player = state.get("player")
        return inputs, {**auto, "resumed_episodes": len(executed.resumed),
                        # what the resumed episodes cost when an earlier sitting played them
                        "resumed_episode_seconds": round(sum(o.seconds for o in executed.resumed.values()), 3),
                        "played_episodes": player.played if player else 0, "world_size": world_size}

    def result(self, inputs: RunInputs, executed: Executed, sitting: dict) -> Scored:
        inputs, played = self._played(inputs, executed, sitting["world_size"])
        outcomes = executed.records
        return credit(inputs, outcomes, {**episode_info(inputs, list(outcomes.values()), sitting["model"]), **played})

    def shard_result(self, inputs: RunInputs, executed: Executed, sitting: dict) -> ShardDone:
        inputs, played = self._played(inputs, executed, sitting["world_size"])
        info = {**episode_info(inputs, executed.mine, sitting["model"]), **played}
        return ShardDone(info, f"{info['episodes']} episodes ({info['failed_episodes']} failed)")

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings=None) -> Scored:
        outcomes = merge_shards(self.work(inputs, backend=None), shards)
        return credit(inputs, outcomes, episode_info(inputs, list(outcomes.values()), shards[0][1]["model"]))


DATA_WHISPERER = DataWhisperer()
