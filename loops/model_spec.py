"""A user's model as a run option: ``--model PATH.py:FUNCTION`` or ``--model module:FUNCTION``.

This module imports no TensorFlow: the command line parses and checks a model
source here before it starts anything, and ``ModelSpec`` (what the inspection
of a model found, see ``loops/user_model.py``) travels in the run's frozen
configuration to every worker process. docs/user-models.md has the contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: a workload name made from a user's model: shown in tables, part of log file names
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: ``pickle:FILE``: a model dict given to the Python API, pickled for the workers
PICKLE_PREFIX = "pickle:"


class ModelSpecError(ValueError):
    """A model source or model dict that cannot be used; the message is one line."""


@dataclass(frozen=True)
class ModelSource:
    """Where FUNCTION lives: a file (``kind == "file"``), a module, or a pickled dict."""

    kind: str  # "file" | "module" | "pickle"
    target: str  # absolute file path, dotted module name, or pickle file path
    function: str  # attribute name ("" for a pickle)

    @property
    def text(self) -> str:
        if self.kind == "pickle":
            return f"{PICKLE_PREFIX}{self.target}"
        return f"{self.target}:{self.function}"

    @property
    def default_name(self) -> str:
        """The workload name when the dict gives none: FUNCTION's name."""
        return self.function or Path(self.target).stem


def parse_source(text: str) -> ModelSource:
    """Check the form of ``PATH.py:FUNCTION`` / ``module:FUNCTION`` (and that a file
    exists) without importing anything.

    >>> parse_source("json:loads").kind
    'module'
    """
    if text.startswith(PICKLE_PREFIX):
        path = Path(text[len(PICKLE_PREFIX) :])
        if not path.is_file():
            raise ModelSpecError(f"--model {text}: no such file")
        return ModelSource("pickle", str(path.resolve()), "")
    target, sep, function = text.rpartition(":")
    if not sep or not target or not function:
        raise ModelSpecError(f"--model {text!r}: expected PATH.py:FUNCTION or module:FUNCTION")
    if not function.isidentifier():
        raise ModelSpecError(f"--model {text}: {function!r} is not a Python name")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ModelSpecError(f"--model {text}: no such file {target}")
        return ModelSource("file", str(path.resolve()), function)
    if not all(part.isidentifier() for part in target.split(".")):
        raise ModelSpecError(f"--model {text}: {target!r} is neither a .py file nor a module name")
    return ModelSource("module", target, function)


@dataclass(frozen=True)
class ModelSpec:
    """What the inspection of a user's model found (in a child process, before any
    worker starts); every worker builds the model again from ``source``."""

    source: str  # ModelSource.text: how a worker finds FUNCTION
    name: str  # the workload name in cells, tables and reports
    n_train: int  # training examples after the validation split and --data-size
    batch_size: int  # the dict's batch_size, else Keras's default 32
    description: str  # one line for `loopbench list` and metadata
    #: sha256 of the initial weights as FUNCTION built them; every worker compares
    #: its own against it (on ``digest_device``, where initial values must agree bit
    #: for bit) instead of trusting the seed
    weights_digest: str
    digest_device: str  # "cpu" or "gpu": where the inspection built the model
    #: model FLOPs of one training step per example, counted by TensorFlow's profiler
    #: on the traced step (loops/flops.py); None when the count failed
    flops_per_example: float | None = None
    custom_train_step: bool = False
    plugin: str | None = None  # the distribution an entry-point model came from
    #: the dict's ``equal_work_rtol``: the least relative tolerance of the equal-work
    #: check this model needs (its training amplifies float rounding); None: the styles'
    equal_work_rtol: float | None = None
