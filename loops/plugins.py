"""Workloads from installed packages: the entry-point group ``tf_loopbench.workloads``.

A package declares, in its pyproject.toml::

    [project.entry-points."tf_loopbench.workloads"]
    my_model = "my_package.models:make"          # a FUNCTION returning a model dict
    my_workload = "my_package.workloads:MyWorkload"  # a loops.base.Workload subclass

The entry point's name is the workload name (``loopbench run --workload my_model``).
A FUNCTION is run as ``--model my_package.models:make`` would be (loops/user_model.py);
a Workload subclass is registered beside the built-ins. Loading a plugin imports
the package's code. ``loopbench list`` shows plugins with the package they come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

GROUP = "tf_loopbench.workloads"


@dataclass(frozen=True)
class Plugin:
    name: str  # the workload name
    value: str  # "module:attribute"
    package: str  # the distribution that declares it
    kind: str = "unknown"  # "workload" (a Workload subclass), "model" (a FUNCTION), "broken"
    error: str | None = None  # why a broken plugin could not be loaded


def load_plugins() -> list[Plugin]:
    """Import every plugin; register Workload subclasses (names not taken yet) and
    classify the rest. A plugin that fails to import is returned as ``broken``."""
    from tf_loopbench.loops.base import WORKLOADS, Workload

    loaded = []
    for point in entry_points(group=GROUP):
        package = point.dist.name if point.dist is not None else "?"
        try:
            obj = point.load()
        except Exception as exc:  # noqa: BLE001  (one broken plugin must not stop the others)
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            loaded.append(Plugin(point.name, point.value, package, "broken", error))
            continue
        if isinstance(obj, type) and issubclass(obj, Workload):
            if point.name not in WORKLOADS:
                WORKLOADS.register(point.name)(obj)
            loaded.append(Plugin(point.name, point.value, package, "workload"))
        elif callable(obj):
            loaded.append(Plugin(point.name, point.value, package, "model"))
        else:
            error = f"{point.value} is neither a Workload subclass nor a function"
            loaded.append(Plugin(point.name, point.value, package, "broken", error))
    return loaded
