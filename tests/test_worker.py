"""The worker, in-process: a cell that cannot run is skipped with its reason."""

from __future__ import annotations

import pytest

from benchmarks.config import Cell, Job, RunConfig
from benchmarks.worker import run_job


def tiny_config() -> RunConfig:
    return RunConfig(
        workloads=("linear",), loops=("eager",), devices=("gpu",), devices_present=("cpu",),
        batch_sizes=(32,), widths=(None,), steps=4, windows=2, warmup_steps=1, processes=1,
        data_size=128,
    )


def test_cell_on_a_missing_gpu_is_skipped_not_failed():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    job = Job(Cell("linear", "eager", "gpu", 32, 0), 0, 0, tiny_config())
    result = run_job(job)
    assert result["process"]["status"] == "skipped"
    assert "no GPU" in result["process"]["error"]
    assert result["windows"] == []


def test_cpu_cell_in_process_gives_phases_and_windows():
    config = tiny_config()
    job = Job(Cell("linear", "tf_function", "cpu", 32, 0), 0, 0, config)
    result = run_job(job)
    row = result["process"]
    assert row["status"] == "ok", row.get("error")
    assert len(result["windows"]) == 2 and all(w["steps"] == 2 for w in result["windows"])
    assert row["first_step_s"] > row["step_time_s"] > 0
    assert row["trace_counts"] == {"train_step": 1} and row["retraces"] == 0
