"""``import tf_loopbench``: the README's example runs (at tiny sizes), and what ``run`` accepts.

The README's Python block is executed as written except for its run options:
``quick=True`` becomes a tiny run (one process a cell, a few steps) into a
temporary directory. Its five cells run in real worker processes.
"""

from __future__ import annotations

import contextlib
import io
import re
import textwrap

import pytest
from tf_loopbench.benchmarks.user_models import model_source
from tf_loopbench.loops.base import WORKLOADS
from tf_loopbench.loops.model_spec import ModelSpecError
from tf_loopbench.loops.user_model import inspect

import tf_loopbench
from tests.conftest import ROOT

TINY = "data_size=256, steps=6, windows=2, warmup_steps=2, processes=1"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return textwrap.dedent(blocks[0])


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    code = readme_example()
    assert "quick=True" in code
    code = code.replace("quick=True", f"{TINY}, out={str(out)!r}")
    namespace: dict = {}
    printed = io.StringIO()
    registered = WORKLOADS.snapshot()  # the run registers the model as a workload here
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
            patch.chdir(ROOT)  # the example's path is relative to the repository
            exec(compile(code, "README.md", "exec"), namespace)  # the README's own code
    finally:
        WORKLOADS.restore(registered)
    return namespace["result"], printed.getvalue()


def test_the_readme_example_times_all_five_styles_and_they_are_equivalent(readme_run):
    result, printed = readme_run
    cells = result.cells.set_index("loop")
    assert list(cells.index) == ["fit", "eager", "tf_function", "tf_data", "xla"]
    assert (cells["workload"] == "keras_guide_mlp").all()
    assert (cells["status"] == "ok").all(), cells["error"]
    assert cells["equivalent"].tolist() == [True] * 5
    assert (cells["batch_size"] == 32).all()  # the dict's batch size
    assert (cells["model_flops_per_step"] == 229_120 * 32).all()  # TF's count, no formula
    assert "step_time_median_s" in printed and "equivalent" in printed


def test_the_readme_example_writes_the_report(readme_run):
    result, _ = readme_run
    assert (result.run_dir / "report.md").stat().st_size > 0
    assert (result.run_dir / "report.html").stat().st_size > 0
    assert tf_loopbench.report(result.run_dir) == result.run_dir


def make():  # a module-level FUNCTION, for model_source
    return {}


def test_a_function_is_found_where_it_is_defined(tmp_path):
    assert model_source(make, tmp_path) == "tests.test_api:make"
    assert model_source("examples/vae.py:make", tmp_path) == "examples/vae.py:make"

    def local():
        return {}

    with pytest.raises(ModelSpecError, match="not a module-level function"):
        model_source(local, tmp_path)
    with pytest.raises(ModelSpecError, match="not int"):
        model_source(3, tmp_path)


def test_a_model_dict_reaches_the_workers_pickled(tmp_path):
    import keras
    import numpy as np

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    spec_dict = {
        "name": "from_a_notebook",
        "model": model,
        "loss": "mse",
        "optimizer": keras.optimizers.SGD(0.1),
        "x": rng.random((30, 3)),
        "y": rng.random((30, 2)),
    }
    source = model_source(spec_dict, tmp_path)
    assert source.startswith("pickle:")
    spec = inspect(source, seed=0)
    assert (spec.name, spec.n_train) == ("from_a_notebook", 27)
    # the weights come from the dict, whatever the seed
    assert inspect(source, seed=5).weights_digest == spec.weights_digest


def test_bad_input_raises_value_error_with_the_command_lines_line():
    with pytest.raises(ValueError, match="unrecognized arguments: --frobnicate 1"):
        tf_loopbench.run(model="examples/keras_guide_mlp.py:make", frobnicate=1)
    with pytest.raises(ValueError, match="no such file"):
        tf_loopbench.run(model="examples/nothing.py:make")
