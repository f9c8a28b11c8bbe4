"""The only automation: tests, lint, benchmark, report, regression, browser.

    pip install nox
    nox                          # tests and lint
    nox -s benchmark             # quick CPU benchmark; arguments go to `loopbench run`
    nox -s benchmark -- --workload mlp --processes 5
    nox -s regression -- origin/main    # `loopbench ab`: same-job A/B against a git ref
Dependencies come from pyproject.toml (extras: test, lint, report, browser, gpu).
"""

from __future__ import annotations

import nox
from nox.project import load_toml

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = None  # the interpreter nox runs on (a fresh machine has one Python)
EXTRAS = load_toml("pyproject.toml")["project"]["optional-dependencies"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite: real TensorFlow at tiny sizes."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


LINTED = (
    "loops",
    "benchmarks",
    "reports",
    "tests",
    "tools",
    "examples",
    "tf_loopbench",
    "noxfile.py",
)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and check the formatting with ruff (settings in pyproject.toml)."""
    session.install(*EXTRAS["lint"])
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON, default=False)
def benchmark(session: nox.Session) -> None:
    """The main job: `loopbench run` (quick CPU matrix unless arguments say otherwise)."""
    session.install("-e", ".")
    args = session.posargs or ["--quick", "--device", "cpu"]
    session.run("loopbench", "run", *args, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON, default=False)
def pytest_benchmark(session: nox.Session) -> None:
    """pytest-benchmark over both registries (--benchmark-save/--benchmark-compare work)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tools/test_loop_benchmarks.py",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        *session.posargs,
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Render report.md/report.html and plots: `nox -s report -- RUN_DIR [RUN_DIR...] [--out DIR]`."""
    if not session.posargs:
        session.error("give one or more run directories: nox -s report -- results/<run-id>")
    session.install(*EXTRAS["report"])  # no TensorFlow: reports never imports it
    session.run("python", "-m", "benchmarks.cli", "report", *session.posargs)


@nox.session(python=PYTHON, default=False)
def browser(session: nox.Session) -> None:
    """Headless Chromium: report.html and TensorBoard's Profile page (`-- RUN_DIR` or a fresh tiny run)."""
    import glob
    import shutil

    if not shutil.which("chromedriver") or not shutil.which("chromium"):
        session.error(
            "needs Debian's chromium: apt-get update && apt-get install -y chromium chromium-driver"
        )
    session.install("-e", ".[browser]")
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if session.posargs:
        run_dir = session.posargs[0]
    else:
        out = session.create_tmp()
        quick_profiled_run = ("--workload", "mlp", "--quick", "--profile", "--out", out)
        session.run("loopbench", "run", *quick_profiled_run, env=env)
        run_dir = sorted(glob.glob(f"{out}/*/"))[-1]
    session.run("loopbench", "report", run_dir, env=env)
    session.run("python", "tools/browser.py", f"{run_dir}/report.html", f"{run_dir}/report.png")
    session.run("python", "tools/browser_profile.py", run_dir, env=env)


@nox.session(python=PYTHON, default=False)
def regression(session: nox.Session) -> None:
    """Same-job A/B of a base git ref and this tree (`loopbench ab`); fails on a confirmed regression."""
    if not session.posargs:
        session.error(
            "give the base git ref: nox -s regression -- origin/main [loopbench ab options]"
        )
    session.install("-e", ".")
    # results/regression/{base,current,logs,compare.md}; stops within its time budget
    session.run("loopbench", "ab", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
