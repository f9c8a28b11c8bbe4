"""A real install: the wheel in a fresh virtual environment, used from a user's project.

The suite installs one package, ``tf_loopbench``; its folders loops/, benchmarks/ and
reports/ are mapped into it (pyproject.toml's package-dir, docs/decisions/0007). A
user's project with its own ``benchmarks/``, ``reports/`` and ``loops/`` packages (asv's
convention) must not shadow them. An editable install hides such a defect (its finder
grafts our modules onto whatever it finds), so this test builds the wheel, installs
it with pip into a new virtual environment and runs the command line and the Python
API from such a project folder.

The new environment borrows the test environment's third-party packages (TensorFlow,
pandas, ...) through a path file, so nothing is downloaded; our own package comes only
from the wheel: the borrowed folder's editable finder is never activated (a path
file's folder does not run its own .pth files).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

#: What a user's project holds: packages named as ours, which fail loudly if imported.
SHADOWS = ("benchmarks", "reports", "loops")
SHADOW_CODE = 'raise ImportError("the user\'s own {name} package was imported")\n'

USER_MODEL = """\
import keras
import numpy as np


def make():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    return {"name": "users_model", "model": model, "loss": "mse", "optimizer": "sgd",
            "x": rng.random((256, 8), dtype=np.float32),
            "y": rng.random((256, 1), dtype=np.float32), "batch_size": 32}
"""

#: Tiny sizes: one process a cell, two short windows.
TINY = ("--processes", "1", "--windows", "2", "--steps", "4", "--warmup-steps", "1")

USER_SCRIPT = """\
import tf_loopbench

if __name__ == "__main__":
    result = tf_loopbench.run(model="model.py:make", loop=["fit", "tf_function"], processes=1,
                              windows=2, steps=4, warmup_steps=1, out="api-results",
                              report=False)
    import tf_loopbench.benchmarks.cli as cli
    assert "site-packages" in cli.__file__, cli.__file__
    print("API-OK", sorted(result.cells["loop"]), sorted(set(result.cells["status"])))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin folder."""
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("tf_loopbench-*.whl")

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    purelib = Path(
        subprocess.check_output(
            [bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
            env=clean_env(),
        ).strip()
    )
    borrowed = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "borrowed-test-env.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    install = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
    )
    assert install.returncode == 0, install.stderr
    return bin_dir


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's project folder with its own benchmarks/, reports/ and loops/ packages."""
    for name in SHADOWS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(SHADOW_CODE.format(name=name))
    (tmp_path / "benchmarks" / "cli.py").write_text("")
    (tmp_path / "model.py").write_text(USER_MODEL)
    return tmp_path


def clean_env() -> dict[str, str]:
    """This environment without what would lead Python to a checkout (PYTHONPATH)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def user_env(bin_dir: Path) -> dict[str, str]:
    env = clean_env()
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_the_wheel_installs_one_package(installed):
    """Nothing but tf_loopbench (and its dist-info) lands in site-packages, and the
    package list in pyproject.toml names every folder of ours that holds code."""
    purelib = next(installed.parent.glob("lib/python*/site-packages"))
    ours = {p.name for p in purelib.iterdir() if p.name.lower().startswith("tf_loopbench")}
    assert ours == {"tf_loopbench", *(p.name for p in purelib.glob("tf_loopbench-*.dist-info"))}
    assert not any((purelib / name).exists() for name in SHADOWS)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {"tf_loopbench"} | {
        "tf_loopbench." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in config["package-dir"].values()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert listed == on_disk
    for package in listed:
        installed_dir = purelib.joinpath(*package.split("."))
        assert (installed_dir / "__init__.py").is_file(), package


def test_loopbench_runs_a_model_from_a_project_that_shadows_our_names(installed, project):
    result = subprocess.run(
        ["loopbench", "run", "--model", "model.py:make", "--loop", "tf_function", *TINY,
         "--out", "cli-results", "--no-report"],
        cwd=project,
        env=user_env(installed),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (summary,) = (project / "cli-results").glob("*/summary.csv")
    assert "users_model,tf_function" in summary.read_text()


def test_the_python_api_and_python_m_from_that_project(installed, project):
    (project / "script.py").write_text(USER_SCRIPT)
    env = user_env(installed)
    result = subprocess.run(
        [installed / "python", "script.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "API-OK ['fit', 'tf_function'] ['ok']" in result.stdout
    listing = subprocess.run(
        [installed / "python", "-m", "tf_loopbench", "list"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert "tf_function" in listing.stdout
