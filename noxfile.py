"""The only automation: tests, lint, benchmark, report, regression, browser, atlas.

    pip install nox
    nox                          # tests and lint
    nox -s benchmark             # quick CPU benchmark; arguments go to `loopbench run`
    nox -s benchmark -- --workload mlp --processes 5
    nox -s regression -- origin/main    # `loopbench ab`: same-job A/B against a git ref
    nox -s versions -- 2.19 2.20 2.21   # the mlp quick matrix under each TensorFlow release
    nox -s atlas -- --quick             # Keras examples' models in every style: docs/atlas.md
Dependencies come from pyproject.toml (extras: test, lint, report, browser, gpu).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
    # most of the suite waits on real TensorFlow runs in subprocesses: one pytest worker
    # per core, a test file's tests together (module-scoped runs are made once)
    parallel = ["-n", "auto", "--dist", "loadfile"]
    # the slowest tests, in every CI log: the suite must stay under 5 minutes
    slowest = ["--durations", "15"]
    session.run("pytest", *parallel, *slowest, *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


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
    session.run("python", "-m", "tf_loopbench", "report", *session.posargs)


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


#: TensorFlow releases of `nox -s versions`, each with the Keras minor series it runs with:
#: the newest Keras below the next release's minimum (TensorFlow's own `keras>=`
#: requirement: 2.20 needs 3.10, 2.21 needs 3.12), i.e. what a user upgrading then had
TF_KERAS = {"2.19": "3.9", "2.20": "3.11", "2.21": "3.15"}
VERSIONS_OUT = Path("results") / "versions"
#: what each release runs unless arguments after the releases say otherwise: 12 processes
#: a cell, so that the gate between releases can reach its Holm level (5 never can)
VERSIONS_RUN_ARGS = ("--workload", "mlp", "--quick", "--processes", "12", "--device", "cpu")


def _release_args(posargs: list[str]) -> tuple[list[str], list[str]]:
    """(releases, loopbench run arguments): the leading X.Y arguments are releases (all of
    TF_KERAS when none); a release outside TF_KERAS is one line and exit 2."""
    releases = []
    for arg in posargs:
        if arg.startswith("-"):
            break
        releases.append(arg)
    rest = posargs[len(releases) :]
    for release in releases:
        if release not in TF_KERAS:
            what = (
                "is not a release (X.Y)"
                if not re.fullmatch(r"\d+\.\d+", release)
                else ("is not one of this session's releases")
            )
            _bad_input(
                f"tensorflow {release!r} {what}: choose from {', '.join(TF_KERAS)} "
                "(or add it, with its Keras, to TF_KERAS in noxfile.py)"
            )
    return releases or list(TF_KERAS), rest


def _bad_input(message: str) -> None:
    print(f"nox -s versions: {message}", file=sys.stderr)
    sys.exit(2)


def _check_installable(session: nox.Session, requirements: list[str]) -> None:
    """Ask the package index (pip's resolver, nothing installed) whether the pins install
    here; if not, one line and exit 2 instead of pip's page of output."""
    python = os.path.join(session.bin, "python")
    result = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--quiet", *requirements],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        reason = errors[0].removeprefix("ERROR: ") if errors else "pip failed"
        reason = reason.split(" (from versions:")[0]  # not the index's whole list
        _bad_input(f"{' '.join(requirements)} cannot be installed here: {reason}")


def _release_runs(releases: list[str]) -> list[Path]:
    """The newest run directory of each release that has one, in release order."""
    runs = []
    for release in releases:
        found = sorted((VERSIONS_OUT / f"tf-{release}").glob("*/metadata.json"))
        if found:
            runs.append(found[-1].parent)
    return runs


@nox.session(python=PYTHON, default=False)
@nox.parametrize("tensorflow", list(TF_KERAS))
def versions(session: nox.Session, tensorflow: str) -> None:
    """One virtualenv per TensorFlow release (with its Keras): the same matrix under each, then side by side."""
    releases, run_args = _release_args(session.posargs)
    if tensorflow not in releases:
        session.skip(f"tensorflow {tensorflow} not asked for ({' '.join(releases)})")
    pins = [f"tensorflow=={tensorflow}.*", f"keras=={TF_KERAS[tensorflow]}.*"]
    _check_installable(session, pins)
    session.install("-e", ".", *pins)
    out = VERSIONS_OUT / f"tf-{tensorflow}"
    shutil.rmtree(out, ignore_errors=True)  # one run per release: the newest
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    args = run_args or list(VERSIONS_RUN_ARGS)
    session.run("loopbench", "run", *args, "--out", str(out), "--no-report", env=env)
    # every asked release run so far, side by side (the last release's session shows all):
    # the report, and the gate between consecutive releases (per cell, ratio and interval)
    runs = _release_runs(releases)
    if len(runs) < 2:
        return
    report = VERSIONS_OUT / "report"
    session.run("loopbench", "report", *map(str, runs), "--out", str(report), env=env)
    for before, after in zip(runs, runs[1:], strict=False):
        markdown = VERSIONS_OUT / f"compare-{before.parent.name}-to-{after.parent.name}.md"
        session.run(
            "loopbench",
            "compare",
            str(before),
            str(after),
            "--markdown",
            str(markdown),
            env=env,
            success_codes=[0, 1, 3],  # a slower release is a finding, not a failure
        )


#: the atlas (docs/atlas.md): Keras examples' models in every loop style, the guide's MLP
#: at the fast end and the seed GAN (two optimizers: a built-in workload, not a --model)
ATLAS_MODELS = (
    "examples/atlas/wide_deep.py:make",
    "examples/atlas/mnist_convnet.py:make",
    "examples/atlas/resnet_cifar.py:make",
    "examples/atlas/text_transformer.py:make",
    "examples/atlas/lstm_imdb.py:make",
    "examples/atlas/conv_vae.py:make",
    "examples/keras_guide_mlp.py:make",
)
ATLAS_OUT = Path("results") / "atlas"
#: every model at batch 16, 128 and 1024 (the issue's 2-3 sizes; 1024 takes the slowest
#: fit steps past a second, over 3 decades from the fastest), 2 processes a cell; the data
#: are cut to 4,096 examples (fit's epochs, whose ends are timed, hold 4 steps at batch
#: 1024). 2 warm-up steps: the equal-work check after 3 steps, where ResNet-20's is well
#: inside its tolerance (docs/atlas-method.md)
ATLAS_FULL = ("--batch-size", "16,128,1024", "--data-size", "4096", "--processes", "2")
ATLAS_FULL += ("--windows", "5", "--warmup-steps", "2", "--window-ms", "25")
#: one batch size, one process a cell, short windows: the shape of the answer in minutes
#: (batch 16: the slow models' steps are shortest there; 512 examples: fit's two
#: timed epochs are 32 steps each)
ATLAS_QUICK = ("--batch-size", "16", "--data-size", "512", "--processes", "1")
ATLAS_QUICK += ("--windows", "3", "--warmup-steps", "2", "--window-ms", "10")


@nox.session(python=PYTHON, default=False)
def atlas(session: nox.Session) -> None:
    """Every atlas model in every loop style (`-- --quick`: one batch size), then docs/atlas.md."""
    quick = "--quick" in session.posargs
    extra = [arg for arg in session.posargs if arg != "--quick"]
    session.install("-e", ".[report]")
    out = ATLAS_OUT / ("quick" if quick else "full")
    shutil.rmtree(out, ignore_errors=True)  # one run per variant: the newest
    models = [arg for model in ATLAS_MODELS for arg in ("--model", model)]
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    run_args = [*models, "--workload", "gan", *(ATLAS_QUICK if quick else ATLAS_FULL), *extra]
    session.run("loopbench", "run", *run_args, "--out", str(out), "--no-report", env=env)
    [run_dir] = sorted(out.glob("*/metadata.json"))[-1:]
    session.run("python", "tools/atlas_report.py", str(run_dir.parent), env=env)
