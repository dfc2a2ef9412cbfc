"""Playing episodes: render, fit to the context, ask the backend, score, and checkpoint.

Episodes are batched in fixed groups of the plan (episodes.owner_of), and inside a batch every row is
masked to compute exactly what it would alone, so an outcome depends only on its episode and its earlier
tries: scores never depend on how the work was spread over processes, shards or sittings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .answers import parse_numbered_answers
from .episodes import Episode
from .errors import UserError
from .metrics import wants_complete_answers
from .prompts import PromptBuilder
from .scoring import EpisodeOutcome, normalise
from .tasks import Example
from .vectors import encode

if TYPE_CHECKING:
    from .inputs import RunInputs


MARKER_TOKENS = 8  # "\n\n[12] " in any tokenizer, with room to spare


class EpisodePlayer:
    """Plays one episode on a backend and turns what it returns into an EpisodeOutcome."""

    def __init__(self, inputs: RunInputs, backend) -> None:
        self.inputs = inputs
        self.backend = backend
        config = inputs.config
        self.builder = PromptBuilder(backend.tokenizer, inputs.instruction,
                                     config.query_mode)
        self.stop = tuple(inputs.task.stop) + self.builder.stop
        self.played = 0
        self.answer_budget = self._answer_budget(inputs.max_new_tokens, inputs.plan.n_queries)

    def _answer_budget(self, max_new_tokens: int, n_queries: int) -> int:
        """New tokens one generation may take: in multi mode one sequence holds every numbered answer,
        so it gets each answer's budget plus room for its "[k]" marker and line breaks."""
        if self.inputs.config.query_mode == "multi":
            return n_queries * (max_new_tokens + MARKER_TOKENS)
        return max_new_tokens

    def check_room(self) -> None:
        """Before any episode: the instruction, the shortest demonstration, the shortest queries and their answer
        budget must fit the model's limit, or every episode would fail. A one-line error names the limit, what
        takes it, and what to pass."""
        def shortest(examples: list[Example], k: int) -> list[Example]:
            return sorted(examples, key=lambda e: len(e.text) + len(e.answer))[:k]

        n = self.inputs.plan.n_queries if self.inputs.config.query_mode == "multi" else 1
        queries, demo = shortest(self.inputs.queries, n), shortest(self.inputs.examples, 1)
        answer = self.answer_budget
        if self.inputs.config.scoring == "likelihood":
            answer = min(answer, max(self.backend.count_tokens(q.answer) for q in queries) + 1)
        limit = self.backend.max_length
        for shown, what in (([], "the instruction and the shortest query"),
                            (demo, "the instruction, the shortest demonstration and the shortest query")):
            prompt = self.builder.build(shown, queries)
            tokens = self.backend.count_tokens(prompt.prefix) + max(map(self.backend.count_tokens, prompt.suffixes))
            if tokens + answer > limit:
                window = getattr(self.backend, "sliding_window", None)
                why = f" (its sliding window of {window} tokens, less one)" if window else ""
                raise UserError(f"the model holds {limit} tokens per sequence{why}; {what} already take {tokens}, "
                                f"and the answer {answer} more, so no episode could be scored: pass a smaller "
                                "--max-new-tokens, a shorter --instruction, or a model with a longer context")

    def _fit(self, demo_ids: list[int], queries: list[Example], keep: tuple[int, ...] = ()):
        """Render the episode, dropping the longest demonstrations until it fits the context; a make-up's
        targets (`keep`) go last. Returns (prompt or None, shown, dropped, unfit): unfit holds the last
        demonstration dropped when it did not fit alone although the queries fit without it."""
        examples = self.inputs.examples
        shown, dropped = list(demo_ids), []
        extra = self.answer_budget
        if self.inputs.config.scoring == "likelihood":
            extra = min(extra, max(self.backend.count_tokens(q.answer) for q in queries) + 1)

        def fits(prompt) -> bool:
            need = self.backend.count_tokens(prompt.prefix) + max(map(self.backend.count_tokens, prompt.suffixes))
            return need + extra <= self.backend.max_length

        while shown:
            prompt = self.builder.build([examples[i] for i in shown], queries)
            if fits(prompt):
                return prompt, shown, dropped, []
            lengths = [hi - lo for lo, hi in prompt.demo_spans]
            candidates = [k for k, d in enumerate(shown) if d not in keep] or range(len(shown))  # fillers first
            dropped.append(shown.pop(max(candidates, key=lambda k: lengths[k])))
        unfit = [dropped[-1]] if dropped and fits(self.builder.build([], queries)) else []
        return None, [], dropped, unfit

    def play_group(self, episodes: list[Episode]) -> list[EpisodeOutcome]:
        """Play episodes in one backend batch; each outcome is what its episode yields alone."""
        self.played += len(episodes)
        start = time.perf_counter()
        config = self.inputs.config
        outcomes, playable, prompts, queries = [], [], [], []
        for episode in episodes:
            episode_queries = [self.inputs.queries[q] for q in episode.queries]
            outcome = EpisodeOutcome(episode.id, episode.attempt, episode.round, [], list(episode.queries),
                                     None, [], [], targets=list(episode.targets))
            prompt, outcome.demos, outcome.dropped, outcome.unfit = self._fit(list(episode.demos), episode_queries,
                                                                              episode.targets)
            if prompt is None:
                outcome.failed = True
                outcome.reason = ("no demonstration fits the context" if outcome.unfit
                                  else "queries alone exceed the context length")
            else:
                playable.append(outcome)
                prompts.append(prompt)
                queries.append(episode_queries)
            outcomes.append(outcome)
        if prompts:
            if config.scoring == "likelihood":
                # the answer's first max_new_tokens tokens: the span generation would have produced
                results = self.backend.score(prompts, [[q.answer for q in qs] for qs in queries],
                                             self.inputs.max_new_tokens)
            else:
                results = self.backend.generate(prompts, self.answer_budget, self.stop)
            for outcome, result, episode_queries in zip(playable, results, queries):
                self._record(outcome, result, episode_queries)
            if self.inputs.estimator.needs_token_logprobs and self.inputs.config.coherence_weight:
                self._record_coherence([o for o in playable if not o.failed and len(o.demos) == 1])
        seconds = (time.perf_counter() - start) / len(episodes)
        for outcome in outcomes:
            outcome.seconds = seconds
        return outcomes

    def _record_coherence(self, outcomes: list[EpisodeOutcome]) -> None:
        """Each shown example's answer after its own input, zero-shot, against after an empty input: the mean
        log-probability of its first answer tokens, the difference (a pointwise mutual information)."""
        if not outcomes:
            return
        examples = [self.inputs.examples[o.demos[0]] for o in outcomes]
        blank = [Example((("user", ""),), e.answer) for e in examples]
        prompts = [self.builder.build([], [e]) for e in examples + blank]
        # the same pass gives each example's embedding (its hidden state alone), for the selection strategies
        results = self.backend.score(prompts, [[e.answer] for e in examples + blank], self.inputs.max_new_tokens,
                                     embed=True)
        own, none = results[: len(examples)], results[len(examples):]
        for outcome, with_input, without in zip(outcomes, own, none):
            outcome.coherence = float(with_input.token_logprobs[0] - without.token_logprobs[0])
            outcome.embedding = encode(with_input.embeddings[0])

    def _record(self, outcome: EpisodeOutcome, result, queries: list[Example]) -> None:
        """Score the answers (or take the likelihoods) and the attention of one episode."""
        config = self.inputs.config
        scores: list[float | None] = []
        if config.scoring == "likelihood":
            scores = list(result.token_scores)
        else:
            answers = result.texts
            if config.query_mode == "multi":
                outcome.answers = list(result.texts)
                answers = parse_numbered_answers(result.texts[0], len(queries))
            if any(result.truncated or ()) and wants_complete_answers(self.inputs.metric):
                # a cut answer has no final answer yet: unparseable, not 0
                outcome.answers = list(result.texts)
                outcome.failed, outcome.reason = True, "an answer hit the token limit"
            elif answers is None:
                outcome.failed, outcome.reason = True, "numbered answers could not be parsed"
            else:
                outcome.answers = list(answers)
                scores = [self.inputs.metric(a, q.answer) for a, q in zip(answers, queries)]
                if any(s is None for s in scores):
                    outcome.failed, outcome.reason = True, "an answer could not be parsed by the metric"
        mass = np.asarray(result.demo_mass, dtype=np.float64).sum(axis=0)
        outcome.demo_tokens = [int(n) for n in result.demo_tokens]
        outcome.attention = (mass / np.maximum(result.demo_tokens, 1)).tolist()
        outcome.weights = normalise(outcome.attention)
        outcome.prompt_tokens = int(result.prompt_tokens)
        if not outcome.failed:
            outcome.query_scores = [float(x) for x in scores]
            if self.inputs.estimator.needs_token_logprobs:
                outcome.answer_logprobs = [[float(x) for x in tokens] for tokens in result.answer_logprobs]


