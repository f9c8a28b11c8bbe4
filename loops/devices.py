"""Device selection, placement, host sync and memory figures, CPU and GPU.

``resolve_devices`` is pure logic (tested on CPU with a fake list of present
devices); the rest asks TensorFlow. On GPU a window ends with
``tf.test.experimental.sync_devices()`` (kernels are queued asynchronously);
peak GPU memory comes from ``tf.config.experimental.get_memory_info``.
"""

from __future__ import annotations

from collections.abc import Sequence

DEVICE_CHOICES = ("cpu", "gpu", "all")


class DeviceError(ValueError):
    """A device request that cannot be met; the message is one line for the user."""


def resolve_devices(requested: str | None, present: Sequence[str]) -> list[str]:
    """Devices to run on. ``None``: every device present. ``all``: CPU and GPU; a GPU
    that is not present gives cells reported as "skipped: no GPU".

    >>> resolve_devices(None, ["cpu"])
    ['cpu']
    >>> resolve_devices("all", ["cpu"])
    ['cpu', 'gpu']
    """
    if requested is None:
        return list(present)
    if requested == "all":
        return ["cpu", "gpu"]
    if requested not in ("cpu", "gpu"):
        raise DeviceError(f"unknown device {requested!r}; choose from: {', '.join(DEVICE_CHOICES)}")
    if requested not in present:
        raise DeviceError(
            f"--device {requested}: no {requested.upper()} present on this machine; "
            f"devices present: {', '.join(present)}"
        )
    return [requested]


def present_devices() -> list[str]:
    import tensorflow as tf

    devices = ["cpu"]
    if tf.config.list_physical_devices("GPU"):
        devices.append("gpu")
    return devices


def hidden_device_types(device: str) -> list[str]:
    """Device types a cell on ``device`` hides from TensorFlow before its runtime starts.

    A CPU cell on a machine with a GPU hides the GPUs, so that TF places no op there
    and takes no GPU memory. Keras still sees them: its ``jit_compile="auto"`` reads
    ``tf.config.list_physical_devices()``, which lists hidden devices too, so fit's
    CPU cell there compiles with XLA (loops/knobs.py ``keras_auto_jit`` keys it so).

    >>> hidden_device_types("cpu"), hidden_device_types("gpu")
    (['GPU'], [])
    """
    return ["GPU"] if device == "cpu" else []


def hide_devices(device: str) -> list[str]:
    """Hide what ``hidden_device_types(device)`` names and is present; returns the
    types hidden. Must run before TensorFlow's runtime starts."""
    import tensorflow as tf

    hidden = []
    for device_type in hidden_device_types(device):
        if tf.config.list_physical_devices(device_type):
            tf.config.set_visible_devices([], device_type)
            hidden.append(device_type)
    return hidden


def tf_device_name(device: str) -> str:
    return {"cpu": "/CPU:0", "gpu": "/GPU:0"}[device]


def sync_device(device: str) -> None:
    """Wait for every kernel queued on ``device`` (a no-op on CPU: ops there run inline;
    the caller's host fetch is the sync)."""
    if device == "gpu":
        import tensorflow as tf

        tf.test.experimental.sync_devices()


def cell_gpus() -> list[str]:
    """TF's names of the GPUs this process sees (the cell's: ``configure_devices`` in
    loops/distribute.py hides the others), ``GPU:0`` first."""
    import tensorflow as tf

    return [f"GPU:{i}" for i in range(len(tf.config.get_visible_devices("GPU")))]


def reset_gpu_peak(device: str) -> None:
    """Start the peak memory figure of each GPU of a GPU cell afresh."""
    if device == "gpu":
        import tensorflow as tf

        for name in cell_gpus():
            tf.config.experimental.reset_memory_stats(name)


def gpu_peak_bytes(device: str) -> int | None:
    """The largest peak memory of one GPU of a GPU cell since ``reset_gpu_peak`` (every
    replica of ``mirrored:N`` holds a model: the most any one GPU needed); None on CPU."""
    if device != "gpu":
        return None
    import tensorflow as tf

    return max(int(tf.config.experimental.get_memory_info(n)["peak"]) for n in cell_gpus())


def gpu_descriptions() -> list[dict[str, str]]:
    """Name and compute capability (``"8.0"``) of each GPU of the machine (empty on
    CPU-only machines)."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")  # TF gives (major, minor)
        found.append(
            {
                "name": str(details.get("device_name", gpu.name)),
                "compute_capability": ".".join(map(str, capability)) if capability else "",
            }
        )
    return found
