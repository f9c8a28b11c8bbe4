"""The run directory: the results contract between ``benchmarks`` and ``reports``.

``benchmarks`` writes a run directory; ``reports`` (and anything else) reads it.
This module is pure Python + pandas: it never imports TensorFlow, so a CI job
that only renders or compares stored runs does not pay TF's import.

Layout (see shared/DESIGN.md)::

    <out>/<run-id>/
      metadata.json   {"schema_version", "run_id", "hard": {...}, "soft": {...}, "config": {...}}
      samples.jsonl   one JSON object a line:
                        {"kind": "window", cell keys, "process": k, "window": j,
                         "steps": n, "seconds": t, "step_time_s": t / n}
                        {"kind": "process", cell keys, "process": k, "status": ...,
                         "step_time_s": median of that process's windows, ...phases...}
      summary.csv     one row per cell, SUMMARY_COLUMNS first
      report.md, report.html, plots/, profile/

Every file is written atomically (temporary file + ``os.replace``), so a reader
sees either the old file or the new one, never half of one.

Example::

    from reports.rundir import load_run
    run = load_run("results/20261121-170000-cpu")
    run.summary[["workload", "loop", "step_time_median_s"]]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1

METADATA_FILE = "metadata.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.csv"

#: Identify a cell. A run holds one row per cell in summary.csv. ``width`` is the
#: hidden width of mlp/gan (an int; 0 for workloads without one, e.g. linear).
CELL_KEYS = ("workload", "loop", "device", "batch_size", "width")

#: The contract of summary.csv (shared/DESIGN.md). Renaming one is a breaking change;
#: more columns may follow these.
SUMMARY_COLUMNS = (
    "workload",
    "loop",
    "device",
    "batch_size",
    "status",  # ok | failed | skipped
    "step_time_median_s",
    "step_time_ci_low_s",
    "step_time_ci_high_s",
    "step_time_iqr_s",
    "examples_per_s",
    "compile_s",
    "final_loss",
    "retraces",
    "peak_rss_bytes",
    "n_processes",
    "noisy",
    "speedup_vs_fit",
)

STATUSES = ("ok", "failed", "skipped")


class RunDirError(Exception):
    """A run directory that cannot be read: missing, empty, corrupted or too new.

    Its message is one line fit to show a user as it is.
    """


@dataclass(frozen=True)
class Run:
    """One run directory, loaded."""

    path: Path
    metadata: dict[str, Any]
    summary: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.metadata.get("run_id", self.path.name))

    def process_samples(self) -> pd.DataFrame:
        """One row per worker process (the statistical samples), status ok only."""
        if self.samples.empty:
            return self.samples
        rows = self.samples[self.samples["kind"] == "process"]
        if "status" in rows:
            rows = rows[rows["status"] == "ok"]
        return rows.reset_index(drop=True)


# --------------------------------------------------------------------------- writing


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_default(value: Any) -> Any:
    # numpy scalars and other number-likes
    for cast in (int, float):
        try:
            if hasattr(value, "dtype"):
                return value.item()
        except (AttributeError, ValueError):
            pass
        try:
            return cast(value)
        except (TypeError, ValueError):
            continue
    return str(value)


def _clean(value: Any) -> Any:
    """NaN and inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_clean(obj), default=_json_default, allow_nan=False, **kwargs)


def write_metadata(run_dir: str | os.PathLike[str], metadata: Mapping[str, Any]) -> None:
    meta = dict(metadata)
    meta.setdefault("schema_version", SCHEMA_VERSION)
    atomic_write_text(Path(run_dir) / METADATA_FILE, dumps(meta, indent=2, sort_keys=True) + "\n")


def write_samples(run_dir: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite samples.jsonl whole (atomically) from ``rows``."""
    text = "".join(dumps(row, sort_keys=True) + "\n" for row in rows)
    atomic_write_text(Path(run_dir) / SAMPLES_FILE, text)


def write_summary(run_dir: str | os.PathLike[str], summary: pd.DataFrame) -> None:
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks contract columns: {missing}")
    ordered = list(SUMMARY_COLUMNS) + [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    atomic_write_text(Path(run_dir) / SUMMARY_FILE, summary[ordered].to_csv(index=False))


# --------------------------------------------------------------------------- reading


def read_metadata(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / METADATA_FILE
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory")
    if not path.exists():
        raise RunDirError(f"{run_dir}: not a run directory (no {METADATA_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupted metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise RunDirError(f"{path}: corrupted metadata (not a JSON object)")
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise RunDirError(f"{path}: corrupted metadata (no integer schema_version)")
    if version > SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: written by a newer tf-loopbench (schema {version}; this one reads "
            f"up to {SCHEMA_VERSION}); upgrade tf-loopbench to read it"
        )
    if version < 1:
        raise RunDirError(f"{path}: unknown schema_version {version}")
    return meta


def read_samples(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(run_dir) / SAMPLES_FILE
    if not path.exists():
        return pd.DataFrame(columns=["kind", *CELL_KEYS])
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise RunDirError(f"{path}:{number}: corrupted or cut-off line") from None
        if not isinstance(row, dict) or "kind" not in row:
            raise RunDirError(f"{path}:{number}: not a sample row")
        rows.append(row)
    if text and not text.endswith("\n"):
        raise RunDirError(f"{path}: cut off in the middle (no final newline)")
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["kind", *CELL_KEYS])
    return frame


def read_summary(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        raise RunDirError(f"{Path(run_dir)}: empty run directory (no {SUMMARY_FILE})")
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupted ({str(exc).splitlines()[0]})") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path}: corrupted summary (missing columns {', '.join(missing)})")
    bad_status = set(frame["status"].dropna()) - set(STATUSES)
    if bad_status:
        raise RunDirError(f"{path}: corrupted summary (unknown status {sorted(bad_status)})")
    return frame


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Load and validate one run directory; raise RunDirError with a one-line reason."""
    run_dir = Path(run_dir)
    metadata = read_metadata(run_dir)
    summary = read_summary(run_dir)
    samples = read_samples(run_dir)
    return Run(path=run_dir, metadata=metadata, summary=summary, samples=samples)
