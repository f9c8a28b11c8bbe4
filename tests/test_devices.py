"""Device selection logic (runs on CPU with fake device lists) and CPU sync."""

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


def test_a_cpu_cell_hides_the_gpu_so_fit_runs_as_on_a_cpu_only_machine():
    # Keras's jit_compile="auto" turns XLA on whenever a GPU is visible
    assert hidden_device_types("cpu") == ["GPU"]
    assert hidden_device_types("gpu") == []
