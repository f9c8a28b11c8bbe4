"""Shared fixtures: tiny sizes, the project root, running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def assert_group_ends(group: int, what: str, timeout: float = 30) -> None:
    """Process group ``group`` (a run started with start_new_session) is empty within
    ``timeout``: no worker, fork server or port holder of the run is left."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of {what} are still running")


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None):
    """Run ``python -m tf_loopbench ARGS`` from the project root; returns CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tf_loopbench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def gpu_machine(monkeypatch):
    """``gpu_machine(gpus=1)``: TensorFlow answers as on a machine with that many GPUs
    for the rest of the test (tests/gpu_double.py); returns the double's state."""
    from tests import gpu_double

    return lambda gpus=1: gpu_double.install(monkeypatch, gpus)
