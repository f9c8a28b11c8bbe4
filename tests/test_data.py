"""Data: deterministic synthetic MNIST-shaped data, the local-MNIST path, no downloads."""

from __future__ import annotations

import numpy as np
import pytest
from tf_loopbench.loops.data import DataError, mnist_like, mnist_train_size, synthetic_mnist


def test_synthetic_is_deterministic_and_seeded():
    x1, y1 = synthetic_mnist(64, seed=3)
    x2, y2 = synthetic_mnist(64, seed=3)
    x3, _ = synthetic_mnist(64, seed=4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (64, 784) and x1.dtype == np.float32 and y1.dtype == np.int32
    assert x1.min() >= 0.0 and x1.max() <= 1.0


def test_synthetic_classes_are_learnable():
    x, y = synthetic_mnist(2000, seed=0)
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)])
    # nearest class mean classifies held-out data far above chance (10%)
    x_val, y_val = synthetic_mnist(500, seed=1)
    predicted = np.argmin(((x_val[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y_val).mean() > 0.9


def write_fake_mnist(path, n_train=100, n_test=20):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def test_local_mnist_file_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    x, _, _, _, source = mnist_like(seed=0, n_train=None, path=None)
    assert source.startswith("synthetic") and len(x) == 60_000
    cache = tmp_path / "keras" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    write_fake_mnist(cache)
    x, y, x_val, y_val, source = mnist_like(seed=0, n_train=None, path=None)
    assert source == f"mnist:{cache}"
    assert x.shape == (100, 784) and x_val.shape == (20, 784) and float(x.max()) <= 1.0
    assert mnist_train_size(None, None) == 100


def test_bad_data_files(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        mnist_like(0, None, str(tmp_path / "missing.npz"))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable MNIST"):
        mnist_like(0, None, str(broken))
    good = tmp_path / "mnist.npz"
    write_fake_mnist(good)
    with pytest.raises(DataError, match="larger than MNIST"):
        mnist_like(0, 1000, str(good))


def test_synthetic_data_is_cached_and_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPBENCH_CACHE", str(tmp_path))
    first = synthetic_mnist(32, seed=5)
    files = list(tmp_path.glob("synthetic-mnist-*.npz"))
    assert len(files) == 1
    second = synthetic_mnist(32, seed=5)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    files[0].write_bytes(b"corrupted")  # a broken cache file is regenerated, not trusted
    third = synthetic_mnist(32, seed=5)
    np.testing.assert_array_equal(first[0], third[0])


@pytest.mark.parametrize("workload", ["linear", "gan"])
def test_tf_data_batches_are_the_numpy_slices_across_epochs(workload):
    # the loop styles' batch order (loops/base.py): batch i = rows of step i % S;
    # 100 rows / batch 16 = 6 whole batches an epoch, the last 4 rows never used
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.loops.base import WORKLOADS, WorkloadConfig
    from tf_loopbench.loops.feeders import numpy_batches, tf_data_batches

    data = WORKLOADS.get(workload)(WorkloadConfig(seed=0, data_size=100)).make_data()
    train = data.whole_batches(16)
    from_numpy, from_tf_data = numpy_batches(train, 16), tf_data_batches(train, 16)
    pairs = [(next(from_numpy), next(from_tf_data)) for _ in range(15)]
    for i in (0, 1, 5, 6, 7, 12, 14):  # epoch ends after steps 5 and 11
        expected, got = pairs[i]
        assert set(got) == set(expected)
        for name in expected:
            assert got[name].shape == expected[name].shape == (16, *train[name].shape[1:])
            np.testing.assert_array_equal(got[name].numpy(), expected[name])
    start = 13 % 6 * 16
    np.testing.assert_array_equal(pairs[13][1]["x"].numpy(), train["x"][start : start + 16])
