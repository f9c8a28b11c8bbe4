"""A user's model (``--model PATH.py:FUNCTION``): bad input, initial weights, XLA skips, plugins.

Models are tiny files written to a temporary directory, as a user would write
them. Most checks call the inspection in-process (real TensorFlow, real Keras);
the command line's own handling (one line, exit status 2) is checked through
``tf_loopbench.benchmarks.cli.main``, whose inspection runs in a child process.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.benchmarks.config import Cell, Job, RunConfig
from tf_loopbench.loops.base import WORKLOADS, WorkloadConfig
from tf_loopbench.loops.model_spec import ModelSpecError, parse_source
from tf_loopbench.loops.user_model import inspect, register, workload_class

from tests.test_cli import assert_one_line_error, main_in_process

HEADER = """\
import keras
import numpy as np


def data(n=64, features=4, classes=3):
    rng = np.random.default_rng(0)
    return rng.random((n, features), dtype=np.float32), rng.integers(0, classes, size=n)


def classifier(classes=3):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(classes)])


def good():
    x, y = data()
    return {
        "model": classifier(),
        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "optimizer": "sgd",
        "x": x,
        "y": y,
        "batch_size": 8,
    }
"""


def model_file(tmp_path: Path, body: str = "", name: str = "my_models.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


@pytest.fixture
def registry():
    """Workloads registered by a test are removed after it."""
    saved = WORKLOADS.snapshot()
    yield WORKLOADS
    WORKLOADS.restore(saved)


BAD_MODELS = [
    ("nothere", "", "has no function 'nothere'"),
    (
        "raises",
        "def raises():\n    raise ValueError('no data here')\n",
        "raises() raised ValueError: no data here",
    ),
    ("not_a_dict", "def not_a_dict():\n    return [1]\n", "returned a list, not a dict"),
    (
        "no_loss",
        "def no_loss():\n    d = good()\n    del d['loss'], d['y']\n    return d\n",
        "has no 'loss', 'y'",
    ),
    (
        "no_model",
        "def no_model():\n    d = good()\n    del d['model']\n    return d\n",
        "has no 'model'",
    ),
    (
        "no_optimizer_x",
        "def no_optimizer_x():\n    d = good()\n    del d['optimizer'], d['x']\n    return d\n",
        "has no 'optimizer', 'x'",
    ),
    (
        "lengths",
        "def lengths():\n    d = good()\n    d['y'] = d['y'][:10]\n    return d\n",
        "'x' has 64 examples and 'y' 10",
    ),
    (
        "wrong_output",
        "def wrong_output():\n    d = good()\n    d['loss'] = 'mse'\n    d['model'] = classifier(5)\n    return d\n",
        "does not fit the loss",
    ),
    (
        "typo",
        "def typo():\n    d = good()\n    d['optimiser'] = d.pop('optimizer')\n    return d\n",
        "unknown key(s) 'optimiser'",
    ),
    (
        "not_keras",
        "def not_keras():\n    d = good()\n    d['model'] = object()\n    return d\n",
        "not a keras.Model",
    ),
    (
        "bad_step",
        "def step(model, optimizer, batch):\n    return {'loss': 1.0}\n\n"
        "def bad_step():\n    d = good()\n    d['train_step'] = step\n    return d\n",
        "must apply its updates with the optimizer",
    ),
    (
        "loose",
        "def loose():\n    d = good()\n    d['equal_work_rtol'] = 0.5\n    return d\n",
        "'equal_work_rtol' 0.5 must be a number above 0 and at most 0.05",
    ),
]


@pytest.mark.parametrize(
    ("function", "body", "message"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS]
)
def test_bad_model_gives_one_clear_line(tmp_path, function, body, message):
    path = model_file(tmp_path, body)
    with pytest.raises(ModelSpecError) as caught:
        inspect(f"{path}:{function}", seed=0)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and len(text) < 400


def test_sources_are_checked_before_anything_is_imported(tmp_path):
    with pytest.raises(ModelSpecError, match="no such file"):
        parse_source(f"{tmp_path}/missing.py:make")
    with pytest.raises(ModelSpecError, match="expected PATH.py:FUNCTION"):
        parse_source("examples/vae.py")
    assert parse_source("my_package.models:make").kind == "module"


def _one_line_exit_2(capsys, *args: str) -> str:
    result = main_in_process(list(args), capsys)
    assert_one_line_error(result)
    return next(line for line in result.stderr.splitlines() if line.startswith("loopbench:"))


def test_command_line_bad_models_exit_2_with_one_line(tmp_path, capsys, registry):
    path = model_file(tmp_path, "def raises():\n    raise ValueError('no data here')\n")
    line = _one_line_exit_2(capsys, "run", "--model", f"{tmp_path}/nothing.py:make")
    assert line.startswith("loopbench: error: --model") and "no such file" in line
    # found by the inspection in a child process
    line = _one_line_exit_2(capsys, "run", "--model", f"{path}:raises", "--out", str(tmp_path))
    assert (
        line == f"loopbench: error: --model {path}:raises: raises() raised ValueError: no data here"
    )
    line = _one_line_exit_2(
        capsys, "run", "--model", f"{path}:good", "--batch-size", "512", "--out", str(tmp_path)
    )
    assert "batch size 512 is larger than the good data (58 examples)" in line


def test_a_dict_x_and_a_held_out_tail(tmp_path, registry):
    path = model_file(
        tmp_path,
        """
        def two_inputs():
            a = keras.Input((4,), name="a")
            b = keras.Input((2,), name="b")
            out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
            rng = np.random.default_rng(1)
            x = {"a": rng.random((100, 4)), "b": rng.random((100, 2))}
            return {"name": "two-inputs", "model": keras.Model([a, b], out), "loss": "mse",
                    "optimizer": keras.optimizers.Adam(1e-2), "x": x, "y": rng.random((100, 1)),
                    "metrics": ["mae"]}
        """,
    )
    spec = inspect(f"{path}:two_inputs", seed=0, data_size=50)
    assert (spec.name, spec.n_train, spec.batch_size) == ("two-inputs", 50, 32)
    assert spec.flops_per_example == pytest.approx(2 * 6 * 2)  # forward and weight gradient
    workload = register(spec)(WorkloadConfig(seed=0, data_size=50))
    data = workload.make_data()
    assert set(data.train) == {"x.a", "x.b", "y"} and len(data.train["y"]) == 50
    assert len(data.val["y"]) == 10  # a tenth held out from the end
    state = workload.build()
    before = workload.evaluate(state, data.val)
    workload.train_step(state, {k: v[:32] for k, v in data.train.items()})
    after = workload.evaluate(state, data.val)
    assert set(before) == {"loss", "mae"} and after["loss"] != before["loss"]


def test_initial_weights_are_compared_not_trusted_to_the_seed(tmp_path):
    path = model_file(
        tmp_path,
        """
        def unseeded():
            d = good()
            d["model"].set_weights([np.random.default_rng().random(w.shape) for w in d["model"].weights])
            return d
        """,
    )
    spec = inspect(f"{path}:unseeded", seed=0)
    workload = workload_class(spec)(WorkloadConfig(seed=0))
    with pytest.raises(RuntimeError, match="initial weights differ"):
        workload.build()
    # a deterministic FUNCTION builds the same weights in every process
    seeded = inspect(f"{path}:good", seed=0)
    workload = workload_class(seeded)(WorkloadConfig(seed=0))
    workload.build()
    assert workload.initial_weights_digest == seeded.weights_digest


def test_an_op_xla_cannot_compile_skips_that_cell_only(tmp_path, registry):
    from tf_loopbench.benchmarks.worker import run_job

    path = model_file(
        tmp_path,
        """
        import tensorflow as tf


        class HostCopy(keras.layers.Layer):
            # a NumPy call inside the step: TensorFlow runs it, XLA cannot compile it
            def call(self, inputs):
                return tf.ensure_shape(tf.numpy_function(np.copy, [inputs], tf.float32), inputs.shape)


        def host_op():
            d = good()
            d["model"] = keras.Sequential([keras.Input((4,)), HostCopy(), keras.layers.Dense(3)])
            d["name"] = "host_op"
            return d
        """,
    )
    spec = inspect(f"{path}:host_op", seed=0)
    config = RunConfig(
        workloads=("host_op",),
        loops=("tf_function", "xla"),
        devices=("cpu",),
        devices_present=("cpu",),
        batch_sizes=(8,),
        widths=(None,),
        steps=4,
        windows=2,
        warmup_steps=1,
        processes=1,
        models=(spec,),
    )
    rows = {
        loop: run_job(Job(Cell("host_op", loop, "cpu", 8, 0), 0, 0, config))["process"]
        for loop in ("xla", "tf_function")
    }
    assert rows["xla"]["status"] == "skipped"
    assert rows["xla"]["error"] == "XLA cannot compile this step: no XLA_CPU kernel for PyFunc"
    assert rows["tf_function"]["status"] == "ok", rows["tf_function"]["error"]
    assert rows["tf_function"]["equal_work_steps"] == 2
    assert rows["tf_function"]["model_flops_per_step"] == pytest.approx(8 * 2 * 2 * 4 * 3)


def test_dropout_under_xla_is_equivalent_even_without_eager_in_the_run(tmp_path, registry):
    """Dropout draws its mask inside the step; XLA maps the same Philox bits to other
    floats than TensorFlow's kernel unless loops/xla_random.py makes it map them
    alike. A run of xla alone still fills ``equivalent``: its first process trains a
    fresh copy eagerly, untimed, as the reference (``equal_work_reference_loss``)."""
    from tf_loopbench.benchmarks.stats import summarize
    from tf_loopbench.benchmarks.worker import run_job

    path = model_file(
        tmp_path,
        """
        def dropout():
            d = good()
            d["model"] = keras.Sequential(
                [keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(3)]
            )
            d["name"] = "dropout"
            return d
        """,
    )
    spec = inspect(f"{path}:dropout", seed=0)
    config = RunConfig(
        workloads=("dropout",),
        loops=("xla",),
        devices=("cpu",),
        devices_present=("cpu",),
        batch_sizes=(8,),
        widths=(None,),
        steps=4,
        windows=2,
        warmup_steps=3,
        processes=1,
        models=(spec,),
    )
    result = run_job(Job(Cell("dropout", "xla", "cpu", 8, 0), 0, 0, config))
    assert result["process"]["status"] == "ok", result["process"]["error"]
    summary = summarize([result["process"], *result["windows"]]).set_index("loop")
    assert summary.loc["xla", "equivalent"] is True  # None would mean: not checked
    reference = summary.loc["xla", "equal_work_reference_loss"]
    assert reference == pytest.approx(summary.loc["xla", "equal_work_loss"], rel=1e-4)


def test_a_models_equal_work_rtol_widens_its_cells_tolerance(tmp_path, registry):
    """A model whose training amplifies float rounding declares the tolerance its
    equal-work check needs (examples/atlas/resnet_cifar.py); every cell of it is checked
    with the larger of that and its loop style's, and says so (``equivalence_rtol``)."""
    from tf_loopbench.benchmarks.worker import run_job

    path = model_file(
        tmp_path, "def chaotic():\n    d = good()\n    d['equal_work_rtol'] = 1e-3\n    return d\n"
    )
    spec = inspect(f"{path}:chaotic", seed=0)
    assert spec.equal_work_rtol == 1e-3
    config = RunConfig(
        workloads=("chaotic",),
        loops=("tf_function",),
        devices=("cpu",),
        devices_present=("cpu",),
        batch_sizes=(8,),
        widths=(None,),
        steps=2,
        windows=1,
        warmup_steps=1,
        processes=1,
        models=(spec,),
    )
    row = run_job(Job(Cell("chaotic", "tf_function", "cpu", 8, 0), 0, 0, config))["process"]
    assert row["status"] == "ok", row["error"]
    assert row["equivalence_rtol"] == 1e-3  # tf_function's own: 1e-5


