"""Name -> class registries for the two axes (workloads, loop styles).

A decorator fills a dict keyed by name, as nox's session registry does: a
duplicate name is an error, ``get`` returns the registered class, ``names``
lists them in registration order, and tests can snapshot and restore a
registry. Adding a workload or a loop style is adding one file that uses the
decorator; nothing else enumerates the combinations.

The loop registry also collects the ladder the loop styles declare
(:meth:`LoopRegistry.ladder`): the reference loop, and for each rung the rung it
compares with and what it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

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


class LoopRegistry(Registry[T]):
    """The loop styles' registry: registration order is ladder order."""

    def ladder(self) -> dict[str, Any]:
        """The ladder the registered styles declare, as JSON-able data (metadata.json's
        ``ladder``; ``reports.rundir.Ladder`` reads it). Raises ValueError when the
        declarations do not make one ladder: not exactly one reference, or a rung that
        compares with a style not registered before it.

        Example (with the five styles of loops/styles)::

            LOOPS.ladder()["rungs"][2]
            # {"loop": "tf_function", "compares_with": "eager", "changes": "graph mode",
            #  "reference": False}
        """
        rungs = []
        for name, style in self._items.items():
            reference = bool(getattr(style, "reference", False))
            compares_with = getattr(style, "compares_with", None)
            changes = getattr(style, "changes", "")
            if not changes:
                raise ValueError(f"{self.kind} {name!r} declares no 'changes'")
            if compares_with is not None and compares_with not in [r["loop"] for r in rungs]:
                raise ValueError(
                    f"{self.kind} {name!r} compares with {compares_with!r}, which is not "
                    "registered before it"
                )
            if reference and compares_with is not None:
                raise ValueError(f"the reference {self.kind} {name!r} compares with nothing")
            rungs.append(
                {
                    "loop": name,
                    "compares_with": compares_with,
                    "changes": changes,
                    "reference": reference,
                    "compiler": bool(getattr(style, "compiler", False)),
                }
            )
        references = [rung["loop"] for rung in rungs if rung["reference"]]
        if len(references) != 1:
            raise ValueError(
                f"exactly one {self.kind} must be the reference, found {len(references)}"
                + (f" ({', '.join(references)})" if references else "")
            )
        return {"reference": references[0], "rungs": rungs}
