"""Name -> class registries for the two axes (workloads, loop styles).

A decorator fills a dict keyed by name, as nox's session registry does: a
duplicate name is an error, ``get`` returns the registered class, ``names``
lists them in registration order, and tests can snapshot and restore a
registry. Adding a workload or a loop style is adding one file that uses the
decorator; nothing else enumerates the combinations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not registered; its message lists the valid choices."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want a plain line
        return str(self.args[0])


class Registry(Generic[T]):
    """An ordered, duplicate-free mapping of names to registered classes.

    Example::

        WORKLOADS = Registry("workload")

        @WORKLOADS.register("linear")
        class Linear(Workload): ...

        WORKLOADS.get("linear")  # -> Linear
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            obj.name = name  # type: ignore[attr-defined]
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self._items)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def snapshot(self) -> dict[str, T]:
        """A copy of the current contents (for tests that register extra items)."""
        return dict(self._items)

    def restore(self, snapshot: dict[str, T]) -> None:
        self._items = dict(snapshot)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
