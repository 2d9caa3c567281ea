"""A small generic registry of lazily imported objects (``"pkg.module:attr"`` placeholders).

Registering stores a string; nothing is imported until :meth:`Registry.get` is called, so
``import bench`` never pulls in torch, transformers or any optional dependency.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from bench.errors import BadInput

T = TypeVar("T")


def import_object(target: str) -> Any:
    """Import ``"pkg.module:attr"`` and return the attribute."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"lazy target must look like 'pkg.module:attr', got {target!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ImportError(f"{module_name} has no attribute {attr!r}") from exc


class Registry(Generic[T]):
    """Name -> lazily imported object. Registering a name twice is an error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str) -> None:
        if name in self._targets:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._targets))

    def names(self) -> list[str]:
        return sorted(self._targets)

    def target(self, name: str) -> str:
        self._check(name)
        return self._targets[name]

    def get(self, name: str) -> T:
        self._check(name)
        if name not in self._loaded:
            self._loaded[name] = import_object(self._targets[name])
        return self._loaded[name]

    def _check(self, name: str) -> None:
        if name not in self._targets:
            known = ", ".join(self.names()) or "none"
            raise BadInput(f"unknown {self.kind} {name!r}; known: {known}")
