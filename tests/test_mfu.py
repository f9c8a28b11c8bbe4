"""MFU per replica and per compute dtype, and the caveat beside a scaling efficiency whose
replicas share the same cores, on synthetic runs with known numbers
(tests/fixtures/report_runs.py). The probe and the recording of where replicas ran are
tested on the machine: tests/test_devices.py (the probe per dtype, its GPU branch through
the double) and tests/test_gpu_path.py (what a worker records)."""

from __future__ import annotations

import math

import pytest
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.common import Context
from tf_loopbench.reports.report.derived import derive
from tf_loopbench.reports.report.render import render_markdown
from tf_loopbench.reports.report.sections import strategies, throughput
from tf_loopbench.reports.rundir import load_runs

from tests.fixtures.report_runs import CellSpec, write_run

FLOPS = 1e9  # model FLOPs per step (the global batch's)
STEP_S = 1e-3
CPU_PEAK, CPU_BF16_PEAK, GPU_PEAK = 2e11, 4e11, 1e13
#: the global-batch formula MFU had before it was per replica, for one device's peak
GLOBAL = FLOPS / STEP_S

#: what a worker records (loops/distribute.py ``replica_devices``) per kind of placement
LOGICAL_CPUS = {
    "replicas": 2,
    "replica_physical_devices": 1,
    "replicas_share": "logical devices",
    "replica_shared_cores": 2,
}
TWO_GPUS = {
    "replicas": 2,
    "replica_physical_devices": 2,
    "replicas_share": None,
    "replica_shared_cores": None,
}


def cell(device="cpu", strategy="none", precision="float32", facts=None, loop="tf_function"):
    times = (STEP_S * 0.98, STEP_S, STEP_S * 1.03)
    if strategy != "none":  # slower than one device, so the efficiency is well below 100%
        times = tuple(t * 1.6 for t in times)
    return CellSpec(
        "mlp",
        loop,
        times,
        device=device,
        strategy=strategy,
        precision=precision,
        model_flops_per_step=FLOPS,
        process_facts=facts or {},
    )


def derived_of(tmp_path, cells, **metadata):
    return derive(RunSet.of(load_runs([write_run(tmp_path / "run", cells, **metadata)])))


def row(derived, **keys):
    cells = derived.cells
    for key, value in keys.items():
        cells = cells[cells[key] == value]
    (found,) = cells.to_dict("records")
    return found


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "run-before-the-record"])
def test_mirrored_mfu_on_two_gpus_is_half_the_global_batch_formula(tmp_path, recorded):
    """Each of the two replicas computes half the batch on a GPU of its own: per replica
    against one GPU's peak is half the global batch against one GPU's peak. A run made
    before replicas were recorded gets the same from its strategy key."""
    cells = [cell("gpu"), cell("gpu", "mirrored:2", facts=TWO_GPUS if recorded else None)]
    derived = derived_of(tmp_path, cells, peak_matmul_flops={"gpu": GPU_PEAK})
    one = row(derived, strategy="none")
    two = row(derived, strategy="mirrored:2")
    assert one["mfu"] == pytest.approx(GLOBAL / GPU_PEAK)
    global_formula = FLOPS / two["step_time_median_s"] / GPU_PEAK
    assert two["mfu"] == pytest.approx(global_formula / 2)
    assert two["replica_peak_flops"] == GPU_PEAK


def test_logical_cpu_devices_each_get_an_equal_share_of_the_cpus_peak(tmp_path):
    """Two logical devices of one CPU: each replica's device is half the CPU, so MFU per
    replica is the cell's share of the CPU's measured peak."""
    cells = [cell(), cell("cpu", "mirrored:2", facts=LOGICAL_CPUS)]
    two = row(derived_of(tmp_path, cells), strategy="mirrored:2")
    assert two["flops_per_replica"] == FLOPS / 2
    assert two["replica_peak_flops"] == CPU_PEAK / 2
    assert two["mfu"] == pytest.approx(FLOPS / two["step_time_median_s"] / CPU_PEAK)


def test_a_bfloat16_cell_without_a_bfloat16_peak_has_no_mfu_and_the_report_says_why(tmp_path):
    cells = [cell(), cell(precision="mixed_bfloat16")]
    derived = derived_of(tmp_path, cells, peak_matmul_flops={"cpu": CPU_PEAK})
    assert row(derived, precision="float32")["mfu"] == pytest.approx(GLOBAL / CPU_PEAK)
    bf16 = row(derived, precision="mixed_bfloat16")
    assert math.isnan(bf16["mfu"])
    assert bf16["mfu_note"] == "no bfloat16 matmul peak was measured on cpu"
    text = render_markdown(throughput.blocks(Context(derived)), tmp_path)
    assert "mlp (cpu, batch 128, mixed_bfloat16): no MFU: no bfloat16 matmul peak" in text
    assert "| none in bfloat16 | none: see below |" in text


def test_a_bfloat16_cell_is_held_against_the_bfloat16_peak(tmp_path):
    peaks = {"cpu": {"float32": CPU_PEAK, "bfloat16": CPU_BF16_PEAK}}
    cells = [cell(), cell(precision="mixed_bfloat16")]
    derived = derived_of(tmp_path, cells, peak_matmul_flops_by_dtype=peaks)
    assert row(derived, precision="float32")["mfu"] == pytest.approx(GLOBAL / CPU_PEAK)
    assert row(derived, precision="mixed_bfloat16")["mfu"] == pytest.approx(GLOBAL / CPU_BF16_PEAK)


def strategies_text(derived, tmp_path) -> str:
    return render_markdown(strategies.blocks(Context(derived)), tmp_path)


def test_the_strategies_section_says_when_replicas_share_the_same_cores(tmp_path):
    derived = derived_of(tmp_path, [cell(), cell("cpu", "mirrored:2", facts=LOGICAL_CPUS)])
    text = strategies_text(derived, tmp_path)
    caveat = "2 logical devices of one CPU sharing its 2 cores"
    # beside the efficiency in the table and in the sentence
    assert f"] ({caveat}) |" in text
    assert f"over 2 replicas, which are {caveat}: {strategies.CAVEAT}." in text


def test_worker_processes_on_one_cpu_share_its_cores_too(tmp_path):
    workers = {**LOGICAL_CPUS, "replicas_share": "worker processes"}
    derived = derived_of(tmp_path, [cell(), cell("cpu", "multiworker:2", facts=workers)])
    assert "2 worker processes of one CPU sharing the same 2 cores" in strategies_text(
        derived, tmp_path
    )


def test_replicas_on_gpus_of_their_own_get_no_caveat(tmp_path):
    cells = [cell("gpu"), cell("gpu", "mirrored:2", facts=TWO_GPUS)]
    text = strategies_text(derived_of(tmp_path, cells, peak_matmul_flops={"gpu": 1e13}), tmp_path)
    assert "scaling efficiency" in text and "over 2 replicas." in text
    assert "of one CPU sharing" not in text and strategies.CAVEAT not in text
