"""Stored baselines: a named copy of a run directory to compare later runs against, for
trends on ONE fixed machine (elsewhere prefer the same-job A/B: docs/gate.md)::

    loopbench baseline save results/20261121-120000-cpu --name main
    loopbench baseline list
    loopbench baseline compare main results/20261122-090000-cpu --markdown gate.md
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tf_loopbench.reports.rundir import METADATA_FILE, RUN_FILES, RunDirError, load_run

STORE_ENV = "LOOPBENCH_BASELINES"
DEFAULT_STORE = Path(".loopbench") / "baselines"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BaselineError(Exception):
    """A baseline that cannot be saved or found; the message is one line."""


@dataclass(frozen=True)
class Baseline:
    name: str
    path: Path
    run_id: str
    started_at: str
    commit: str
    cells: int


def store_path(store: str | os.PathLike[str] | None = None) -> Path:
    """The baseline store: ``store``, else $LOOPBENCH_BASELINES, else .loopbench/baselines."""
    return Path(store if store is not None else os.environ.get(STORE_ENV) or DEFAULT_STORE)


def check_name(name: str) -> str:
    """A baseline name is a plain file name: letters, digits, ``.``, ``_``, ``-``.

    >>> check_name("main-2026.11")
    'main-2026.11'
    """
    if not _NAME.match(name) or name in (".", ".."):
        raise BaselineError(
            f"invalid baseline name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 100, not starting with '.', '_' or '-')"
        )
    return name


def save(
    run_dir: str | os.PathLike[str],
    name: str,
    store: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Copy a readable, complete run into the store as ``name``; returns its path."""
    check_name(name)
    run = load_run(run_dir)  # RunDirError: missing, corrupted, too new
    if run.metadata.get("complete") is False:
        raise BaselineError(
            f"{run_dir}: the run did not finish (interrupted or still running); "
            "a baseline must be a complete run"
        )
    if run.process_samples().empty:
        raise BaselineError(f"{run_dir}: no ok process samples to compare against")
    root = store_path(store)
    target = root / name
    if target.exists() and not force:
        raise BaselineError(f"baseline {name!r} exists in {root}; use --force to replace it")
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        for file_name in RUN_FILES:
            source = run.path / file_name
            if source.exists():
                shutil.copy2(source, staging / file_name)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=root))
            os.replace(target, old / name)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise BaselineError(
            f"cannot write baseline {name!r} in {root}: {exc.strerror or exc}"
        ) from None
    return target


def find(name: str, store: str | os.PathLike[str] | None = None) -> Path:
    """The directory of baseline ``name``; a clear error listing what exists."""
    check_name(name)
    root = store_path(store)
    path = root / name
    if not (path / METADATA_FILE).exists():
        names = [b.name for b in listing(store)]
        known = f"; saved baselines: {', '.join(names)}" if names else "; none saved yet"
        raise BaselineError(f"no baseline {name!r} in {root}{known}")
    return path


def listing(store: str | os.PathLike[str] | None = None) -> list[Baseline]:
    """Every readable baseline in the store, by name (unreadable ones are skipped)."""
    root = store_path(store)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not (path / METADATA_FILE).exists():
            continue
        try:
            run = load_run(path)
        except RunDirError:
            continue
        soft = run.metadata.get("soft", {})
        started, commit = (str(soft.get(key) or "?") for key in ("started_at", "git_commit"))
        found.append(Baseline(path.name, path, run.run_id, started, commit[:10], len(run.summary)))
    return found
