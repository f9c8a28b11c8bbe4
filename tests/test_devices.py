"""Device selection, placement, sync and memory figures, on CPU and on a GPU-present
double of this machine (tests/gpu_double.py: TF's own device functions answering as
with one or two GPUs). The paths that need TF's runtime not yet started (a CPU cell
hiding the GPUs, the GPUs a strategy uses) run in tests/test_gpu_path.py."""

from __future__ import annotations

import pytest
from tf_loopbench.loops.devices import (
    DeviceError,
    gpu_peak_bytes,
    hidden_device_types,
    resolve_devices,
    sync_device,
    tf_device_name,
)


@pytest.mark.parametrize(
    ("requested", "present", "expected"),
    [
        (None, ["cpu"], ["cpu"]),
        (None, ["cpu", "gpu"], ["cpu", "gpu"]),
        ("all", ["cpu", "gpu"], ["cpu", "gpu"]),
        ("all", ["cpu"], ["cpu", "gpu"]),  # the GPU cells are then skipped: no GPU
        ("cpu", ["cpu", "gpu"], ["cpu"]),
        ("gpu", ["cpu", "gpu"], ["gpu"]),
    ],
)
def test_resolve_devices(requested, present, expected):
    assert resolve_devices(requested, present) == expected


def test_gpu_without_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no GPU present on this machine; devices present: cpu"):
        resolve_devices("gpu", ["cpu"])


def test_unknown_device():
    with pytest.raises(DeviceError, match="choose from: cpu, gpu, all"):
        resolve_devices("tpu", ["cpu"])


def test_placement_names_and_cpu_paths():
    assert tf_device_name("cpu") == "/CPU:0" and tf_device_name("gpu") == "/GPU:0"
    sync_device("cpu")  # a no-op on CPU, must not touch GPU APIs
    assert gpu_peak_bytes("cpu") is None


def test_on_a_gpu_machine_the_devices_present_and_their_names_come_from_tf(gpu_machine):
    from tf_loopbench.loops.devices import gpu_descriptions, present_devices

    gpu_machine(gpus=2)
    assert present_devices() == ["cpu", "gpu"]
    assert resolve_devices(None, present_devices()) == ["cpu", "gpu"]
    assert gpu_descriptions() == [{"name": "Double GPU", "compute_capability": "8.0"}] * 2


def test_a_gpu_cell_syncs_the_device_and_reads_the_peak_of_every_gpu_it_uses(gpu_machine):
    from tf_loopbench.loops.devices import reset_gpu_peak

    double = gpu_machine(gpus=2)
    sync_device("gpu")
    assert double.syncs == 1
    sync_device("cpu")  # a CPU cell's sync is its host fetch: no device sync
    assert double.syncs == 1
    # a mirrored:2 cell's replicas hold a model each: the peak is the larger one
    assert gpu_peak_bytes("gpu") == double.peak[1] > double.peak[0]
    reset_gpu_peak("gpu")
    assert double.memory_resets == ["GPU:0", "GPU:1"]
    assert gpu_peak_bytes("gpu") == double.current[1]
    assert gpu_peak_bytes("cpu") is None


def test_a_cpu_cell_hides_the_gpus_but_keras_still_sees_them(gpu_machine):
    """The hiding is a GPU cell's business only; the CPU cell's fit key follows what
    Keras reads (tf.config.list_physical_devices), which a hidden GPU stays in."""
    import tensorflow as tf

    assert hidden_device_types("cpu") == ["GPU"] and hidden_device_types("gpu") == []
    double = gpu_machine(gpus=1)
    double.visible = []  # as hide_devices("cpu") leaves it (before TF's runtime starts)
    assert tf.config.get_visible_devices("GPU") == []
    assert [d.device_type for d in tf.config.list_physical_devices()] == ["CPU", "GPU"]


def test_the_peak_probe_on_gpu_syncs_each_call_and_measures_what_runs(gpu_machine):
    from tf_loopbench.benchmarks.metadata import matmul_peak_flops

    double = gpu_machine(gpus=1)
    calls = 3
    flops = matmul_peak_flops("gpu", size=(128, 2, calls))
    assert double.syncs == 1 + calls  # after the warm-up call, and after each timed one
    assert flops > 0


def test_the_peak_probe_measures_each_dtype_a_run_uses_on_gpu(gpu_machine):
    """The start-up probe's GPU branch per dtype: float32 and each asked dtype, one after
    the other, each call synced on the device."""
    from tf_loopbench.benchmarks.metadata import matmul_peaks

    double = gpu_machine(gpus=1)
    calls = 2
    peaks, errors = matmul_peaks(["gpu"], ["bfloat16", "float16"], size=(64, 2, calls))
    assert set(peaks) == {"gpu"} and errors == {}
    assert set(peaks["gpu"]) == {"float32", "bfloat16", "float16"}
    assert all(flops > 0 for flops in peaks["gpu"].values())
    assert double.syncs == 3 * (1 + calls)


def test_a_dtype_the_device_cannot_multiply_in_is_named_not_raised():
    """int8 has no tf.matmul kernel: its peak is left out and TF's reason recorded, so
    the report can say why a cell in it has no MFU; float32's is still measured."""
    from tf_loopbench.benchmarks.metadata import matmul_peaks

    peaks, errors = matmul_peaks(["cpu"], ["int8"], size=(64, 1, 2))
    assert set(peaks["cpu"]) == {"float32"}
    assert errors["cpu"]["int8"].startswith("TypeError: ") and "int8" in errors["cpu"]["int8"]
