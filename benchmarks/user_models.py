"""Users' models in a run (``--model``, plugin models): inspected before any worker starts.

The parent must not start TensorFlow's runtime (workers are forked from a server
that has only imported it), and calling FUNCTION builds a Keras model, which
does. So each model is inspected in a child process (``loops.user_model.inspect``:
call FUNCTION after seeding, check the dict, one eager training step, FLOPs of
the traced step); the parent gets back a ``ModelSpec`` (or one line saying what
is wrong, for the command line to print with exit status 2) and registers the
model's workload, which every worker then builds again from the same source.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_loopbench.benchmarks.config import UsageError
from tf_loopbench.loops.model_spec import PICKLE_PREFIX, ModelSpec, ModelSpecError, parse_source

#: seconds a model's inspection may take (FUNCTION, one step, one trace)
INSPECTION_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ModelRequest:
    source: str  # PATH.py:FUNCTION, module:FUNCTION or pickle:FILE
    name: str | None = None  # a plugin's entry-point name (None: the dict's or FUNCTION's)
    plugin: str | None = None  # the package a plugin comes from
    label: str | None = None  # how errors name it (default: the source)


def _inspect_in_child(
    request: ModelRequest,
    seed: int,
    data_size: int | None,
    batch_size: int | None,
    threads: dict[str, int],
    connection: Any,
) -> None:
    """Child process: inspect one model and send {"ok": ModelSpec} or {"error": line}."""
    from tf_loopbench.benchmarks.worker import attach_to_parent, configure_threads, send_to_parent

    attach_to_parent(connection)
    configure_threads(threads["intra_op_threads"], threads["inter_op_threads"])
    try:
        from tf_loopbench.loops.user_model import inspect, one_line

        try:
            spec = inspect(
                request.source, seed, data_size, batch_size, request.name, request.plugin
            )
            answer: dict[str, Any] = {"ok": spec}
        except ModelSpecError as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001  (whatever the user's code raised: one line)
            answer = {"error": one_line(exc)}
    except Exception as exc:  # noqa: BLE001
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    send_to_parent(connection, answer)


def inspect_models(
    requests: list[ModelRequest],
    seed: int,
    data_size: int | None,
    batch_size: int | None,
    threads: dict[str, int],
    start_method: str,
    timeout_s: float = INSPECTION_TIMEOUT_S,
) -> list[ModelSpec]:
    """Inspect each model in a child process and register its workload here.

    Raises ModelSpecError with one line naming the model and what is wrong.
    """
    from tf_loopbench.benchmarks.runner import call_in_child, worker_context
    from tf_loopbench.loops.user_model import register

    for request in requests:
        parse_source(request.source)  # the form and the file, before any process starts
    context = worker_context(start_method)
    specs = []
    for request in requests:
        answer, _ = call_in_child(
            context,
            _inspect_in_child,
            (request, seed, data_size, batch_size, threads),
            timeout_s,
            failed=lambda answer: answer is None,  # a bad model is one line, not a log
        )
        label = request.label or request.source
        if answer is None:
            raise ModelSpecError(f"{label}: the inspection process died or timed out")
        if "error" in answer:
            raise ModelSpecError(f"{label}: {answer['error']}")
        specs.append(answer["ok"])
    for spec in specs:
        register(spec)
    return specs


def plugin_requests(names: list[str]) -> list[ModelRequest]:
    """Model requests for the names that are plugin models (loops/plugins.py); loads
    the plugins, which registers plugin Workload classes as a side effect."""
    from tf_loopbench.loops.plugins import load_plugins

    models = {p.name: p for p in load_plugins() if p.kind == "model"}
    return [
        ModelRequest(
            models[name].value,
            name=name,
            plugin=models[name].package,
            label=f"workload {name} (plugin from {models[name].package})",
        )
        for name in names
        if name in models
    ]


def model_source(model: Any, directory: str | Path, index: int = 0) -> str:
    """A ``--model`` text for what the Python API was given (``tf_loopbench.run``):

    - a text (``PATH.py:FUNCTION`` or ``module:FUNCTION``): as it is;
    - a module-level function: where it is defined, for workers to import;
    - a model dict (FUNCTION's result, already built): pickled into ``directory``
      (Keras pickles models, layers and optimizers it can save; classes defined in
      a notebook cannot be loaded by another process).
    """
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        path = Path(directory) / f"model-{index}.pkl"
        try:
            with open(path, "wb") as handle:
                pickle.dump(dict(model), handle)
        except Exception as exc:  # noqa: BLE001  (pickle raises many kinds)
            raise ModelSpecError(
                f"the model dict cannot be pickled for the worker processes: {exc}"
            ) from None
        return f"{PICKLE_PREFIX}{path}"
    if callable(model):
        name = getattr(model, "__qualname__", "")
        module_name = getattr(model, "__module__", None)
        if not name.isidentifier() or module_name is None:
            raise ModelSpecError(
                f"{name or model!r} is not a module-level function: worker processes "
                "import FUNCTION by name"
            )
        if module_name == "__main__":
            path = getattr(sys.modules["__main__"], "__file__", None)
            if not path:
                raise ModelSpecError(
                    f"{name} is defined in a notebook or an interactive session, which worker "
                    f"processes cannot import: put it in a .py file and pass 'FILE.py:{name}'"
                )
            return f"{path}:{name}"
        path = getattr(sys.modules.get(module_name), "__file__", None)
        if module_name.startswith("loopbench_user_") and path:  # loaded from a file by us
            return f"{path}:{name}"
        return f"{module_name}:{name}"
    raise ModelSpecError(
        f"model must be 'PATH.py:FUNCTION', a function or a model dict, not {type(model).__name__}"
    )


@contextlib.contextmanager
def given_models(model: Any) -> Iterator[tuple[str, ...]]:
    """The Python API's ``model`` (None, one model, or a list of them: texts, functions,
    model dicts) as ``--model`` texts, for the length of the block (model dicts are
    pickled into a temporary directory removed after it). UsageError (one line) for a
    model that cannot be passed to the workers.

    Example::

        with given_models([make, "examples/vae.py:make"]) as sources:
            run(make_request(model=sources, quick=True))
    """
    models = model if isinstance(model, list | tuple) else [] if model is None else [model]
    with tempfile.TemporaryDirectory(prefix="loopbench-models-") as directory:
        try:
            sources = tuple(model_source(m, directory, i) for i, m in enumerate(models))
        except ModelSpecError as exc:
            raise UsageError(str(exc)) from None
        yield sources
