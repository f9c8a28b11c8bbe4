"""A GPU-present machine on a CPU-only one: TensorFlow's device functions answering as
TF answers on a machine with one or two GPUs, so that the GPU branches of the suite run
in CI without a GPU.

``install(monkeypatch, gpus)`` replaces, on ``tf.config`` and ``tf.test.experimental``
(TensorFlow's public boundary, which our code and Keras both call through), the
functions that say which devices a machine has:

- ``list_physical_devices``: the real CPU and ``gpus`` GPUs. A GPU hidden with
  ``set_visible_devices`` is still listed, as TF lists it (Keras's ``jit_compile="auto"``
  reads this list: ``Trainer._resolve_auto_jit_compile``).
- ``get_visible_devices`` / ``set_visible_devices``: which GPUs are visible. Changing
  them once TF's runtime has started raises TF's RuntimeError; a device not from
  ``list_physical_devices`` raises TF's ValueError.
- ``experimental.get_device_details``: a name and a compute capability per GPU.
- ``experimental.get_memory_info`` / ``reset_memory_stats``: each visible GPU's
  ``current`` and ``peak`` bytes (``GPU:i`` numbers the visible GPUs, as TF's logical
  devices do); an unknown device raises TF's ValueError.
- ``test.experimental.sync_devices``: counted (``syncs``), then TF's own.

There is no logical GPU: an op placed on ``/GPU:i`` runs on the CPU (TF's soft device
placement). ``tf.distribute.MirroredStrategy`` over ``/GPU:i`` devices runs on logical
CPU ``i`` instead (made at install when TF's runtime has not started): two replicas on
one device would hang in TF's collective all-reduce. So a GPU cell trains for real,
through our GPU branches and Keras's.

In-process: the ``gpu_machine`` fixture (tests/conftest.py). Paths that need TF's
runtime not yet started (a CPU cell hiding the GPUs, logical CPUs for ``mirrored:N``)
run with ``run_jobs``: a fresh Python that installs the double and forks one child per
job, as the fork server does.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: what ``get_device_details`` says of every GPU of the double
GPU_NAME = "Double GPU"
COMPUTE_CAPABILITY = (8, 0)


def runtime_started() -> bool:
    """Whether TF's eager context is initialised (then visible devices are fixed)."""
    from tensorflow.python.eager import context

    return bool(context.context()._initialized)


