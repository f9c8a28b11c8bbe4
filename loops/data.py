"""MNIST-shaped data: a local MNIST copy when one exists, else deterministic synthetic data.

Nothing is downloaded. The real data set is used when ``path`` is given or the
Keras cache file (``~/.keras/datasets/mnist.npz``, or under ``$KERAS_HOME``)
exists. Otherwise ``synthetic_mnist`` draws 28x28 images in [0, 1] from ten
fixed random stroke patterns plus noise: shaped like MNIST, seeded, and
learnable (an MLP separates the classes within a few hundred steps).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_PIXELS = 28 * 28
N_CLASSES = 10
MNIST_TRAIN, MNIST_VAL = 60_000, 10_000


def keras_cache_path() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


class DataError(ValueError):
    """A data file that cannot be used; the message is one line for the user."""


def load_mnist_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val): images flattened to 784 floats in [0, 1]."""
    try:
        with np.load(path) as npz:
            x_train, y_train = npz["x_train"], npz["y_train"]
            x_val, y_val = npz["x_test"], npz["y_test"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable MNIST .npz ({exc})") from None

    def flat(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), IMAGE_PIXELS).astype(np.float32)) / np.float32(255.0)

    return flat(x_train), y_train.astype(np.int32), flat(x_val), y_val.astype(np.int32)


SYNTHETIC_VERSION = 2  # bump when synthetic_mnist's formula changes (invalidates the cache)


def cache_dir() -> Path:
    """Where generated data is kept: $LOOPBENCH_CACHE, else ~/.cache/tf-loopbench."""
    configured = os.environ.get("LOOPBENCH_CACHE")
    if configured:
        return Path(configured)
    return Path(os.path.expanduser("~")) / ".cache" / "tf-loopbench"


def synthetic_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-shaped images (float32 in [0, 1]) and labels, deterministic from ``seed``.

    The ten class patterns depend only on a fixed seed, so training and
    validation sets drawn with different seeds share classes. Generating 60,000
    images takes about a second, paid by every worker process; the arrays are
    therefore kept in a cache file (``cache_dir()``, written atomically, keyed by
    formula version, n and seed) and loaded from there when present.
    """
    path = cache_dir() / f"synthetic-mnist-v{SYNTHETIC_VERSION}-n{n}-s{seed}.npz"
    try:
        with np.load(path) as cached:
            return cached["images"], cached["labels"]
    except (OSError, KeyError, ValueError):
        pass
    images, labels = _generate_synthetic_mnist(n, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, images=images, labels=labels)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: generate every time
    return images, labels


def _generate_synthetic_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    patterns = (np.random.default_rng(12345).random((N_CLASSES, IMAGE_PIXELS)) < 0.2).astype(
        np.float32
    )
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=n, dtype=np.int32)
    noise = rng.random((n, IMAGE_PIXELS), dtype=np.float32)
    images = np.clip(0.45 * patterns[labels] + 0.7 * noise - 0.15, 0.0, 1.0)
    return images.astype(np.float32), labels


def mnist_train_size(n_train: int | None, path: str | None) -> int:
    """How many training images ``mnist_like`` gives, without loading them."""
    if n_train is not None:
        return n_train
    chosen = Path(path) if path else keras_cache_path()
    if chosen.exists():
        try:
            with np.load(chosen) as npz:
                return len(npz["y_train"])
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{chosen}: not a readable MNIST .npz ({exc})") from None
    if path:
        raise DataError(f"{path}: no such data file")
    return MNIST_TRAIN


def mnist_like(
    seed: int, n_train: int | None, path: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(x_train, y_train, x_val, y_val, source description)."""
    chosen = Path(path) if path else keras_cache_path()
    if path and not chosen.exists():
        raise DataError(f"{path}: no such data file")
    if chosen.exists():
        x_train, y_train, x_val, y_val = load_mnist_npz(chosen)
        if n_train is not None:
            if n_train > len(x_train):
                raise DataError(
                    f"data size {n_train} is larger than MNIST's {len(x_train)} training images"
                )
            x_train, y_train = x_train[:n_train], y_train[:n_train]
        return x_train, y_train, x_val, y_val, f"mnist:{chosen}"
    n = MNIST_TRAIN if n_train is None else n_train
    n_val = min(MNIST_VAL, max(n // 6, 256))
    x_train, y_train = synthetic_mnist(n, seed)
    x_val, y_val = synthetic_mnist(n_val, seed + 1_000_003)
    return x_train, y_train, x_val, y_val, f"synthetic-mnist(seed={seed})"
