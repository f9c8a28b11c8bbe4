"""The only automation: tests, lint, benchmark, report, regression, browser.

    pip install nox
    nox -s tests                 # the test suite (tiny sizes, < 5 minutes)
    nox -s benchmark             # quick CPU benchmark; arguments go to `loopbench run`
    nox -s benchmark -- --workload mlp --processes 5
Dependencies come from pyproject.toml (extras: test, lint, gpu).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = None  # the interpreter nox runs on (a fresh machine has one Python)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite: real TensorFlow at tiny sizes."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint with ruff."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "loops", "benchmarks", "reports", "tests", "noxfile.py")


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
        "pytest", "tools/test_loop_benchmarks.py", "-p", "no:cacheprovider",
        "--benchmark-only", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


REPORT_DEPS = ("pandas>=2.0", "numpy>=1.26", "scipy>=1.10", "matplotlib>=3.7")


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Render report.md/report.html and plots: `nox -s report -- RUN_DIR [RUN_DIR...] [--out DIR]`."""
    if not session.posargs:
        session.error("give one or more run directories: nox -s report -- results/<run-id>")
    session.install(*REPORT_DEPS)  # no TensorFlow: reports never imports it
    session.run("python", "-m", "reports.report", *session.posargs)


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
        session.run("loopbench", "run", "--workload", "mlp", "--loop", "eager,tf_function",
                    "--quick", "--profile", "--out", out, env=env)
        run_dir = sorted(glob.glob(f"{out}/*/"))[-1]
    session.run("loopbench", "report", run_dir, env=env)
    session.run("python", "tools/browser.py", f"{run_dir}/report.html", f"{run_dir}/report.png")
    session.run("python", "tools/browser_profile.py", run_dir, env=env)


@nox.session(python=PYTHON, default=False)
def regression(session: nox.Session) -> None:
    """Same-job A/B of a base git ref and this tree; fails on a confirmed regression."""
    session.install("-e", ".")
    if not session.posargs:
        session.error("give the base git ref: nox -s regression -- origin/main [ab options]")
    base_ref, *options = session.posargs
    session.run(
        "python", "-m", "benchmarks.ab", base_ref,
        "--out", "results/regression",
        "--markdown", "results/regression/compare.md",
        # up to 20 processes a cell a side (18 fit here), whole blocks only, so that
        # the gate (with this session's ~1.5 min set-up) ends within 15 minutes
        "--time-budget-min", "12",
        *options,
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
