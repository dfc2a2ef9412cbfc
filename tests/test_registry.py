"""Registries: lazy entries, "did you mean" for unknown names, and `module:attribute` imports."""

import os.path

import pytest

from datawhisperer.errors import UserError
from datawhisperer.registry import Registry, import_object, unknown_name_message


def test_entries_register_directly_or_by_decorator_and_list_sorted():
    registry: Registry[object] = Registry("colour")
    registry.register("red", 1)

    @registry.register("blue")
    def blue():
        return 2

    assert "red" in registry and "blue" in registry and "green" not in registry
    assert registry.names() == ["blue", "red"] and list(registry) == ["blue", "red"]
    assert registry.get("red") == 1 and registry.get("blue") is blue


def test_a_lazy_entry_is_imported_on_first_use_only():
    registry: Registry[object] = Registry("function")
    registry.register("join", "os.path:join")
    registry.register("broken", "no_such_module_here:thing")  # never asked for: never imported
    assert registry.get("join") is os.path.join
    assert registry._entries["join"] is os.path.join  # resolved once, kept
    with pytest.raises(UserError, match="cannot import module 'no_such_module_here'"):
        registry.get("broken")


def test_unknown_names_suggest_the_closest_known_one():
    registry: Registry[int] = Registry("metric")
    for name in ("rouge_l", "exact_match", "numeric_match"):
        registry.register(name, 0)
    with pytest.raises(UserError) as caught:
        registry.get("rouge-l")
    assert str(caught.value) == ("unknown metric 'rouge-l'; did you mean 'rouge_l'? "
                                 "(known: exact_match, numeric_match, rouge_l)")
    with pytest.raises(UserError) as caught:
        registry.get("bleu")
    assert "did you mean" not in str(caught.value) and "(known: exact_match" in str(caught.value)


def test_unknown_name_message_without_a_close_name():
    assert unknown_name_message("task", "x", ["math"]) == "unknown task 'x' (known: math)"


def test_import_object_follows_dotted_attributes():
    assert import_object("os:path.join") is os.path.join


@pytest.mark.parametrize("spec,message", [
    ("os.path.join", "is not of the form 'module:function'"),
    (":join", "is not of the form 'module:function'"),
    ("os:", "is not of the form 'module:function'"),
    ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
    ("os.path:no_such_function", "module 'os.path' has no attribute 'no_such_function'"),
])
def test_import_object_errors_are_one_line(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        import_object(spec)


def test_the_package_registries_resolve_every_entry():
    """Every lazy entry the package declares points at something that exists."""
    from datawhisperer.methods import METHODS
    from datawhisperer.scoring import WEIGHTINGS

    for registry in (METHODS, WEIGHTINGS):
        for name in registry.names():
            assert registry.get(name) is not None


def test_no_module_but_a_method_s_own_file_and_the_registries_names_a_method_or_estimator():
    """What is particular to a method or an estimator lives on its registry entry: no other module names one
    (as a string constant) to branch on it. The method `datawhisperer` shares the package's name, which other
    modules spell (the program's name, the cache directory), so that one name is left out."""
    import ast
    from pathlib import Path

    from datawhisperer.estimators import ESTIMATORS
    from datawhisperer.methods import METHODS

    names = (set(METHODS.names()) | set(ESTIMATORS.names())) - {"datawhisperer"}
    source = Path(__file__).parents[1] / "src" / "datawhisperer"
    owners = {"methods.py", "estimators.py", "whisperer.py", "scoring.py"}  # scoring.py: the weightings' registry
    offenders = []
    for path in sorted(source.rglob("*.py")):
        own = path.parent.name == "baselines" and path.stem != "base"  # a baseline's own file
        if path.name in owners or own:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(source)}:{node.lineno} {node.value!r}")
    assert offenders == []
