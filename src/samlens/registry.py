"""A tiny name → factory registry shared by datasets, models and optimizers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from samlens.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; unknown names raise a one-line error listing the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid choices: {valid}") from None

    def options(self, name: str, leading: tuple[str, ...]) -> dict[str, Any]:
        """The options the factory ``name`` takes after its ``leading`` arguments, with their defaults
        (``inspect.Parameter.empty`` where one is required)."""
        params = inspect.signature(self.get(name)).parameters  # type: ignore[arg-type]
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {key: p.default for key, p in params.items() if key not in leading and p.kind in kinds}

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
