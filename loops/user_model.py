"""A user's model as a workload: the dict FUNCTION returns, trained by every loop style.

``loopbench run --model PATH.py:FUNCTION`` (or ``module:FUNCTION``) names a
function that takes no arguments and returns a dict (docs/user-models.md):
``model``, ``loss``, ``optimizer``, ``x``, ``y`` and optionally ``metrics``,
``batch_size``, ``validation``, ``name``, ``train_step``, ``equal_work_rtol``. It becomes a workload
registered under the dict's ``name`` (default: FUNCTION's name), so cells,
summary.csv and the reports treat it as any other workload.

- Every worker seeds (``keras.utils.set_random_seed``), then imports the user's
  file and calls FUNCTION: running a user's file runs their code, as pytest does.
- Its initial weights are compared with those the inspection found (a sha256
  of every weight), not trusted to the seed.
- ``fit`` compiles the model with the dict's loss, optimizer and metrics, the
  same objects the custom styles use; the custom styles run one generic
  GradientTape step: ``model(x, training=True)``, the loss plus the model's own
  losses (regularisation, ``add_loss``) as fit adds them, ``apply_gradients``,
  the metrics. Non-trainable updates (BatchNormalization's moving statistics)
  happen inside the layer's call in Keras 3, in every style alike.
- With ``train_step(model, optimizer, batch) -> {"loss": ...}`` (``batch`` is
  ``(x, y)``) every style runs the user's step instead, fit through a
  ``keras.Model`` wrapper whose ``train_step`` calls it. ``loss`` is then only
  the yardstick of equal work: the validation loss every style is compared on.
- ``inspect`` (run by the command line in a child process before any worker
  starts) checks the dict, builds the model, runs one step eagerly and counts
  the step's FLOPs with TensorFlow's profiler (loops/flops.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf
from tf_loopbench.loops.base import WORKLOADS, Batch, Dataset, TrainState, Workload, WorkloadConfig
from tf_loopbench.loops.model_spec import (
    NAME_PATTERN,
    ModelSource,
    ModelSpec,
    ModelSpecError,
    parse_source,
)

REQUIRED_KEYS = ("model", "loss", "optimizer", "x", "y")
OPTIONAL_KEYS = ("metrics", "batch_size", "validation", "name", "train_step", "equal_work_rtol")
#: the largest ``equal_work_rtol`` a model may ask for: a looser check could not tell
#: one step more from equal work
MAX_EQUAL_WORK_RTOL = 0.05
DEFAULT_BATCH_SIZE = 32  # Keras's own default for fit
#: the held-out tail when the dict gives no ``validation``: a tenth, at most this many
MAX_HELD_OUT = 2000
#: rows per forward pass when evaluating (whole validation sets of images would not fit)
EVALUATION_CHUNK = 1024
#: prefix of the flattened keys of a dict ``x`` (batches are flat dicts of arrays)
X_KEY = "x"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- loading


def load_function(source: ModelSource) -> Callable[[], Any]:
    """Import the user's file or module (running its code) and return FUNCTION."""
    if source.kind == "pickle":

        def unpickle() -> Any:
            with open(source.target, "rb") as handle:
                return pickle.load(handle)

        return unpickle
    if source.kind == "file":
        path = Path(source.target)
        # siblings of the file import as they would when the user runs it
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        module_name = f"loopbench_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"{path.name}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # classes defined there pickle by reference
        where = path.name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelSpecError(f"importing {where} raised {one_line(exc)}") from None
    else:
        where = source.target
        try:
            module = importlib.import_module(source.target)
        except ModuleNotFoundError as exc:
            raise ModelSpecError(f"no module named {exc.name or source.target!r}") from None
        except Exception as exc:
            raise ModelSpecError(f"importing {where} raised {one_line(exc)}") from None
    function = getattr(module, source.function, None)
    if function is None:
        raise ModelSpecError(f"{where} has no function {source.function!r}")
    if not callable(function):
        raise ModelSpecError(f"{where}: {source.function} is not a function")
    return function