def test_a_name_taken_by_a_built_in_workload_is_refused(tmp_path, registry):
    path = model_file(tmp_path, "def mlp():\n    return good()\n")
    spec = inspect(f"{path}:mlp", seed=0)
    with pytest.raises(ModelSpecError, match="built-in workload"):
        register(spec)
    register(replace(spec, name="mine"))
    with pytest.raises(ModelSpecError, match="two models are named 'mine'"):
        register(replace(spec, name="mine", n_train=1))


PLUGIN = """\
import keras
import numpy as np

from tf_loopbench.loops.workloads.linear import Linear


class Shifted(Linear):
    description = "linear, from a plugin"


def make():
    rng = np.random.default_rng(0)
    return {"model": keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), "loss": "mse",
            "optimizer": "sgd", "x": rng.random((40, 3)), "y": rng.random((40, 1))}
"""


def test_installed_plugins_are_listed_and_become_workloads(tmp_path, monkeypatch, registry, capsys):
    from tf_loopbench.benchmarks.cli import main
    from tf_loopbench.benchmarks.user_models import plugin_requests
    from tf_loopbench.loops.plugins import load_plugins

    (tmp_path / "demo_models.py").write_text(PLUGIN)
    info = tmp_path / "demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tf_loopbench.workloads]\ndemo_model = demo_models:make\n"
        "demo_linear = demo_models:Shifted\nbroken = demo_models:nothing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds = {p.name: p.kind for p in load_plugins()}
    assert kinds == {"demo_model": "model", "demo_linear": "workload", "broken": "broken"}
    assert WORKLOADS.get("demo_linear").description == "linear, from a plugin"

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "demo_linear" in listed and "(plugin from demo-plugin)" in listed
    assert "demo_model   model demo_models:make  (plugin from demo-plugin)" in listed

    (request,) = plugin_requests(["demo_model", "mlp"])
    spec = inspect(request.source, seed=0, name=request.name, plugin=request.plugin)
    assert (spec.name, spec.plugin, spec.n_train) == ("demo_model", "demo-plugin", 36)


def test_the_conditioning_tool_says_bad_input_in_one_line(capsys):
    from tf_loopbench.loops import equivalence

    for argv, said in (
        (["--model", "nosuch.py:make"], "no such file nosuch.py"),
        (["--nudges", "0"], "argument --nudges: '0' is not a positive integer"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            equivalence.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
