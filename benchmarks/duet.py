"""Duet A/B: the base and current workers of one cell run at once, each on its own cores.

``loopbench ab --mode duet`` (benchmarks/ab.py) starts the two sides' worker of the same
job together, so that whatever else the machine runs falls on both alike (Bulej et al.,
"Duet benchmarking", ICPE 2020). This module holds both halves of what the two sides
share, and nothing here is timed:

- the driver's half: the cores split into two halves (``core_halves``), which half each
  side gets in block k (``block_cores``: the halves swap every block, so a slower core
  falls on both sides alike), and the seat file it writes for each side before each job
  (``write_seat``: ``<dir>/<side>.json``, ``{"job": index, "cores": [...]}``);
- the worker's half (``Seat``): a worker whose environment names the duet directory
  (``LOOPBENCH_DUET_DIR``, ``LOOPBENCH_DUET_SIDE``) reads its seat, pins itself to its
  cores with ``os.sched_setaffinity`` before TensorFlow's runtime starts (so TensorFlow's
  thread pools and tf.data's size themselves to the half), and meets the other side's
  worker of the same job at a barrier (``Seat.meet``): once to agree the steps a window
  (the fewer of the two), then before every timed window, so window k of both sides
  starts at the same moment and times the same number of steps.

The barrier is two Unix datagram sockets in the duet directory, one per worker
(``<side>-<job>.sock``): each side sends its message to the other's socket and waits
for the other's. The side that arrives second finds the first's message waiting and
goes on at once; the first wakes when the second's arrives. A peer that does not come
within ``BARRIER_TIMEOUT_S`` (it failed, or runs other code) breaks the barrier: the
worker goes on alone and its row says so (``barrier_broken``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from tf_loopbench.benchmarks.config import DUET_DIR_ENV, DUET_SIDE_ENV

#: the two sides of an A/B, each with its partner
PEERS = {"base": "current", "current": "base"}
#: how long a worker waits for the other side at a barrier (its start-up, a trace or an
#: XLA compile of a loaded machine) before it goes on alone
BARRIER_TIMEOUT_S = 60.0


def available_cores() -> tuple[int, ...]:
    """The cores this process may run on (all of them where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def core_halves(cores: Iterable[int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Two equal, disjoint halves of ``cores`` (an odd one out stays unused); None under 2.

    >>> core_halves([0, 1, 2, 3, 4])
    ((0, 1), (2, 3))
    >>> core_halves([3]) is None
    True
    """
    cores = sorted(cores)
    half = len(cores) // 2
    if half < 1:
        return None
    return tuple(cores[:half]), tuple(cores[half : 2 * half])


def block_cores(halves: tuple[tuple[int, ...], ...], block: int, side: str) -> tuple[int, ...]:
    """The half ``side`` runs on in ``block``: base the first in even blocks, the second in
    odd ones, current the other.

    >>> [block_cores(((0,), (1,)), block, "base") for block in range(3)]
    [(0,), (1,), (0,)]
    """
    first = block % 2 if side == "base" else 1 - block % 2
    return halves[first]


def write_seat(
    directory: Path, side: str, job: int, cores: Iterable[int], threads: int | None = None
) -> None:
    """Tell ``side``'s next worker (job ``job``) its cores (empty: not pinned) and its
    TensorFlow threads (None: one a core it is pinned to): written before its ``go``."""
    path = Path(directory) / f"{side}.json"
    scratch = path.with_suffix(".tmp")
    seat = {"job": job, "cores": list(cores), "threads": threads}
    scratch.write_text(json.dumps(seat), encoding="utf-8")
    os.replace(scratch, path)


def supported(code_dir: Path) -> bool:
    """Whether a side's code takes part in a duet (its workers read the seat file)."""
    config = Path(code_dir) / "benchmarks" / "config.py"
    try:
        return DUET_DIR_ENV in config.read_text(encoding="utf-8")
    except OSError:
        return False


class Seat:
    """A duet worker's place: its side, job, cores, and its barrier with the other side's
    worker of the same job. ``Seat.for_job`` reads it from the environment."""

    def __init__(
        self,
        directory: Path,
        side: str,
        job: int,
        cores: Iterable[int],
        timeout_s: float,
        threads: int | None = None,
    ) -> None:
        self.directory, self.side, self.job = Path(directory), side, job
        self.cores = tuple(cores)
        #: TensorFlow's intra- and inter-op threads (None: one a core of the seat)
        self.threads = threads or (len(self.cores) or None)
        self.timeout_s = timeout_s
        self.meetings = 0
        self.wait_s = 0.0
        self.broken: str | None = None  # why the barrier was given up
        self._socket: socket.socket | None = None

    @classmethod
    def for_job(cls, job: int, timeout_s: float = BARRIER_TIMEOUT_S) -> Seat | None:
        """This worker's seat when its environment names a duet, else None. A seat file
        written for another job (the sides planned different matrices) is no seat: the
        worker runs as in an interleaved A/B."""
        directory, side = os.environ.get(DUET_DIR_ENV), os.environ.get(DUET_SIDE_ENV)
        if not directory or side not in PEERS:
            return None
        try:
            seat = json.loads((Path(directory) / f"{side}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if seat.get("job") != job:
            return None
        cores, threads = seat.get("cores") or (), seat.get("threads")
        return cls(Path(directory), side, job, cores, timeout_s, threads)

    def _path(self, side: str) -> str:
        return str(self.directory / f"{side}-{self.job}.sock")

    def take(self) -> list[int]:
        """Pin this process to the seat's cores and open its end of the barrier; the
        cores read back. Call before TensorFlow's runtime starts."""
        if self.cores:
            os.sched_setaffinity(0, self.cores)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(self.side))
        self._socket.bind(self._path(self.side))
        return sorted(os.sched_getaffinity(0))

    def meet(self, message: str) -> str | None:
        """Send ``message`` to the other side's worker and wait for its message of the
        same place; that message, or None when the barrier is broken (then at once)."""
        if self.broken is not None or self._socket is None:
            return None
        started = time.monotonic()
        deadline = started + self.timeout_s
        peer = self._path(PEERS[self.side])
        try:
            while True:  # the peer's socket appears when its worker has started
                try:
                    self._socket.sendto(message.encode(), peer)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    if time.monotonic() > deadline:
                        raise TimeoutError from None
                    time.sleep(0.001)
            self._socket.settimeout(max(0.001, deadline - time.monotonic()))
            answer = self._socket.recv(256).decode()
        except (TimeoutError, OSError) as exc:
            self.broken = f"no answer from the {PEERS[self.side]} side at {message!r}"
            if not isinstance(exc, TimeoutError):
                self.broken += f" ({exc})"
            return None
        finally:
            self.wait_s += time.monotonic() - started
        self.meetings += 1
        return answer

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            with contextlib.suppress(OSError):
                os.unlink(self._path(self.side))
            self._socket = None

    def facts(self) -> dict:
        """What a worker's process row records of its duet."""
        return {
            "duet_side": self.side,
            "barrier_meetings": self.meetings,
            "barrier_wait_s": round(self.wait_s, 4),
            "barrier_broken": self.broken,
        }
