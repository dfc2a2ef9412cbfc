"""Playing episodes: multi mode's answer budget and parsing, and answers cut at the token limit."""

import json
import re

from conftest import assert_varied, checked

from datawhisperer.backends.fake import FakeBackend
from datawhisperer.player import EpisodePlayer
from datawhisperer.runner import select
from datawhisperer.select_config import SelectConfig


def math_records(n: int = 16) -> list[dict]:
    return [{"question": f"What is {i} plus {i + 1}?", "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"}
            for i in range(n)]


def cot_answers(suffix: str) -> str:
    """Numbered reasoning steps inside each bracketed answer; right for even i, off by one for odd i."""
    parts = []
    for k, i in re.findall(r"^\[(\d+)\] What is (\d+) plus", suffix, re.MULTILINE):
        i = int(i)
        total = 2 * i + 1 + (i % 2)
        parts.append(f"[{k}] Let me think.\n1. First, take {i}.\n2. Then add {i + 1}.\n#### {total}")
    return "\n".join(parts)


class RecordingBackend(FakeBackend):
    """Notes the token budget each generation is given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.budgets = []

    def generate(self, prompts, max_new_tokens, stop=()):
        self.budgets.append(max_new_tokens)
        return super().generate(prompts, max_new_tokens, stop)


def player_for(backend, records, **options) -> EpisodePlayer:
    config = SelectConfig(task="math", quiet=True, **{"estimator": "paper", **options})
    return EpisodePlayer(checked(config, records), backend)


def test_multi_mode_budgets_every_answer():
    backend = RecordingBackend(answer_fn=cot_answers)
    player = player_for(backend, math_records(), query_mode="multi", n_demos=3, n_queries=3, max_new_tokens=40)
    player.play_group(player.inputs.plan.episodes()[:1])
    assert backend.budgets[0] >= 3 * 40  # three answers in one generation, not one answer's budget
    single = RecordingBackend(answer_fn=cot_answers)
    player_for(single, math_records(), n_demos=3, n_queries=3, max_new_tokens=40).play_group(
        player.inputs.plan.episodes()[:1])
    assert single.budgets == [40]


def test_multi_mode_scores_chain_of_thought_answers():
    backend = FakeBackend(answer_fn=cot_answers)
    player = player_for(backend, math_records(), query_mode="multi", n_demos=3, n_queries=3, max_new_tokens=40)
    outcomes = [player.play_group([e])[0] for e in player.inputs.plan.episodes()]
    assert not any(o.failed for o in outcomes)
    for outcome in outcomes:  # each query is scored by its own final answer, not by a reasoning step
        assert outcome.query_scores == [float(q % 2 == 0) for q in outcome.queries]
    assert len({s for o in outcomes for s in o.query_scores}) == 2


class TruncatingBackend(FakeBackend):
    """Reports the answers to 'What is i plus ...' with i = 1 mod 4 as cut at the token limit."""

    def generate(self, prompts, max_new_tokens, stop=()):
        results = super().generate(prompts, max_new_tokens, stop)
        for prompt, result in zip(prompts, results):
            result.truncated = [int(re.search(r"What is (\d+) plus", s).group(1)) % 4 == 1 for s in prompt.suffixes]
        return results


def _right_unless_divisible_by_three(suffix: str) -> str:
    i = int(re.search(r"What is (\d+) plus", suffix).group(1))
    return f"#### {2 * i + 1 + (i % 3 == 0)}"


def test_an_answer_cut_at_the_token_limit_fails_its_episode_and_is_redrawn(tmp_path):
    out = tmp_path / "out"
    select(SelectConfig(estimator="paper", task="math", n_demos=3, n_queries=2, max_new_tokens=64, quiet=True, query_source="rest",
                        out=str(out)),
           math_records(), TruncatingBackend(answer_fn=_right_unless_divisible_by_three))
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    cut = [e for e in episodes if any(q % 4 == 1 for q in e["queries"])]
    assert cut and all(e["failed"] and e["reason"] == "an answer hit the token limit" for e in cut)
    keys = {(e["episode"], e["attempt"]) for e in episodes}
    assert all((e["episode"], e["attempt"] + 1) in keys for e in cut)  # re-drawn
    scores = [s for e in episodes if not e["failed"] for s in e["query_scores"]]
    assert 0.0 in scores and 1.0 in scores


def test_a_cut_free_text_answer_is_scored_as_generated(tmp_path):
    """ROUGE-L scores what was generated: a free-text answer cut at the limit is a partial answer, not a failure."""
    out = tmp_path / "out"
    records = [{"question": r["question"], "answer": r["answer"]} for r in math_records()]
    select(SelectConfig(estimator="paper", task="math", metric="rouge_l", n_demos=3, n_queries=2, max_new_tokens=64, quiet=True,
                        query_source="rest", out=str(out)),
           records, TruncatingBackend(answer_fn=_right_unless_divisible_by_three))
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    cut = [e for e in episodes if any(q % 4 == 1 for q in e["queries"])]
    assert cut and not any(e["failed"] for e in episodes)
    assert_varied([s for e in episodes for s in e["query_scores"]])
