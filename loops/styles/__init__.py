"""Loop styles, one file each; importing this package registers them (ladder order)."""

from tf_loopbench.loops.styles import fit, eager, tf_function, tf_data, xla  # noqa: F401, I001
