"""Metrics: f(prediction, reference) -> score in [0, 1], or None when the prediction cannot be parsed.

None is not zero: an unparseable answer makes its episode fail and be re-drawn, it never
silently scores the demonstrations 0 (a fault of the paper's reference code).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import lru_cache

from .registry import Registry, import_object

Metric = Callable[[str, str], "float | None"]
METRICS: Registry[Metric] = Registry("metric")

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FINAL_MARKER = "####"


def final_number(text: str, require_marker: bool = False) -> float | None:
    """The first number after the last '####' (GSM8K convention); without a marker, the last number in
    the text, or None when `require_marker`."""
    if _FINAL_MARKER not in text and require_marker:
        return None
    tail = text.rsplit(_FINAL_MARKER, 1)[1] if _FINAL_MARKER in text else text
    candidates = _NUMBER.findall(tail)
    if not candidates:
        return None
    # after '####' the first number is the answer; without a marker the last one is
    raw = candidates[0] if _FINAL_MARKER in text else candidates[-1]
    cleaned = raw.replace(",", "").replace("$", "").rstrip(".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _numbers_agree(predicted: float | None, reference: str) -> float | None:
    if predicted is None:
        return None
    gold = final_number(reference)
    if gold is None:
        return 0.0
    return float(abs(predicted - gold) <= 1e-6 * max(1.0, abs(gold)))


def needs_complete_answer(metric: Metric) -> Metric:
    """Mark a metric whose score means nothing for an answer cut at the token limit (a final number, an exact
    string): such an answer is unparseable for it. Free-text metrics (ROUGE-L) score what was generated."""
    metric.needs_complete_answer = True  # type: ignore[attr-defined]
    return metric


def wants_complete_answers(metric: Metric) -> bool:
    return bool(getattr(metric, "needs_complete_answer", False))


@METRICS.register("numeric_match")
@needs_complete_answer
def numeric_match(prediction: str, reference: str) -> float | None:
    """1.0 when the final numbers agree (to 1e-6 relative); None when the prediction gives no final answer.

    When the reference marks its answer with '####' (GSM8K; the math task's instruction asks for
    '#### <number>'), a prediction must too: without the marker its last number may be any step of
    unfinished reasoning, so it is unparseable, not scored. References without the marker take the
    prediction's last number. `last_number_match` always accepts the last number."""
    return _numbers_agree(final_number(prediction, require_marker=_FINAL_MARKER in reference), reference)


@METRICS.register("last_number_match")
@needs_complete_answer
def last_number_match(prediction: str, reference: str) -> float | None:
    """numeric_match that falls back to the prediction's last number when it has no '####'
    (lm-evaluation-harness's "flexible extract"); None when it holds no number at all."""
    return _numbers_agree(final_number(prediction), reference)


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation and collapse whitespace."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


@METRICS.register("exact_match")
@needs_complete_answer
def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_text(prediction) == normalize_text(reference))


@METRICS.register("label_match")
def label_match(prediction: str, reference: str) -> float | None:
    """Normalised exact match of the first non-empty line of the answer against the label."""
    lines = [line for line in prediction.strip().splitlines() if line.strip()]
    if not lines:
        return None
    return float(normalize_text(lines[0]) == normalize_text(reference))


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@METRICS.register("rouge_l")
def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (rouge-score, stemmed)."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def metrics_help() -> str:
    """`--metric`'s help, from the registry."""
    return f"metric name ({', '.join(METRICS.names())}) or module:function"


def resolve_metric(name: str) -> Metric:
    """A registered metric name, or 'module:function' for a user's own."""
    if ":" in name:
        fn = import_object(name)
        if not callable(fn):
            from .errors import UserError

            raise UserError(f"metric {name!r} is not callable")
        return fn  # type: ignore[return-value]
    return METRICS.get(name)