@dataclass
class GpuDouble:
    """The state of the double: GPUs present and visible, memory figures, syncs."""

    gpus: int
    visible: list[int] = field(default_factory=list)
    #: peak bytes per physical GPU; ``reset_memory_stats`` sets it to ``current``
    peak: dict[int, int] = field(default_factory=dict)
    current: dict[int, int] = field(default_factory=dict)
    syncs: int = 0
    memory_resets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.visible = list(range(self.gpus))
        # distinct per GPU, so that a reader of GPU:0 only is told apart from one of all
        self.current = {i: (i + 1) * 1_000_000 for i in range(self.gpus)}
        self.peak = {i: (i + 1) * 5_000_000 for i in range(self.gpus)}

    def physical_gpus(self) -> list[Any]:
        import tensorflow as tf

        return [
            tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(self.gpus)
        ]

    def index_of(self, device: Any) -> int:
        if device not in self.physical_gpus():
            raise ValueError(
                "The PhysicalDevice must be one obtained from calling "
                f"`tf.config.list_physical_devices`, but got: {device}"
            )
        return int(device.name.rsplit(":", 1)[1])

    def visible_gpu(self, name: str) -> int:
        """The physical index of logical device ``GPU:i`` (the i-th visible GPU)."""
        kind, _, number = name.rpartition("/")[2].upper().partition(":")
        if kind != "GPU" or not number.isdigit() or int(number) >= len(self.visible):
            raise ValueError(f"No matching devices found for '{name}'")
        return self.visible[int(number)]

    def install(self, monkeypatch: Any) -> GpuDouble:
        import tensorflow as tf

        real_list = tf.config.list_physical_devices
        real_visible = tf.config.get_visible_devices
        real_set_visible = tf.config.set_visible_devices
        real_details = tf.config.experimental.get_device_details
        real_sync = tf.test.experimental.sync_devices

        def list_physical_devices(device_type=None):
            found = [] if device_type == "GPU" else real_list(device_type)
            if device_type in (None, "GPU"):
                found += self.physical_gpus()
            return found

        def get_visible_devices(device_type=None):
            found = [] if device_type == "GPU" else real_visible(device_type)
            if device_type in (None, "GPU"):
                found += [self.physical_gpus()[i] for i in self.visible]
            return found

        def set_visible_devices(devices, device_type=None):
            devices = list(devices) if isinstance(devices, (list, tuple)) else [devices]
            gpus = [d for d in devices if d.device_type == "GPU"]
            if device_type == "GPU" or gpus:
                wanted = sorted(self.index_of(d) for d in gpus)
                if wanted != self.visible and runtime_started():
                    raise RuntimeError("Visible devices cannot be modified after being initialized")
                self.visible = wanted
            if device_type != "GPU":
                real_set_visible([d for d in devices if d.device_type != "GPU"], device_type)

        def get_device_details(device):
            if device.device_type != "GPU":
                return real_details(device)
            self.index_of(device)
            return {"device_name": GPU_NAME, "compute_capability": COMPUTE_CAPABILITY}

        def get_memory_info(device):
            index = self.visible_gpu(device)
            return {"current": self.current[index], "peak": self.peak[index]}

        def reset_memory_stats(device):
            index = self.visible_gpu(device)
            self.memory_resets.append(device)
            self.peak[index] = self.current[index]

        def sync_devices():
            self.syncs += 1
            real_sync()

        real_mirrored = tf.distribute.MirroredStrategy
        if self.gpus > 1 and not runtime_started():  # stand-ins for a mirrored:N GPU cell
            tf.config.set_logical_device_configuration(
                real_list("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * self.gpus
            )

        def stand_in(name: str) -> str:
            kind, _, number = name.rpartition("/")[2].upper().partition(":")
            if kind != "GPU":
                return name
            if int(number) >= len(tf.config.list_logical_devices("CPU")):
                raise RuntimeError(
                    f"the GPU double runs {name}'s replica on logical CPU {number}, which "
                    "it makes before TF's runtime starts: use gpu_double.run_jobs"
                )
            return f"/CPU:{number}"

        class MirroredStrategy(real_mirrored):
            def __init__(self, devices=None, cross_device_ops=None):
                stand_ins = None if devices is None else [stand_in(d) for d in devices]
                super().__init__(stand_ins, cross_device_ops)

        monkeypatch.setattr(tf.distribute, "MirroredStrategy", MirroredStrategy)
        monkeypatch.setattr(tf.config, "list_physical_devices", list_physical_devices)
        monkeypatch.setattr(tf.config, "get_visible_devices", get_visible_devices)
        monkeypatch.setattr(tf.config, "set_visible_devices", set_visible_devices)
        monkeypatch.setattr(tf.config.experimental, "get_device_details", get_device_details)
        monkeypatch.setattr(tf.config.experimental, "get_memory_info", get_memory_info)
        monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", reset_memory_stats)
        monkeypatch.setattr(tf.test.experimental, "sync_devices", sync_devices)
        return self


def install(monkeypatch: Any, gpus: int = 1) -> GpuDouble:
    """TensorFlow answers as on a machine with ``gpus`` GPUs until ``monkeypatch`` undoes it."""
    return GpuDouble(gpus).install(monkeypatch)


def run_jobs(jobs: list[Any], gpus: int, timeout: float = 600) -> list[dict[str, Any]]:
    """``benchmarks.worker.run_job`` of each job on a machine with ``gpus`` GPUs, each in
    a fresh process whose TF runtime has not started (a fresh Python installs the double
    and imports TensorFlow, then forks a child per job). Each result holds the double's
    state at the job's end under ``"gpu_double"``."""
    with tempfile.TemporaryDirectory() as scratch:
        given, answer = Path(scratch, "jobs.pickle"), Path(scratch, "results.pickle")
        given.write_bytes(pickle.dumps(jobs))
        process = subprocess.run(
            [sys.executable, "-m", "tests.gpu_double", str(gpus), str(given), str(answer)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if process.returncode != 0:
            raise AssertionError(f"the double's process failed:\n{process.stderr[-3000:]}")
        return pickle.loads(answer.read_bytes())


def _child(job: Any, double: GpuDouble, connection: Any) -> None:
    from tf_loopbench.benchmarks.worker import run_job

    result = run_job(job)
    result["gpu_double"] = {"visible": double.visible, "syncs": double.syncs}
    connection.send(result)
    connection.close()


def _main(gpus: int, given: Path, answer: Path) -> None:
    import multiprocessing

    import pytest

    double = install(pytest.MonkeyPatch(), gpus)
    import tensorflow  # noqa: F401  (imported once, runtime not started, as the fork server)
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401

    context = multiprocessing.get_context("fork")
    results = []
    for job in pickle.loads(given.read_bytes()):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(job, double, send))
        child.start()
        send.close()
        results.append(receive.recv())
        child.join()
    answer.write_bytes(pickle.dumps(results))


if __name__ == "__main__":
    _main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
