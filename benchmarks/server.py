"""What the fork server runs once, at its start (``benchmarks/runner.py``).

1. Ignore Ctrl-C: the parent handles it (it records what finished and stops the
   running worker), and a server interrupted in the middle of its imports would
   only print a traceback. It exits when the parent does. Workers it forks inherit
   this (``benchmarks.worker.attach_to_parent`` ignores SIGINT explicitly too).
2. Import TensorFlow and Keras (their import chatter held back:
   ``benchmarks/tf_import.py``), the loop styles, workloads and the worker code,
   without starting TensorFlow's runtime.
   Also the command line and the run (``benchmarks.cli``, ``benchmarks.run``, with
   pandas and scipy): multiprocessing re-runs the parent's main module in every child
   it starts, and with its imports already here that re-run costs milliseconds
   instead of a second a worker.
3. Make the run's shared training data (``benchmarks/preload.py``).
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)

import tf_loopbench.benchmarks.tf_import  # noqa: E402, F401  (TensorFlow, Keras)
import tf_loopbench.loops.styles  # noqa: E402, F401
import tf_loopbench.loops.workloads  # noqa: E402, F401
from tf_loopbench.benchmarks import cli, metadata, run, worker  # noqa: E402, F401
from tf_loopbench.benchmarks.preload import preload  # noqa: E402

preload()
