"""The worker, in-process: a cell that cannot run is skipped with its reason."""

from __future__ import annotations

import pytest
from tf_loopbench.benchmarks.config import Cell, Job, RunConfig
from tf_loopbench.benchmarks.worker import run_job


def tiny_config() -> RunConfig:
    return RunConfig(
        workloads=("linear",),
        loops=("eager",),
        devices=("gpu",),
        devices_present=("cpu",),
        batch_sizes=(32,),
        widths=(None,),
        steps=4,
        windows=2,
        warmup_steps=1,
        processes=1,
        data_size=512,  # 16 steps a pass over the data: windows of 2 fit between epoch ends
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


def test_forkserver_workers_start_fresh_and_take_the_current_environment(monkeypatch):
    """Workers forked from the fork server (which imported TensorFlow once, before the
    variable below existed) start with TF's runtime cold and see the parent's
    environment as it is when their job starts."""
    from dataclasses import replace

    from tf_loopbench.benchmarks.runner import run_in_worker

    config = replace(tiny_config(), devices=("cpu",), start_method="forkserver")
    cell = Cell("linear", "tf_function", "cpu", 32, 0)
    monkeypatch.delenv("LOOPBENCH_INJECT_FAULT", raising=False)
    first = run_in_worker(Job(cell, 0, 0, config), timeout_s=300)["process"]
    assert first["status"] == "ok", first.get("error")
    assert first["tf_runtime_fresh"] is True
    assert first["retraces"] == 0 and first["trace_counts"] == {"train_step": 1}

    monkeypatch.setenv("LOOPBENCH_INJECT_FAULT", f"{cell.label}=raise")
    second = run_in_worker(Job(cell, 1, 1, config), timeout_s=300)["process"]
    assert second["status"] == "failed" and "injected fault" in second["error"]
    assert second["pid"] != first["pid"]


def test_worker_stops_when_its_parent_leaves():
    """A worker whose parent is gone (Ctrl-C, a killed CLI) exits at once instead of
    measuring for nobody, and without a traceback."""
    import os
    import time
    from dataclasses import replace

    from tf_loopbench.benchmarks.runner import worker_context
    from tf_loopbench.benchmarks.worker import worker_main

    # ~100 000 eager steps: minutes of work if the worker kept going
    config = replace(tiny_config(), devices=("cpu",), steps=100_000, windows=50_000)
    job = Job(Cell("linear", "eager", "cpu", 32, 0), 0, 0, config)
    context = worker_context("forkserver")
    parent_end, worker_end = context.Pipe(duplex=True)
    process = context.Process(target=worker_main, args=(job, dict(os.environ), worker_end))
    process.start()
    worker_end.close()
    try:
        time.sleep(3)  # the worker is measuring
        assert process.is_alive()
        parent_end.close()
        gone = time.time()
        process.join(timeout=30)
        assert process.exitcode == 0
        assert time.time() - gone < 10
    finally:
        if process.is_alive():
            process.kill()
            process.join()


@pytest.fixture
def float32_after():
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")  # the worker sets the cell's policy


def test_cells_with_knobs_run_whole_calls_or_are_skipped_with_their_reason(float32_after):
    from dataclasses import replace

    config = replace(
        tiny_config(), devices=("cpu",), steps=8, windows=2, steps_per_call=(1, 4)
    )  # equal work 1 + 1 warm-up step -> 4, whole calls of 4
    rows = {
        name: run_job(Job(cell, 0, 0, config))
        for name, cell in {
            "k4": Cell("linear", "tf_function", "cpu", 32, 0, steps_per_call=4),
            "eager_k4": Cell("linear", "eager", "cpu", 32, 0, steps_per_call=4),
            "fit_auto_on": Cell("linear", "fit", "cpu", 32, 0, fit_jit="auto:on"),
            "bf16": Cell("linear", "fit", "cpu", 32, 0, precision="mixed_bfloat16", fit_jit="on"),
        }.items()
    }
    k4 = rows["k4"]["process"]
    assert k4["status"] == "ok", k4.get("error")
    assert k4["steps_per_call"] == 4 and k4["equal_work_steps"] == 4 and k4["warmup_steps"] == 0
    assert [w["steps"] for w in rows["k4"]["windows"]] == [4, 4]
    assert k4["trace_counts"] == {"train_step": 1}
    assert rows["eager_k4"]["process"]["status"] == "skipped"
    assert "eager runs one step per call" in rows["eager_k4"]["process"]["error"]
    # a CPU cell's fit sees a CPU-only machine, where Keras leaves XLA off
    assert rows["fit_auto_on"]["process"]["status"] == "skipped"
    assert "--fit-jit off" in rows["fit_auto_on"]["process"]["error"]
    bf16 = rows["bf16"]["process"]
    assert bf16["status"] == "ok", bf16.get("error")
    assert bf16["keras_policy"] == "mixed_bfloat16" and bf16["keras_jit_compile"] is True
    assert bf16["equivalence_rtol"] == 5e-2  # fit with XLA: xla's bfloat16 tolerance


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps_per_execution": 2}, r"fit ran \[2\] steps per execution, not 4"),
        ({"jit_compile": True}, "fit traced its step with jit_compile True, not the False"),
    ],
)
def test_fits_facts_are_read_back_from_what_keras_ran(change, message):
    """keras_steps_per_execution and keras_jit_compile come from the run (Keras's
    batch-begin calls, the step function it traced), not from the settings: a model
    changed behind the trainer's back runs otherwise, and the run fails."""
    import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
    import tf_loopbench.loops.workloads  # noqa: F401  (registers the workloads)
    from tf_loopbench.loops.base import LOOPS, WORKLOADS, StepHooks, WorkloadConfig

    workload = WORKLOADS.get("linear")(WorkloadConfig(data_size=256))
    train = workload.make_data().whole_batches(32, 4)
    make = LOOPS.get("fit")().make_trainer
    trainer = make(workload, workload.build(), train, 32, steps_per_call=4, fit_jit="auto:off")
    trainer.run(8, StepHooks())
    assert trainer.facts() == {"keras_jit_compile": False, "keras_steps_per_execution": 4}
    changed = make(workload, workload.build(), train, 32, steps_per_call=4, fit_jit="auto:off")
    for name, value in change.items():
        setattr(changed.model, name, value)
    with pytest.raises(RuntimeError, match=message):
        changed.run(8, StepHooks())