def episode_groups(plan, group_size: int) -> list[list[Episode]]:
    """Consecutive planned episodes, `group_size` at a time: the units of work (group k goes to rank k mod N).
    Groups are fixed by the plan, so what a batch holds never depends on how the work is spread."""
    episodes = plan.episodes()
    return [episodes[k: k + group_size] for k in range(0, len(episodes), group_size)]


def play_group_tries(player: EpisodePlayer, group: list[Episode], done: dict, log) -> list[EpisodeOutcome]:
    """One group's episodes with every later try (plan.next_try); skip what `done` holds.

    A group's episodes take their k-th tries together, in one batch. A try depends only on its episode's
    own earlier outcomes, so the batches, like the plan, never depend on how the work is spread. A batch
    whose outcomes are all in `done` is skipped; a partly finished one is replayed whole (so its numbers
    are those of an uninterrupted run) and only the missing outcomes are logged (`log` skips what `done` has)."""
    plan, max_retries = player.inputs.plan, player.inputs.config.max_retries
    outcomes: list[EpisodeOutcome] = []
    histories: dict[int, list[EpisodeOutcome]] = {e.id: [] for e in group}
    while batch := [t for e in group if (t := plan.next_try(e, histories[e.id], max_retries)) is not None]:
        keys = [(e.id, e.attempt) for e in batch]
        if all(key in done for key in keys):
            results = [done[key] for key in keys]
        else:
            fresh = player.play_group(batch)
            log(fresh)
            results = [done.get(key, outcome) for key, outcome in zip(keys, fresh)]
        for episode, outcome in zip(batch, results):
            histories[episode.id].append(outcome)
        outcomes.extend(results)
    return outcomes
