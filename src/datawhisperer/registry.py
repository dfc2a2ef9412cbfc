"""Name -> object registries with lazy imports and "did you mean" errors.

Tasks, metrics, backends and selection methods are all registry entries: adding one never
means a new branch in old code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


def import_object(spec: str) -> object:
    """Import `package.module:attribute` (the attribute may be dotted)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"{spec!r} is not of the form 'module:function'")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


class Registry(Generic[T]):
    """A named collection. Entries may be objects or lazy 'module:attr' strings."""

    def __init__(self, kind: str, protocol: type | None = None) -> None:
        self.kind = kind
        self.protocol = protocol  # a runtime-checkable Protocol every entry must satisfy, checked when it loads
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | None:
        if obj is not None:
            self._entries[name] = self._checked(name, obj) if not isinstance(obj, str) else obj
            return None

        def decorator(target: T) -> T:
            self._entries[name] = self._checked(name, target)
            return target

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._checked(name, import_object(entry))  # lazy: heavy optional backends load when asked for
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def _checked(self, name: str, entry):
        if self.protocol is not None and not isinstance(entry, self.protocol):
            raise TypeError(f"{self.kind} {name!r} ({type(entry).__name__}) is not a {self.protocol.__name__}")
        return entry


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""
