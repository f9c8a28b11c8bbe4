"""What the terminal shows of worker and probe processes (benchmarks/runner.py).

Each process that starts TensorFlow's runtime on a machine without a GPU logs
"failed call to cuInit" at error level. A child's stderr goes to a file (a
worker's to ``<run>/logs/``) and reaches the terminal only when that child fails.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

TINY = [
    "run",
    "--workload",
    "linear",
    "--loop",
    "tf_function",
    "--data-size",
    "512",
    "--batch-size",
    "64",
    "--steps",
    "12",
    "--windows",
    "6",
    "--warmup-steps",
    "2",
    "--no-report",
]
LABEL = "linear-tf_function-cpu-b64"


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_a_clean_run_prints_no_cuda_probe_errors(tmp_path):
    result = run_cli(*TINY, "--processes", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cuInit" not in result.stderr, result.stderr
    assert "stderr of the failed process" not in result.stderr
    logs = only_run_dir(tmp_path) / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [f"{LABEL}-p0.log", f"{LABEL}-p1.log"]


def test_a_failed_worker_shows_its_stderr(tmp_path):
    result = run_cli(
        *TINY,
        "--processes",
        "1",
        "--out",
        str(tmp_path),
        # INFO logging: the worker's log is not empty on any machine
        env={"LOOPBENCH_INJECT_FAULT": f"{LABEL}=raise", "TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = only_run_dir(tmp_path) / "logs" / f"{LABEL}-p0.log"
    text = log.read_text().strip()
    assert text, "the worker wrote nothing to stderr"
    assert f"stderr of the failed process ({log})" in result.stderr
    assert text.splitlines()[-1] in result.stderr
