import pytest

from datawhisperer.answers import parse_numbered_answers

CHAIN_OF_THOUGHT = (
    "[1] Let's think step by step.\n"
    "1. First, 3 + 4 = 7.\n"
    "2. Then 7 * 2 = 14.\n"
    "#### 14\n"
    "[2] Steps:\n"
    "1. 5 - 2 = 3\n"
    "#### 3"
)


def test_numbered_reasoning_steps_inside_bracketed_answers_stay_in_their_answer():
    first, second = parse_numbered_answers(CHAIN_OF_THOUGHT, 2)
    assert first == "Let's think step by step.\n1. First, 3 + 4 = 7.\n2. Then 7 * 2 = 14.\n#### 14"
    assert second == "Steps:\n1. 5 - 2 = 3\n#### 3"


def test_bracketed_markers_are_read_in_order():
    # "[2]" before "[1]" is text; the second answer must come after the first
    assert parse_numbered_answers("[2] early\n[1] a\n[2] b", 2) == ["a", "b"]
    assert parse_numbered_answers("[2] b\n[1] a", 2) is None


def test_a_made_up_extra_answer_ends_the_last_one():
    assert parse_numbered_answers("[1] a\n[2] b\n[3] invented query", 2) == ["a", "b"]


@pytest.mark.parametrize("text,expected", [
    ("[1] cats\n[2] boxes", ["cats", "boxes"]),
    ("1. cats\n2) boxes", ["cats", "boxes"]),
    ("Answer 1: cats\nAnswer 2: boxes", ["cats", "boxes"]),
    # a repeated marker is not the next expected one: it stays in the answer's text
    ("Sure!\n[1] cats are many\nmore text\n[2] boxes\n[2] dup", ["cats are many\nmore text", "boxes\n[2] dup"]),
    # numbered steps without brackets fall back to the other style, still in order
    ("1. a\n1. b\n2. c", ["a\n1. b", "c"]),
    ("[1] cats", None),
    ("[1] cats\n[2]", None),
    ("[1] cats\n2. boxes", None),  # brackets present: only they count
    ("cats, boxes", None),
])
def test_parse_numbered_answers(text, expected):
    assert parse_numbered_answers(text, 2) == expected
