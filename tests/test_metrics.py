import pytest

from datawhisperer.errors import UserError
from datawhisperer.metrics import METRICS, final_number, metrics_help, resolve_metric


def test_final_number_prefers_marker_then_last_number():
    assert final_number("so 3 + 4 = 7\n#### 7") == 7.0
    assert final_number("#### 1,234.50 dollars") == 1234.5
    assert final_number("The answer is $18.") == 18.0
    assert final_number("first 3 then 12") == 12.0
    assert final_number("no digits here") is None
    assert final_number("#### -5") == -5.0


def test_numeric_match_and_unparseable():
    metric = METRICS.get("numeric_match")
    assert metric("We get 72 clips.\n#### 72", "48 + 24 = 72\n#### 72") == 1.0
    assert metric("#### 71", "#### 72") == 0.0
    assert metric("I don't know", "#### 72") is None  # unparseable, never silently 0


def test_math_answer_without_final_marker_is_unparseable():
    metric = METRICS.get("numeric_match")
    # reasoning cut before its '#### <number>' line: its last number is a step, not an answer
    assert metric("48 + 24 = 72, so half of that is", "#### 36") is None
    assert metric("48 + 24 = 72\n#### 36", "#### 36") == 1.0
    assert metric("72", "72") == 1.0  # a reference without '####' asks for no marker
    assert final_number("first 3 then 12", require_marker=True) is None
    lenient = METRICS.get("last_number_match")
    assert lenient("48 + 24 = 72, so half of that is", "#### 36") == 0.0
    assert lenient("so it is 36", "#### 36") == 1.0


def test_rouge_l_matches_rouge_score_library():
    from rouge_score import rouge_scorer

    metric = METRICS.get("rouge_l")
    pred, ref = "the cat sat on the mat", "a cat was sitting on the mat"
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, pred)["rougeL"].fmeasure
    assert metric(pred, ref) == pytest.approx(expected)
    assert metric("", ref) == 0.0
    assert metric(ref, ref) == pytest.approx(1.0)


def test_label_match_normalises():
    metric = METRICS.get("label_match")
    assert metric("Positive.\nBecause it is nice", "positive") == 1.0
    assert metric("negative", "positive") == 0.0
    assert metric("   ", "positive") is None


def test_unknown_metric_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'rouge_l'"):
        resolve_metric("rouge_k")


def test_module_function_metric():
    fn = resolve_metric("os.path:join")
    assert callable(fn)
    with pytest.raises(UserError, match="cannot import"):
        resolve_metric("no_such_module_xyz:fn")


def test_the_metric_flag_s_help_names_every_registered_metric(monkeypatch):
    def probe(prediction: str, reference: str) -> float:
        return float(prediction == reference)

    monkeypatch.setitem(METRICS._entries, "help_probe_metric", probe)  # removed again after the test
    shown = metrics_help()
    assert all(name in shown for name in METRICS.names()) and "help_probe_metric" in shown
