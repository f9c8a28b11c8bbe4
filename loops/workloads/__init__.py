"""Workloads, one file each; importing this package registers them all (in this order)."""

from tf_loopbench.loops.workloads import linear, mlp, gan  # noqa: F401, I001  (registration order)
