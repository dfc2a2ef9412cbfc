"""Parsing model answers: the numbered answers of multi mode (the paper's one-prompt format).

The prompt asks for "[1] ...", "[2] ..." each on its own line. Answers often reason step by step
with their own numbered lists ("1. First, ..."), so a marker is only taken when it is the next
expected number, and bracketed markers, once present, are the only ones considered.
"""

from __future__ import annotations

import re

# "[k]" at the start of a line, after optional list or quote decoration
_BRACKETED = re.compile(r"^[ \t>*#-]*\[(\d+)\][ \t]*", re.MULTILINE)
# styles a model may fall back to: "1." "1)" "(1)" "1:" "Answer 1:"; no '#', which would take
# the "#### 2." of a math answer for a marker
_OTHER = re.compile(r"^[ \t>*-]*(?:\(?(\d+)[.):]|answer\s*(\d+)\s*[:.-])[ \t]*", re.IGNORECASE | re.MULTILINE)


def parse_numbered_answers(text: str, n: int) -> list[str] | None:
    """Split '[1] a\\n[2] b' into n answers; None when one is missing or empty.

    When any "[k]" marker is present only those count; other styles ('1.', '1)', 'Answer 1:') are a
    fallback for text with no bracketed marker. Markers are read in order, [1] before [2]: answer k
    runs from marker k to marker k+1, and any other number inside it (a reasoning step, a repeated
    or out-of-order marker) is part of its text.
    """
    for pattern in (_BRACKETED, _OTHER):
        markers = [(int(next(g for g in m.groups() if g is not None)), m.start(), m.end())
                   for m in pattern.finditer(text)]
        if markers:
            return _split(text, markers, n)
    return None


def _split(text: str, markers: list[tuple[int, int, int]], n: int) -> list[str] | None:
    cuts: list[tuple[int, int]] = []  # (start, end) of markers 1, 2, ... n+1 in order
    for number, start, end in markers:
        if number == len(cuts) + 1 and len(cuts) <= n:  # n+1 (a made-up extra query) ends answer n
            cuts.append((start, end))
    if len(cuts) < n:
        return None
    bounds = [start for start, _ in cuts[1:]] + [len(text)]
    answers = [text[cuts[k][1]:bounds[k]].strip() for k in range(n)]
    return answers if all(answers) else None
