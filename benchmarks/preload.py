"""Training data made once, in the fork server, and shared by every worker it forks.

Making a workload's data is not a loop cost (a worker records it as ``data_s``,
apart from every timed phase), but it was a large share of a quick worker's life
(docs/decisions/0003-fork-server-and-shared-data.md).

How it works: before the parent starts the fork server (``benchmarks/runner.py``)
it puts the run's data options in ``LOOPBENCH_PRELOAD`` (which workloads, seed,
data size, data file). The server runs ``benchmarks/server.py``, which
calls :func:`preload`: each of those workloads' ``make_data()`` runs once, its
arrays made read-only. A worker calls :func:`make_data`: if the server made the
data for the same workload, seed, data size and data file, and the data sources
on disk are the ones it saw (Keras' MNIST file present or not, the synthetic
cache directory), the worker uses those arrays (copy-on-write pages: nothing is
copied unless written, and they are read-only); otherwise it makes its own. The
row records which (``data_preloaded``). Nothing here starts TensorFlow's runtime:
making data is NumPy only, so workers still start with a cold runtime.

Run nothing here by hand; ``loopbench run`` does it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tf_loopbench.loops.base import WORKLOADS, Dataset, Workload, WorkloadConfig
from tf_loopbench.loops.data import cache_dir, keras_cache_path

PRELOAD_ENV = "LOOPBENCH_PRELOAD"
#: workloads whose data is worth sharing (linear's is a few kilobytes)
SHARED_WORKLOADS = ("mlp", "gan")

_DATA: dict[tuple[Any, ...], Dataset] = {}


def data_key(name: str, config: WorkloadConfig) -> tuple[Any, ...]:
    """What decides a workload's data, including the files it would be read from."""
    keras_file = keras_cache_path()
    return (
        name,
        config.seed,
        config.data_size,
        config.data_path,
        str(keras_file),
        keras_file.exists(),
        str(cache_dir()),
    )


def preload_request(
    workloads: list[str] | None, seed: int, data_size: int | None, data_path: str | None
) -> str:
    """The ``LOOPBENCH_PRELOAD`` value for a run of ``workloads`` (None: all)."""
    names = [w for w in SHARED_WORKLOADS if workloads is None or w in workloads]
    return json.dumps(
        {"workloads": names, "seed": seed, "data_size": data_size, "data_path": data_path}
    )


def preload(request: str | None = None) -> list[str]:
    """Make the requested workloads' data now; returns the workloads made.

    Any failure (an unknown name, an unreadable data file) is left for the worker,
    which makes its data itself and reports the error as it always does.
    """
    request = os.environ.get(PRELOAD_ENV) if request is None else request
    if not request:
        return []
    try:
        options = json.loads(request)
        config = WorkloadConfig(
            seed=int(options["seed"]),
            data_size=options["data_size"],
            data_path=options["data_path"],
        )
        names = [str(name) for name in options["workloads"]]
    except (ValueError, KeyError, TypeError):
        return []
    made = []
    for name in names:
        try:
            data = WORKLOADS.get(name)(config).make_data()
        except Exception:  # noqa: BLE001  (the worker will meet it and report it)
            continue
        for arrays in (data.train, data.val):
            for array in arrays.values():
                array.flags.writeable = False
        _DATA[data_key(name, config)] = data
        made.append(name)
    return made


def make_data(name: str, workload: Workload) -> tuple[Dataset, bool]:
    """``workload.make_data()``, or the same data made by the fork server: (data, shared)."""
    shared = _DATA.get(data_key(name, workload.config))
    if shared is not None:
        return shared, True
    return workload.make_data(), False
