"""The Data Whisperer method: play the plan's episodes, then credit each demonstration.

Work is split by batches of planned episodes (episodes.owner_of): every later try of an episode (a re-draw
after a failure, a make-up for demonstrations it left unscored) stays with it. An outcome depends only on
its episode and that episode's earlier outcomes (the plan is fixed by the seed; results do not depend on
batch company), so scores never depend on how the work was spread over ranks, shards or sittings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .embedding import recorded_embeddings
from .episodes import EpisodePlan, owner_of
from .errors import UserError
from .inputs import RunInputs
from .methods import Scored, Session, ShardDone
from .player import EpisodePlayer, play_share
from .scoring import EpisodeOutcome, unscored_examples

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


def play_until_reliable(session: Session, player: EpisodePlayer, done: dict, log) -> tuple[list, dict]:
    """--rounds auto: play the plan a round at a time; after each, every rank reads every outcome so far and
    measures the estimator's split-half reliability, so all decide alike (and a resumed run decides as the
    first sitting did): stop once it reaches --target-reliability, or after --max-rounds."""
    inputs, topology, out, config = session.inputs, session.topology, session.out, session.inputs.config
    mine: list[EpisodeOutcome] = []
    by_round: list[float | None] = []
    cap = inputs.plan.rounds  # --max-rounds, or fewer where the query source runs out of new panels
    for rnd in range(cap):
        reached = f", reliability so far {by_round[-1]:.2f}" if by_round and by_round[-1] is not None else ""
        mine += play_share(player, topology.rank, topology.world_size, done, log, session.progress, only_round=rnd,
                           desc=f"round {rnd + 1}/{cap}{reached}")
        session.group.barrier()  # every rank's log is fsync'ed a batch at a time: all read the same outcomes
        outcomes = out.outcomes() if out is not None else {(o.episode, o.attempt): o for o in mine}
        ordered = [outcomes[key] for key in sorted(outcomes) if outcomes[key].round <= rnd]  # a resume may hold more
        by_round.append(inputs.estimator.reliability(ordered, len(inputs.examples), config)["projected"])
        if rnd + 1 >= inputs.estimator.min_auto_rounds and (by_round[-1] or 0.0) >= config.target_reliability:
            break
    return mine, {"rounds_played": len(by_round), "rounds_cap": cap, "reliability_by_round": by_round}


@dataclass(frozen=True)
class DataWhisperer:
    needs_model: bool = True
    plays_episodes: bool = True

    def records_embeddings(self, inputs: RunInputs) -> bool:
        return inputs.estimator.records_embeddings(inputs.config)

    def run(self, session: Session) -> Scored | ShardDone | None:
        inputs, topology, out = session.inputs, session.topology, session.out
        done = out.outcomes() if out is not None else {}
        session.group.barrier()  # everyone has read the old logs before anyone appends
        log = None
        if out is not None:
            log = out.episode_log(topology.rank, topology.world_size) if topology.launched else out.episode_log()
        player = EpisodePlayer(inputs, session.backend)
        auto: dict = {}
        try:
            if inputs.config.rounds == "auto":
                mine, auto = play_until_reliable(session, player, done, log)
                inputs = replace(inputs, plan=replace(inputs.plan, rounds=auto["rounds_played"]))
            else:
                mine = play_share(player, topology.rank, topology.world_size, done, log, progress=session.progress)
        finally:
            if log is not None:
                log.close()
        session.group.barrier()
        played = {**auto, "resumed_episodes": len(done),
                  # what the resumed episodes cost when an earlier sitting played them
                  "resumed_episode_seconds": round(sum(o.seconds for o in done.values()), 3),
                  "played_episodes": player.played, "world_size": topology.world_size}
        description = session.backend.description
        if topology.shard:
            info = {**episode_info(inputs, mine, description), **played}
            return ShardDone(info, f"{info['episodes']} episodes ({info['failed_episodes']} failed)")
        if not topology.is_main:
            return None
        outcomes = out.outcomes() if out is not None else {(o.episode, o.attempt): o for o in mine}
        return credit(inputs, outcomes, {**episode_info(inputs, list(outcomes.values()), description), **played})

    def merge(self, inputs: RunInputs, shards: list[tuple[RunDirectory, dict]], embeddings=None) -> Scored:
        config = inputs.config
        outcomes: dict[tuple[int, int], EpisodeOutcome] = {}
        for shard, info in shards:
            index, count = info["shard"]["index"], info["shard"]["count"]
            for key, outcome in shard.outcomes().items():
                if owner_of(outcome.episode, config.episode_batch, count) != index:
                    raise UserError(f"{shard.path} (shard {index}/{count}) holds episode {outcome.episode} of "
                                    "another shard")
                outcomes[key] = outcome
            missing = missing_episodes(inputs.plan, config.max_retries, outcomes, (index, count), config.episode_batch)
            if missing:
                raise UserError(f"{shard.path} (shard {index}/{count}) lacks {len(missing)} episodes "
                                f"(first: {missing[0]})")
        model = shards[0][1]["model"]
        return credit(inputs, outcomes, episode_info(inputs, list(outcomes.values()), model))


DATA_WHISPERER = DataWhisperer()
