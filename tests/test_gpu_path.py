"""The GPU path on a GPU-present double (tests/gpu_double.py): cells keyed by the run
matrix, each run by the worker in a fresh process whose TF runtime has not started, on
a machine with two GPUs (one for the skip). Covers device selection and hiding, fit's
key against Keras's actual choice (a CPU cell and a strategy included), strategies on
GPUs and where their replicas ran, GPU memory figures and the device sync of every
timed window."""

from __future__ import annotations

import pytest
import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
import tf_loopbench.loops.workloads  # noqa: F401  (registers the workloads)
from tf_loopbench.benchmarks.config import Job, RunConfig
from tf_loopbench.benchmarks.matrix import make_cells

from tests.gpu_double import run_jobs


def gpu_config(loops: tuple[str, ...]) -> RunConfig:
    return RunConfig(
        workloads=("linear",),
        loops=loops,
        devices=("cpu", "gpu"),
        devices_present=("cpu", "gpu"),
        batch_sizes=(32,),
        widths=(None,),
        steps=4,
        windows=2,
        warmup_steps=1,
        processes=1,
        data_size=512,
        strategies=("none", "mirrored:2"),
    )


@pytest.fixture(scope="module")
def two_gpu_rows():
    config = gpu_config(("fit", "tf_function"))
    cells = make_cells(config)
    results = run_jobs([Job(cell, 0, i, config) for i, cell in enumerate(cells)], gpus=2)
    return {(c.loop, c.device, c.strategy): r for c, r in zip(cells, results, strict=True)}


def test_fit_runs_on_every_device_and_strategy_with_kerass_choice_stated(two_gpu_rows):
    fit = {k[1:]: r["process"] for k, r in two_gpu_rows.items() if k[0] == "fit"}
    assert {k: (p["status"], p.get("error")) for k, p in fit.items()} == {
        k: ("ok", None) for k in fit
    }
    # Keras compiles with XLA where it lists a GPU (a hidden one too) and no strategy
    assert {k: (p["fit_jit"], p["keras_jit_compile"]) for k, p in fit.items()} == {
        ("cpu", "none"): ("auto:on", True),
        ("cpu", "mirrored:2"): ("auto:off", False),
        ("gpu", "none"): ("auto:on", True),
        ("gpu", "mirrored:2"): ("auto:off", False),
    }
    assert {p["keras_steps_per_execution"] for p in fit.values()} == {1}


def test_a_cell_sees_only_its_devices(two_gpu_rows):
    seen = {
        k: (r["process"]["hidden_devices"], r["gpu_double"]["visible"])
        for k, r in two_gpu_rows.items()
    }
    assert seen[("fit", "cpu", "none")] == (["GPU"], [])  # a CPU cell hides both GPUs
    assert seen[("fit", "gpu", "none")] == ([], [0])  # one GPU used: the other hidden
    assert seen[("tf_function", "gpu", "mirrored:2")] == ([], [0, 1])
    replicas = {k: r["process"]["replicas"] for k, r in two_gpu_rows.items()}
    assert replicas[("tf_function", "gpu", "mirrored:2")] == 2


def test_each_row_records_where_its_replicas_ran(two_gpu_rows):
    """GPU replicas each have a GPU; a CPU cell's mirrored replicas are logical devices
    of the one CPU, sharing its cores (the report's MFU and efficiency caveat read this)."""
    import os

    facts = ("replicas", "replica_physical_devices", "replicas_share", "replica_shared_cores")
    placed = {k: tuple(r["process"][f] for f in facts) for k, r in two_gpu_rows.items()}
    cores = len(os.sched_getaffinity(0))
    assert placed[("tf_function", "gpu", "mirrored:2")] == (2, 2, None, None)
    assert placed[("tf_function", "gpu", "none")] == (1, 1, None, None)
    assert placed[("tf_function", "cpu", "mirrored:2")] == (2, 1, "logical devices", cores)
    assert placed[("tf_function", "cpu", "none")] == (1, 1, None, None)


def test_gpu_cells_sync_every_window_and_read_gpu_memory(two_gpu_rows):
    for (loop, device, strategy), result in two_gpu_rows.items():
        row = result["process"]
        assert row["status"] == "ok", (loop, device, strategy, row.get("error"))
        syncs = result["gpu_double"]["syncs"]
        if device == "cpu":
            assert syncs == 0 and row["peak_gpu_bytes"] is None
            continue
        # every window starts and ends on a synced boundary, as do the first call
        # and the warm-up
        assert syncs >= len(result["windows"]) + 2
        # the double's peaks are reset to "current" at the start of the timed run:
        # GPU i holds (i + 1) MB, and the cell reports its largest GPU
        used = 2 if strategy == "mirrored:2" else 1
        assert row["peak_gpu_bytes"] == used * 1_000_000


def test_a_strategy_needing_more_gpus_than_present_is_skipped():
    config = gpu_config(("tf_function",))
    cell = next(c for c in make_cells(config) if c.device == "gpu" and c.strategy != "none")
    (result,) = run_jobs([Job(cell, 0, 0, config)], gpus=1)
    assert result["process"]["status"] == "skipped"
    assert result["process"]["error"] == "mirrored:2 needs 2 GPUs; 1 present"
