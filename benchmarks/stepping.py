"""Advance a trainer a few steps at a time without leaving its one ``run`` call.

pytest-benchmark wants a callable per round, but ``fit`` must be timed inside
one ``fit`` call (its per-call set-up is large). ``SteppedTrainer`` runs
``trainer.run(total, hooks)`` in a background thread that waits before each
step until the caller allows more; ``advance(k)`` allows ``k`` steps, waits
until they are dispatched, then host-syncs. The same wrapper serves every loop
style, so their rounds are comparable. Cost: one thread hand-off per round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tf_loopbench.loops.base import StepHooks, Trainer


class _Gate(StepHooks):
    def __init__(self, total: int) -> None:
        self.total = total
        self.allowed = threading.Semaphore(0)
        self.done = 0
        self.changed = threading.Condition()
        self.cancelled = False

    def on_step_begin(self, step: int) -> None:
        with self.changed:
            self.done = step
            self.changed.notify_all()
        if step < self.total:
            self.allowed.acquire()
            if self.cancelled:
                raise _Cancelled


class _Cancelled(Exception):
    pass


class SteppedTrainer:
    def __init__(self, trainer: Trainer, total_steps: int, sync: Callable[[], object]) -> None:
        self.trainer = trainer
        self.sync = sync
        self.gate = _Gate(total_steps)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.trainer.run(self.gate.total, self.gate)
        except _Cancelled:
            pass
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
            with self.gate.changed:
                self.gate.changed.notify_all()

    def advance(self, steps: int) -> None:
        """Run ``steps`` more steps and host-sync; raises what the trainer raised."""
        target = self.gate.done + steps
        if target > self.gate.total:
            raise ValueError(f"only {self.gate.total - self.gate.done} steps left")
        self.gate.allowed.release(steps)
        with self.gate.changed:
            self.gate.changed.wait_for(lambda: self.gate.done >= target or self.error is not None)
        if self.error is not None:
            raise self.error
        self.sync()

    def close(self) -> None:
        self.gate.cancelled = True
        self.gate.allowed.release(1)
        self.thread.join(timeout=60)
