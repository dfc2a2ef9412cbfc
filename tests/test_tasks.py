import pytest

from datawhisperer.errors import UserError
from datawhisperer.tasks import TASKS, FieldMap, examples_from_records, load_task


def test_presets_are_registry_entries_with_metrics():
    assert {"math", "summarization", "instruction", "classification"} <= set(TASKS.names())
    assert load_task("math").metric == "numeric_match"
    with pytest.raises(UserError, match="did you mean 'math'"):
        load_task("maths")


def test_template_input_drops_empty_optional_part():
    fields = FieldMap().with_task_defaults(load_task("instruction"))
    [with_input, without] = examples_from_records(
        [{"instruction": "Translate.", "input": "bonjour", "output": "hello"},
         {"instruction": "Say hi.", "input": "", "output": "hi"}], fields)
    assert with_input.turns == (("user", "Translate.\nbonjour"),) and with_input.answer == "hello"
    assert without.turns == (("user", "Say hi."),)


def test_chat_records_last_assistant_turn_is_the_answer():
    fields = FieldMap().with_task_defaults(load_task("instruction"))
    [example] = examples_from_records([{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6"}]}], fields)
    assert example.answer == "6"
    assert example.turns == (("user", "Be brief.\n\n2+2?"), ("assistant", "4"), ("user", "and 3+3?"))


def test_sharegpt_and_prompt_completion_records():
    fields = FieldMap().with_task_defaults(load_task("instruction"))
    sharegpt, parts, pair, chat_pair = examples_from_records([
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                           {"from": "gpt", "value": "4"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of "},
                                                   {"type": "text", "text": "France?"}]},
                      {"role": "assistant", "content": "Paris"}]},
        {"prompt": "The sky is", "completion": " blue."},
        {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]},
    ], fields)
    assert sharegpt.turns == (("user", "Be brief.\n\n2+2?"),) and sharegpt.answer == "4"
    assert parts.turns == (("user", "Capital of France?"),) and parts.answer == "Paris"
    assert pair.turns == (("user", "The sky is"),) and pair.answer == " blue."
    assert chat_pair.turns == (("user", "Hi"),) and chat_pair.answer == "Hello"


def test_explicit_fields_win_over_messages():
    fields = FieldMap(input_field="q", output_field="a").with_task_defaults(load_task("instruction"))
    [example] = examples_from_records([{"q": "x", "a": "y", "messages": []}], fields)
    assert example.turns == (("user", "x"),)


@pytest.mark.parametrize("record,message", [
    ({"instruction": "x", "output": "y"}, "record 0 has no field 'input'"),
    ({"instruction": "x", "input": "", "output": None}, "null"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "last turn"),
    ({"messages": "hello"}, "non-empty list"),
    ({"conversations": [{"speaker": "human", "text": "hi"}]}, "needs 'role' and 'content'"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "must be text"),
    ({"prompt": "x", "completion": [{"role": "assistant", "content": "y"}]}, "both be text or both be lists"),
])
def test_bad_records_name_record_and_field(record, message):
    fields = FieldMap().with_task_defaults(load_task("instruction"))
    with pytest.raises(UserError, match=message):
        examples_from_records([record], fields)


def test_task_file(tmp_path):
    path = tmp_path / "sentiment.yaml"
    path.write_text("instruction: Label the review.\ninput_field: review\noutput_field: stars\n"
                    "metric: exact_match\nmax_new_tokens: 4\n", encoding="utf-8")
    spec = load_task(str(path))
    assert spec.name == "sentiment" and spec.input_field == "review" and spec.max_new_tokens == 4
    path.write_text("instructions: typo\n", encoding="utf-8")
    with pytest.raises(UserError, match="unknown task keys"):
        load_task(str(path))