def test_a_mixed_precision_cell_that_computed_in_float32_fails(float32_after, monkeypatch):
    """The worker reads the compute dtype from the layers the step ran through: a model
    built in float32 (as one built before the policy was set) under a mixed_bfloat16
    label fails, though the policy the worker set says mixed_bfloat16."""
    from dataclasses import replace

    import tf_loopbench.loops.workloads  # noqa: F401  (registers the workloads)
    from tf_loopbench.loops.base import WORKLOADS
    from tf_loopbench.loops.knobs import precision_policy

    config = replace(tiny_config(), devices=("cpu",))
    cell = Cell("linear", "tf_function", "cpu", 32, 0, precision="mixed_bfloat16")
    ran = run_job(Job(cell, 0, 0, config))["process"]
    assert ran["status"] == "ok", ran.get("error")
    assert ran["compute_dtypes"] == ["bfloat16"] and ran["precision_floor"] == 1e-5
    linear = WORKLOADS.get("linear")
    build = linear.build

    def build_in_float32(self):
        with precision_policy("float32"):
            return build(self)

    monkeypatch.setattr(linear, "build", build_in_float32)
    row = run_job(Job(cell, 1, 1, config))["process"]
    assert row["status"] == "failed"
    assert "the model computed in float32, not mixed_bfloat16's bfloat16" in row["error"]
