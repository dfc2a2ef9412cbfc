"""Checking a selection's inputs before any model loads."""

import pytest
from conftest import checked, plural_records

from datawhisperer.errors import UserError
from datawhisperer.select_config import SelectConfig


def test_inputs_are_checked_and_fingerprinted_by_content():
    config = SelectConfig(estimator="paper", task="classification", n_demos=3, n_queries=2, seed=4)
    inputs = checked(config, plural_records(12))
    assert len(inputs.examples) == 12 and inputs.plan.n_demos == 3 and inputs.instruction == inputs.task.instruction
    again = checked(SelectConfig(estimator="paper", task="classification", n_demos=3, n_queries=2, seed=4), plural_records(12))
    assert again.fingerprint == inputs.fingerprint
    other = checked(SelectConfig(estimator="paper", task="classification", n_demos=3, n_queries=2, seed=4), plural_records(13))
    assert other.fingerprint["data"] != inputs.fingerprint["data"]


@pytest.mark.parametrize("options,message", [
    ({"weighting": "debiassed"}, "did you mean 'debiased'"),
    ({"query_source": "val"}, "query source 'val' needs --val FILE"),
])
def test_bad_settings_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        checked(SelectConfig(estimator="paper", task="classification", n_demos=3, n_queries=2, **options), plural_records(12))


def test_baselines_have_no_episode_plan():
    inputs = checked(SelectConfig(task="classification", method="random"), plural_records(4))
    assert inputs.plan is None  # a pool too small for episodes is fine for a baseline


def test_a_run_that_embeds_fingerprints_what_its_embeddings_cover():
    plain = checked(SelectConfig(task="classification", estimator="paper", strategy="top", n_demos=3, n_queries=2),
                    plural_records(12))
    embedding = checked(SelectConfig(task="classification", estimator="paper", strategy="diverse", n_demos=3,
                                     n_queries=2, answer_tokens=8), plural_records(12))
    assert "answer_tokens" not in plain.fingerprint and embedding.fingerprint["answer_tokens"] == 8
