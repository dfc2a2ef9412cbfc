"""Playing episodes: render, fit to the context, ask the backend, score, and checkpoint.

An outcome depends only on its episode (the plan is fixed by the seed and prompts never batch
across episodes), so scores never depend on how the work was spread over processes.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import EpisodeLog
from .episodes import Episode
from .prompts import PromptBuilder, parse_numbered_answers
from .scoring import EpisodeOutcome, normalise
from .tasks import Example

if TYPE_CHECKING:
    from .runner import Prepared


class EpisodePlayer:
    """Plays one episode on a backend and turns what it returns into an EpisodeOutcome."""

    def __init__(self, prepared: Prepared, backend) -> None:
        self.prepared = prepared
        self.backend = backend
        config = prepared.config
        self.builder = PromptBuilder(backend.tokenizer, config.instruction or prepared.task.instruction,
                                     config.query_mode)
        self.stop = tuple(prepared.task.stop) + self.builder.stop
        self.layer = backend.layer
        self.played = 0

    def _fit(self, demo_ids: list[int], queries: list[Example]):
        """Render the episode, dropping the longest demonstrations until it fits the context."""
        examples = self.prepared.examples
        shown, dropped = list(demo_ids), []
        extra = self.prepared.max_new_tokens
        if self.prepared.config.scoring == "likelihood":
            extra = max(self.backend.count_tokens(q.answer) for q in queries) + 1
        while shown:
            prompt = self.builder.build([examples[i] for i in shown], queries)
            need = self.backend.count_tokens(prompt.prefix) + max(map(self.backend.count_tokens, prompt.suffixes))
            if need + extra <= self.backend.max_length:
                return prompt, shown, dropped
            lengths = [hi - lo for lo, hi in prompt.demo_spans]
            dropped.append(shown.pop(int(np.argmax(lengths))))
        return None, [], dropped

    def play(self, episode: Episode) -> EpisodeOutcome:
        self.played += 1
        start = time.perf_counter()
        queries = [self.prepared.queries[q] for q in episode.queries]
        outcome = EpisodeOutcome(episode.id, episode.attempt, episode.round, [], list(episode.queries),
                                 None, [], [])
        prompt, shown, dropped = self._fit(list(episode.demos), queries)
        outcome.dropped = dropped
        if prompt is None:
            outcome.failed, outcome.reason = True, "queries alone exceed the context length"
            return outcome
        outcome.demos = shown
        config = self.prepared.config
        if config.scoring == "likelihood":
            result = self.backend.score_answers(prompt, [q.answer for q in queries], self.layer)
            scores: list[float | None] = list(result.token_scores)
        else:
            result = self.backend.run_episode(prompt, self.layer, self.prepared.max_new_tokens, self.stop)
            answers = result.texts
            if config.query_mode == "multi":
                answers = parse_numbered_answers(result.texts[0], len(queries))
                outcome.answers = list(result.texts)
            if answers is None:
                outcome.failed, outcome.reason = True, "numbered answers could not be parsed"
            else:
                outcome.answers = list(answers)
                scores = [self.prepared.metric(a, q.answer) for a, q in zip(answers, queries)]
                if any(s is None for s in scores):
                    outcome.failed, outcome.reason = True, "an answer could not be parsed by the metric"
        mass = np.asarray(result.demo_mass, dtype=np.float64).sum(axis=0)
        outcome.demo_tokens = [int(n) for n in result.demo_tokens]
        outcome.attention = (mass / np.maximum(result.demo_tokens, 1)).tolist()
        outcome.weights = normalise(outcome.attention)
        outcome.prompt_tokens = int(result.prompt_tokens)
        if not outcome.failed:
            outcome.query_scores = [float(s) for s in scores]
        outcome.seconds = time.perf_counter() - start
        return outcome


def play_share(player: EpisodePlayer, rank: int, world_size: int, done: dict, log: EpisodeLog | None,
               progress: bool) -> list[EpisodeOutcome]:
    """Play this rank's share of the plan, re-drawing failed episodes; skip what `done` holds."""
    plan = player.prepared.plan
    max_retries = player.prepared.config.max_retries
    mine = [e for e in plan.episodes() if e.id % world_size == rank]
    outcomes: list[EpisodeOutcome] = []
    failures = 0
    bar = tqdm(total=len(mine), disable=not progress, unit="episode", desc="scoring", file=sys.stderr,
               dynamic_ncols=True)
    for planned in mine:
        episode = planned
        while True:
            outcome = done.get((episode.id, episode.attempt))
            if outcome is None:
                outcome = player.play(episode)
                if log is not None:
                    log.append(outcome)
            outcomes.append(outcome)
            if not outcome.failed or episode.attempt >= max_retries:
                break
            failures += 1
            episode = plan.retry(planned, episode.attempt + 1)
        bar.update(1)
        if failures:
            bar.set_postfix(failed=failures)
    bar.close()
    return outcomes
