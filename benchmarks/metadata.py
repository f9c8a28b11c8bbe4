"""Machine and software metadata of a run, split into hard and soft keys.

Hard keys describe the machine and the settings that change what a step costs
(CPU model, visible cores, cgroup CPU quota, GPUs, thread pools, platform,
Python minor version): runs that differ in any of them are never compared
directly (``loopbench compare`` exits 2). Soft keys are recorded and shown
when they differ: TF/Keras/NumPy versions, TF build info (CUDA, cuDNN), the
git commit and dirty flag, a hash of loops/, environment variables (TF_*,
XLA_FLAGS, OMP_*), the command line, start and end times, and the machine's
peak matrix-multiply FLOP/s measured by a short probe (several large
``tf.matmul``s in one call, best of a few calls): per device in float32
(``peak_matmul_flops``), and in every compute dtype a cell of the run uses
(``peak_matmul_flops_by_dtype``: bfloat16 for mixed_bfloat16, float16 for
mixed_float16; a dtype the device cannot multiply in is named with its reason in
``peak_matmul_errors``). MFU divides by these (docs/methodology.md, "MFU").

The TensorFlow part runs in a fresh probe process (``probe``), so the
parent never initialises TF's runtime.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tf_loopbench.benchmarks.config import DUET_DIR_ENV, DUET_SIDE_ENV

ROOT = Path(__file__).resolve().parent.parent
#: the dtype every device's peak is measured in (the gate compares it between runs)
FLOAT32 = "float32"
ENV_PREFIXES = ("TF_", "XLA_FLAGS", "OMP_", "KMP_", "CUDA_VISIBLE_DEVICES", "LOOPBENCH_")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def visible_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup (cgroup v2 cpu.max or v1 cfs quota), None if unlimited."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def git_state(root: Path = ROOT) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def code_hash(root: Path = ROOT) -> str:
    """sha256 over loops/**/*.py (path and content): what ran, even without git."""
    digest = hashlib.sha256()
    for path in sorted((root / "loops").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def environment() -> dict[str, str]:
    # a duet A/B's side and its temporary directory say nothing about the machine
    duet = (DUET_DIR_ENV, DUET_SIDE_ENV)
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) and k not in duet
    }


def host_metadata(threads: dict[str, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hard, soft) keys known without TensorFlow."""
    hard = {
        "platform": platform.system(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "visible_cores": visible_cores(),
        "cgroup_cpu_quota": cgroup_cpu_quota(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        **threads,
    }
    soft = {
        "python_full": platform.python_version(),
        "hostname": socket.gethostname(),
        "env": environment(),
        "code_hash": code_hash(),
        **git_state(),
    }
    return hard, soft


def probe(
    devices_wanted: list[str] | None,
    threads: dict[str, int],
    dtypes: Sequence[str],
    connection: Any,
) -> None:
    """In a child process: TF facts, devices present, GPU names, the matmul peak of each
    wanted device in float32 and in each of ``dtypes`` (:func:`matmul_peaks`)."""
    from tf_loopbench.benchmarks.worker import attach_to_parent, configure_threads, send_to_parent

    attach_to_parent(connection)
    configure_threads(threads["intra_op_threads"], threads["inter_op_threads"])
    try:
        import keras
        import numpy as np
        import tensorflow as tf
        from tf_loopbench.loops import devices

        present = devices.present_devices()
        build = dict(tf.sysconfig.get_build_info())
        facts: dict[str, Any] = {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "tf_build": {
                k: str(v)
                for k, v in build.items()
                if k in ("cuda_version", "cudnn_version", "is_cuda_build", "is_rocm_build")
            },
            "devices_present": present,
            "gpus": devices.gpu_descriptions(),
        }
        wanted = [device for device in devices_wanted or [] if device in present]
        peaks, errors = matmul_peaks(wanted, dtypes)
        facts["peak_matmul_flops"] = {d: by_dtype[FLOAT32] for d, by_dtype in peaks.items()}
        facts["peak_matmul_flops_by_dtype"] = peaks
        facts["peak_matmul_errors"] = errors
        answer: dict[str, Any] = {"ok": facts}
    except Exception as exc:  # reported by the parent as one line
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    send_to_parent(connection, answer)


#: (n, matmuls per call, calls) of the peak probe. GPU: a call's work large enough
#: that its launch, sync and fetch are small beside it. CPU: about a second on 2
#: cores, in short calls (tens of ms) so that the best of ten can fall in a quiet
#: moment of a shared machine
PEAK_PROBE = {"cpu": (1024, 4, 10), "gpu": (4096, 8, 5)}


def matmul_peaks(
    devices_wanted: Sequence[str],
    dtypes: Sequence[str] = (FLOAT32,),
    size: tuple[int, int, int] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, str]]]:
    """``({device: {dtype: FLOP/s}}, {device: {dtype: why not}})``: the matmul peak of
    each device in float32 and in each of ``dtypes``, one after the other
    (:func:`matmul_peak_flops`, ``size`` by default the device's). A dtype the device
    has no matmul kernel for (TF's error) is left out of the peaks and named with TF's
    first line in the second dict; float32's error is raised."""
    import tensorflow as tf

    peaks: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, str]] = {}
    for device in devices_wanted:
        peaks[device] = {FLOAT32: matmul_peak_flops(device, size)}
        for dtype in sorted(set(dtypes) - {FLOAT32}):
            try:
                peaks[device][dtype] = matmul_peak_flops(device, size, dtype)
            except (tf.errors.OpError, NotImplementedError, TypeError) as exc:
                # TF's first line; a Python error raised while tracing ends with its own
                lines = str(exc).strip().splitlines() or [""]
                reason = lines[0] if isinstance(exc, tf.errors.OpError) else lines[-1].strip()
                name = f"{type(exc).__name__}: "
                errors.setdefault(device, {})[dtype] = name + reason.removeprefix(name)[:200]
    return peaks, errors


def matmul_peak_flops(
    device: str, size: tuple[int, int, int] | None = None, dtype: str = FLOAT32
) -> float:
    """Best FLOP/s over ``calls`` calls of one ``tf.function`` that chains ``matmuls``
    n x n ``tf.matmul``s in ``dtype`` on ``device`` (2 n^3 FLOPs each);
    ``size = (n, matmuls, calls)``, by default ``PEAK_PROBE[device]``.

    A call's time runs from the call to the host fetch of one element of the last
    product, after a device sync. Chaining (each product feeds the next) keeps
    every product in the graph; the right factor is scaled by 1/sqrt(n) so values
    stay near 1 (bfloat16 and float16 too). On GPU, TensorFlow's default TF32 matmuls
    apply to float32 here as in the workloads' steps.
    """
    import time

    import tensorflow as tf
    from tf_loopbench.loops import devices

    n, matmuls, calls = size or PEAK_PROBE[device]

    def chain(x, y):
        for _ in range(matmuls):
            x = tf.matmul(x, y)
        return x[0, 0]

    with tf.device(devices.tf_device_name(device)):
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)) / float(n) ** 0.5, dtype)
        products = tf.function(chain)
        products(a, b).numpy()  # trace and warm up (cuBLAS picks its kernels here)
        devices.sync_device(device)
        best = float("inf")
        for _ in range(calls):
            start = time.perf_counter()
            last = products(a, b)
            devices.sync_device(device)
            last.numpy()
            best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 * matmuls / best
