"""Two ``loopbench run`` processes taking turns, worker by worker: the same-job A/B.

The A/B driver (``benchmarks/ab.py``) starts the base side and the current side as
two ordinary ``loopbench run`` processes, each with its own code, fork server and
run directory, and makes them take turns so that their worker processes
interleave: cell c's process k of the base side runs seconds before or after the
current side's, never at the same time (two workers would compete for the same
cores), and a drift of the machine falls on both alike. A side started with
``--take-turns FD`` follows this line protocol:

- it waits for a line ``go`` on its stdin before its start-up probe (the matmul
  peak: the two sides never probe at once) and before every worker job;
- on file descriptor ``FD`` it writes ``ready <jobs>`` after its start-up turn and
  ``done <cell label> <process> <status>`` after every job (after the job's rows are
  written);
- end of file on stdin means the driver stopped it: the run ends as interrupted
  (``metadata.json`` says so), keeping every finished job.

This module is the side's half; the driver's half is ``run_interleaved`` in ``ab.py``.
Nothing here is timed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO


class TurnTaker:
    """The side's half of the protocol (``loopbench run --take-turns FD``)."""

    def __init__(self, fd: int, stdin: TextIO | None = None) -> None:
        try:
            self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"--take-turns {fd}: not an open file descriptor ({exc.strerror})"
            ) from None
        self._in = stdin or sys.stdin

    def wait(self) -> None:
        """Block until the driver says ``go``; the driver gone or stopping: interrupted."""
        line = self._in.readline()
        if line.strip() != "go":
            raise KeyboardInterrupt  # ends the run as Ctrl-C does: finished jobs kept

    def ready(self, jobs: int) -> None:
        self._write(f"ready {jobs}")

    def done(self, label: str, process: int, status: Any) -> None:
        self._write(f"done {label} {process} {status}")

    def _write(self, line: str) -> None:
        with contextlib.suppress(OSError):  # the driver is gone: the next wait() ends the run
            self._out.write(line + "\n")