def call_function(source: ModelSource, seed: int) -> Mapping[str, Any]:
    """Seed, import, call FUNCTION; its dict (or ModelSpecError with one line)."""
    keras.utils.set_random_seed(seed)
    function = load_function(source)
    label = f"{source.function}()" if source.function else "the pickled model dict"
    try:
        result = function()
    except Exception as exc:
        raise ModelSpecError(f"{label} raised {one_line(exc)}") from None
    if not isinstance(result, Mapping):
        raise ModelSpecError(f"{label} returned a {type(result).__name__}, not a dict")
    return result


# ----------------------------------------------------------------------------- checking


@dataclass
class UserModel:
    """FUNCTION's dict, checked and resolved (loss and metrics as Keras objects)."""

    model: keras.Model
    loss: keras.losses.Loss
    optimizer: keras.optimizers.Optimizer
    metrics: list[keras.metrics.Metric]
    train: dict[str, np.ndarray]  # flat: "x" or "x.<input>", and "y"
    val: dict[str, np.ndarray]
    x_keys: tuple[str, ...] | None  # the inputs of a dict x; None: x is one array
    batch_size: int | None
    name: str
    train_step: Callable[..., Any] | None
    equal_work_rtol: float | None = None


def _arrays(value: Any, what: str) -> np.ndarray | dict[str, np.ndarray]:
    if isinstance(value, Mapping):
        if not value:
            raise ModelSpecError(f"'{what}' is an empty dict")
        return {str(k): _arrays(v, f"{what}[{k!r}]") for k, v in value.items()}
    if not hasattr(value, "__array__") and not isinstance(value, list | tuple):
        raise ModelSpecError(f"'{what}' is a {type(value).__name__}, not a NumPy array")
    array = np.asarray(value)
    if array.ndim == 0:
        raise ModelSpecError(f"'{what}' is a scalar, not an array of examples")
    return array


def _rows(x: np.ndarray | dict[str, np.ndarray]) -> int:
    if isinstance(x, dict):
        lengths = {k: len(v) for k, v in x.items()}
        if len(set(lengths.values())) > 1:
            raise ModelSpecError(f"the arrays of 'x' have different lengths: {lengths}")
        return next(iter(lengths.values()))
    return len(x)


def _flat(x: Any, y: np.ndarray) -> dict[str, np.ndarray]:
    if isinstance(x, dict):
        return {**{f"{X_KEY}.{k}": v for k, v in x.items()}, "y": y}
    return {X_KEY: x, "y": y}


def _cut(arrays: dict[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in arrays.items()}


def check_model_dict(
    result: Mapping[str, Any], default_name: str, data_size: int | None
) -> UserModel:
    """Check FUNCTION's dict and resolve it; ModelSpecError (one line) on bad input."""
    unknown = sorted(set(result) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ModelSpecError(
            f"the model dict has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        raise ModelSpecError(f"the model dict has no {', '.join(map(repr, missing))}")
    model = result["model"]
    if not isinstance(model, keras.Model):
        raise ModelSpecError(f"'model' is a {type(model).__name__}, not a keras.Model (Keras 3)")
    optimizer = result["optimizer"]
    if isinstance(optimizer, str):
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError:
            raise ModelSpecError(f"unknown optimizer {result['optimizer']!r}") from None
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ModelSpecError(f"'optimizer' is a {type(optimizer).__name__}, not a Keras optimizer")
    name = result.get("name", default_name)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ModelSpecError(f"'name' {name!r} must be letters, digits, '_', '.' or '-' (up to 64)")
    batch_size = result.get("batch_size")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ModelSpecError(f"'batch_size' {batch_size!r} is not a positive integer")
    train_step = result.get("train_step")
    if train_step is not None and not callable(train_step):
        raise ModelSpecError("'train_step' is not a function (model, optimizer, batch) -> dict")

    equal_work_rtol = result.get("equal_work_rtol")
    if equal_work_rtol is not None and (
        isinstance(equal_work_rtol, bool)
        or not isinstance(equal_work_rtol, int | float | np.floating)
        or not 0 < equal_work_rtol <= MAX_EQUAL_WORK_RTOL
    ):
        raise ModelSpecError(
            f"'equal_work_rtol' {equal_work_rtol!r} must be a number above 0 and at most "
            f"{MAX_EQUAL_WORK_RTOL} (a relative tolerance)"
        )

    x, y = _arrays(result["x"], "x"), _arrays(result["y"], "y")
    if isinstance(y, dict):
        raise ModelSpecError("'y' is a dict; one output's targets, as one array, are supported")
    n = _rows(x)
    if n != len(y):
        raise ModelSpecError(f"'x' has {n} examples and 'y' {len(y)}: they must be equal")
    train = _flat(x, y)
    if "validation" in result and result["validation"] is not None:
        pair = result["validation"]
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ModelSpecError("'validation' must be an (x, y) pair")
        x_val, y_val = _arrays(pair[0], "validation x"), _arrays(pair[1], "validation y")
        if isinstance(x_val, dict) != isinstance(x, dict) or (
            isinstance(x, dict) and set(x_val) != set(x)
        ):
            raise ModelSpecError("the validation 'x' does not have the inputs of 'x'")
        if _rows(x_val) != len(y_val) or len(y_val) == 0:
            raise ModelSpecError("the validation x and y must have the same, non-zero length")
        val = _flat(x_val, y_val)
    else:
        if n < 2:
            raise ModelSpecError(f"{n} example(s): too few to hold some out for validation")
        held_out = min(MAX_HELD_OUT, max(1, n // 10))
        val, train = _cut(train, slice(n - held_out, n)), _cut(train, slice(0, n - held_out))
    n_train = len(train["y"])
    if data_size is not None:
        if data_size > n_train:
            raise ModelSpecError(
                f"data size {data_size} is larger than the model's {n_train} training examples"
            )
        train = _cut(train, slice(0, data_size))

    x_keys = tuple(x) if isinstance(x, dict) else None
    first_rows = slice(0, min(len(train["y"]), batch_size or DEFAULT_BATCH_SIZE))
    first = _inputs(train, x_keys, first_rows)
    try:
        prediction = model(first, training=False)  # builds a model that is not built yet
    except Exception as exc:
        raise ModelSpecError(f"the model cannot be called on 'x': {one_line(exc)}") from None
    y_first = train["y"][first_rows]
    loss = _resolve_loss(result["loss"], y_first, prediction)
    try:
        value = loss(y_first, prediction)
        if len(value.shape) != 0:
            raise ValueError(f"the loss is not a scalar (shape {value.shape})")
    except Exception as exc:
        shape = getattr(prediction, "shape", "?")
        raise ModelSpecError(
            f"the model's output (shape {tuple(shape)}) does not fit the loss "
            f"{getattr(loss, 'name', loss)!r} with 'y' of shape {y_first.shape}: {one_line(exc)}"
        ) from None
    metrics = _resolve_metrics(result.get("metrics"), y_first, prediction)
    return UserModel(
        model=model,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        train=train,
        val=val,
        x_keys=x_keys,
        batch_size=int(batch_size) if batch_size is not None else None,
        name=name,
        train_step=train_step,
        equal_work_rtol=float(equal_work_rtol) if equal_work_rtol is not None else None,
    )


def _resolve_loss(identifier: Any, y: np.ndarray, prediction: Any) -> keras.losses.Loss:
    """The loss object compile would make from ``identifier`` (names, functions, objects)."""
    from keras.src.trainers.compile_utils import get_loss  # what compile() resolves with

    if identifier is None:
        raise ModelSpecError("'loss' is None")
    try:
        return get_loss(identifier, y, prediction)
    except (ValueError, TypeError) as exc:
        raise ModelSpecError(f"unknown loss {identifier!r}: {one_line(exc)}") from None


def _resolve_metrics(metrics: Any, y: np.ndarray, prediction: Any) -> list[keras.metrics.Metric]:
    """Metric objects as compile makes them; the same objects go to fit's compile."""
    from keras.src.trainers.compile_utils import get_metric

    if metrics is None:
        return []
    if not isinstance(metrics, list | tuple):
        raise ModelSpecError("'metrics' must be a list")
    resolved = []
    for identifier in metrics:
        try:
            resolved.append(get_metric(identifier, y, prediction))
        except (ValueError, TypeError) as exc:
            raise ModelSpecError(f"unknown metric {identifier!r}: {one_line(exc)}") from None
    return resolved


def _inputs(arrays: Mapping[str, Any], x_keys: tuple[str, ...] | None, rows: slice | None = None):
    """The model's input from a flat batch: one array, or a dict of the named inputs."""

    def take(value: Any) -> Any:
        return value if rows is None else value[rows]

    if x_keys is None:
        return take(arrays[X_KEY])
    return {key: take(arrays[f"{X_KEY}.{key}"]) for key in x_keys}


def weights_digest(model: keras.Model) -> tuple[str, str]:
    """(sha256 of every weight's dtype, shape and bytes, in order; the weights' device type)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(f"{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    device = "cpu"
    if model.weights:
        variable = getattr(model.weights[0], "value", model.weights[0])
        device = tf.DeviceSpec.from_string(variable.device or "/CPU:0").device_type or "CPU"
    return digest.hexdigest(), device.lower()


def load_user_model(source: ModelSource, seed: int, data_size: int | None) -> UserModel:
    """Seed, import the user's code, call FUNCTION, check its dict."""
    result = call_function(source, seed)
    return check_model_dict(result, source.default_name, data_size)


# ----------------------------------------------------------------------------- the workload


class _StepModel(keras.Model):
    """``Model.fit`` entry point for a user's own step: ``train_step`` calls it."""

    def __init__(self, workload: UserWorkload, state: TrainState) -> None:
        super().__init__(name=f"{workload.name}_fit".replace(".", "_").replace("-", "_"))
        self.workload = workload
        self.state = state
        self.inner = state.models["model"]

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.inner(inputs, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data  # fit passes (x, y)
        return self.workload.step(self.state, x, y)


class UserWorkload(Workload):
    """A user's model; one subclass per ``ModelSpec`` (``workload_class``)."""

    spec: ClassVar[ModelSpec]
    description = "a user's model"

    def __init__(self, config: WorkloadConfig | None = None) -> None:
        super().__init__(config)
        self._user: UserModel | None = None
        self._state: TrainState | None = None
        #: sha256 of the initial weights this process built (see ``build``)
        self.initial_weights_digest: str | None = None

    @property
    def user(self) -> UserModel:
        """FUNCTION's dict, made on first use: seed, import, call, check."""
        if self._user is None:
            source = parse_source(self.spec.source)
            self._user = load_user_model(source, self.config.seed, self.config.data_size)
        return self._user

    @property
    def fit_reports_running_mean(self) -> bool:
        return not self.spec.custom_train_step

    def n_examples(self) -> int:
        return self.spec.n_train

    def make_data(self) -> Dataset:
        user = self.user
        return Dataset(train=user.train, val=user.val, source=self.spec.source)

    def build(self) -> TrainState:
        """The model FUNCTION built (once per process), its optimizer built; raises if
        the initial weights differ from those the inspection saw on this device."""
        if self._state is not None:
            return self._state
        user = self.user
        digest, device = weights_digest(user.model)
        self.initial_weights_digest = digest
        expected = self.spec.weights_digest
        if expected and device == self.spec.digest_device and digest != expected:
            raise RuntimeError(
                f"{self.spec.name}: the initial weights differ from those the inspection "
                "built (FUNCTION must build them from the seed: create the model inside it)"
            )
        if not user.optimizer.built:
            user.optimizer.build(user.model.trainable_variables)
        self._state = TrainState(
            models={"model": user.model},
            optimizers={"optimizer": user.optimizer},
            metrics={metric.name: metric for metric in user.metrics},
        )
        return self._state

    def step(self, state: TrainState, x: Any, y: Any) -> dict[str, Any]:
        """One training step on (x, y): the user's ``train_step``, else the generic one."""
        model, optimizer = state.models["model"], state.optimizers["optimizer"]
        user_step = self.user.train_step
        if user_step is not None:
            return dict(user_step(model, optimizer, (x, y)))
        with tf.GradientTape() as tape:
            prediction = model(x, training=True)
            loss = self.user.loss(y, prediction)
            if model.losses:  # regularisation and add_loss terms, as fit adds them
                loss = loss + tf.add_n(
                    [tf.reduce_sum(tf.cast(extra, loss.dtype)) for extra in model.losses]
                )
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        for metric in state.metrics.values():
            metric.update_state(y, prediction)
        return {"loss": loss}

    def train_step(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        return self.step(state, _inputs(batch, self.user.x_keys), batch["y"])

    def evaluate(self, state: TrainState, data: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The validation loss (and metrics) in chunks, eagerly: the same code for
        every loop style, so losses after equal work compare."""
        model, user = state.models["model"], self.user
        metrics = [_fresh(metric) for metric in user.metrics]
        n, total = len(data["y"]), 0.0
        for start in range(0, n, EVALUATION_CHUNK):
            rows = slice(start, min(n, start + EVALUATION_CHUNK))
            prediction = model(_inputs(data, user.x_keys, rows), training=False)
            y = data["y"][rows]
            total += float(user.loss(y, prediction)) * (rows.stop - rows.start)
            for metric in metrics:
                if metric is not None:
                    metric.update_state(y, prediction)
        result = {"loss": total / n}
        for metric in metrics:
            if metric is not None:
                result[metric.name] = float(metric.result())
        return result

    def equal_work_loss(self, state: TrainState, data: Mapping[str, np.ndarray]) -> float:
        """The dict's loss of the training-mode forward pass (the one the step takes:
        BatchNormalization normalizes with the batch's statistics, Dropout draws its
        masks) on ``data`` in chunks, eagerly, then every non-trainable variable (moving
        statistics, random seeds) restored: the run's state is untouched.

        Not ``evaluate``'s inference-mode loss: a few steps in, BatchNormalization's
        moving statistics are still near their initial values, and that loss amplifies
        float rounding a hundredfold (ResNet-20: one unit in the last place of the
        initial weights moved it 3e-3 after 3 steps, one more step 1e-2; this loss 5e-5
        and 7e-2; docs/atlas-method.md)."""
        model, user = state.models["model"], self.user
        saved = [(variable, variable.numpy()) for variable in model.non_trainable_variables]
        n, total = len(data["y"]), 0.0
        try:
            for start in range(0, n, EVALUATION_CHUNK):
                rows = slice(start, min(n, start + EVALUATION_CHUNK))
                prediction = model(_inputs(data, user.x_keys, rows), training=True)
                total += float(user.loss(data["y"][rows], prediction)) * (rows.stop - rows.start)
        finally:
            for variable, value in saved:
                variable.assign(value)
        return total / n

    def fit_model(self, state: TrainState) -> keras.Model:
        if self.user.train_step is not None:
            model = _StepModel(self, state)
            model.compile()  # the step applies the dict's optimizer; Keras's defaults otherwise
            return model
        model = state.models["model"]
        model.compile(
            optimizer=state.optimizers["optimizer"],
            loss=self.user.loss,
            metrics=list(state.metrics.values()) or None,
        )
        return model

    def fit_arguments(self, train: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        return _inputs(train, self.user.x_keys), train["y"]

    def flops_per_example(self) -> float:
        """Counted on the traced step at inspection (loops/flops.py); NaN if that failed."""
        flops = self.spec.flops_per_example
        return float(flops) if flops is not None else math.nan


def _fresh(metric: keras.metrics.Metric) -> keras.metrics.Metric | None:
    """An unused copy of ``metric`` for evaluation (None if it cannot be copied)."""
    try:
        return type(metric).from_config(metric.get_config())
    except Exception:  # noqa: BLE001  (a metric without a config is left out of evaluation)
        return None


def workload_class(spec: ModelSpec) -> type[UserWorkload]:
    """A ``UserWorkload`` subclass for ``spec`` (not registered)."""
    return type(
        f"UserWorkload[{spec.name}]",
        (UserWorkload,),
        {
            "spec": spec,
            "name": spec.name,
            "default_batch_size": spec.batch_size,
            "description": spec.description,
            "equal_work_rtol": spec.equal_work_rtol,
        },
    )


def register(spec: ModelSpec) -> type[Workload]:
    """Register ``spec``'s workload under its name (again: a no-op for the same spec)."""
    if spec.name in WORKLOADS:
        existing = WORKLOADS.get(spec.name)
        if getattr(existing, "spec", None) == spec:
            return existing
        if issubclass(existing, UserWorkload):
            raise ModelSpecError(f"two models are named {spec.name!r}: give one another 'name'")
        raise ModelSpecError(
            f"the model name {spec.name!r} is a built-in workload's: give the dict another 'name'"
        )
    return WORKLOADS.register(spec.name)(workload_class(spec))


def register_run_workloads(specs: tuple[ModelSpec, ...], needed: str) -> None:
    """In a worker: register the run's user models and, if ``needed`` is still
    unknown, the installed plugins' workloads (loops/plugins.py)."""
    for spec in specs:
        register(spec)
    if needed not in WORKLOADS:
        from tf_loopbench.loops.plugins import load_plugins

        load_plugins()


# ----------------------------------------------------------------------------- inspection


def inspect(
    source_text: str,
    seed: int,
    data_size: int | None = None,
    batch_size: int | None = None,
    name: str | None = None,
    plugin: str | None = None,
) -> ModelSpec:
    """Check a user's model the way every worker will build it, before any worker runs:
    call FUNCTION, check the dict, run one training step eagerly, count the step's
    FLOPs. Returns what the workers need; raises ModelSpecError (one line).

    Starts TensorFlow's runtime: the command line runs it in a child process.
    """
    source = parse_source(source_text)
    user = load_user_model(source, seed, data_size)
    name = name or user.name
    batch = batch_size or user.batch_size or DEFAULT_BATCH_SIZE
    digest, device = weights_digest(user.model)
    n_params = sum(int(np.prod(w.shape)) for w in user.model.trainable_weights)
    kind = "own train_step" if user.train_step is not None else "generic step"
    spec = ModelSpec(
        source=source.text,
        name=name,
        n_train=len(user.train["y"]),
        batch_size=user.batch_size or DEFAULT_BATCH_SIZE,
        description=(
            f"{Path(source.target).name}{':' + source.function if source.function else ''}: "
            f"{type(user.model).__name__} {user.model.name!r}, {n_params:,} parameters, "
            f"{user.loss.name}, {type(user.optimizer).__name__}, {kind}"
        ),
        weights_digest=digest,
        digest_device=device,
        custom_train_step=user.train_step is not None,
        plugin=plugin,
        equal_work_rtol=user.equal_work_rtol,
    )
    workload = workload_class(spec)(WorkloadConfig(seed=seed, data_size=data_size))
    workload._user = user
    state = workload.build()
    rows = min(batch, len(user.train["y"]))
    try:
        logs = workload.train_step(state, _cut(user.train, slice(0, rows)))
    except Exception as exc:
        raise ModelSpecError(f"one training step failed: {one_line(exc)}") from None
    if not isinstance(logs, Mapping) or "loss" not in logs:
        raise ModelSpecError("train_step must return a dict with a 'loss'")
    loss = np.asarray(logs["loss"])
    if loss.size != 1 or not np.isfinite(loss).all():
        raise ModelSpecError(f"the step's 'loss' is not a finite scalar: {loss!r}")
    if int(user.optimizer.iterations.numpy()) != 1:
        raise ModelSpecError(
            "train_step must apply its updates with the optimizer it is given "
            "(optimizer.iterations did not advance by one)"
        )
    try:
        from tf_loopbench.loops.flops import model_flops_per_example

        flops: float | None = model_flops_per_example(workload, rows) or None
    except Exception:  # noqa: BLE001  (no count: MFU is left out, the run goes on)
        flops = None
    return ModelSpec(**{**spec.__dict__, "flops_per_example": flops})
