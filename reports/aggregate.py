"""Load run directories into tidy pandas tables and aggregate them per cell.

What it computes
    * ``load_runs(paths)``: the summary rows of one or more run directories as
      one tidy DataFrame, one row per (run, cell), with a ``run`` label column
      saying which run a row came from.
    * ``load_run_set(paths)``: the same plus the per-process samples (the
      statistical samples: one fresh worker process each), the run labels, and
      which machine ("hard") keys differ between the runs.
    * ``aggregate_processes(processes)``: per (run, workload, device,
      batch_size, width, loop): number of ok processes, median / quartiles /
      coefficient of variation of their step times, median compile time.
    * ``run_labels(runs)``: a short label per run naming what differs in the
      metadata ("cpu" vs "gpu", "tensorflow 2.20" vs "tensorflow 2.21", a
      hostname, a commit), and a title such as "cpu vs gpu".

It reads files through ``reports.rundir`` only and never imports TensorFlow,
``loops`` or ``benchmarks``.

Run it::

    python -c "from reports.aggregate import load_runs; print(load_runs(['results/RUN']))"
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.rundir import CELL_KEYS, SUMMARY_COLUMNS, SUMMARY_FILE, RunDirError, load_run
from reports.rundir import Run as Run  # re-exported for callers of read_run

#: The key of one aggregated cell across several runs.
GROUP_KEYS = ("run", "workload", "device", "batch_size", "width", "loop")

#: Summary columns that must hold numbers (or be empty) in a readable run.
NUMERIC_SUMMARY_COLUMNS = tuple(
    c for c in SUMMARY_COLUMNS if c not in ("workload", "loop", "device", "status", "noisy")
)

#: Optional summary columns that are numbers when present.
OPTIONAL_NUMERIC_COLUMNS = (
    "width",
    "model_flops_per_step",
    "step_time_cv",
    "first_step_s",
    "build_s",
    "fit_setup_s",
    "profile_op_time_s",
    "profile_input_wait_s",
    "profile_overhead_fraction",
)

#: Metadata keys, in the order they are tried, that may tell runs apart in a
#: label. Each entry: (section, key, how to show a value).
LABEL_KEYS: tuple[tuple[str, str, str], ...] = (
    ("config", "devices", "{value}"),
    ("hard", "gpus", "gpus {value}"),
    ("soft", "tensorflow", "tensorflow {value}"),
    ("soft", "keras", "keras {value}"),
    ("soft", "hostname", "{value}"),
    ("hard", "cpu_model", "{value}"),
    ("hard", "visible_cores", "{value} cores"),
    ("hard", "cgroup_cpu_quota", "cpu quota {value}"),
    ("hard", "intra_op_threads", "intra-op {value}"),
    ("hard", "inter_op_threads", "inter-op {value}"),
    ("hard", "python", "python {value}"),
    ("soft", "numpy", "numpy {value}"),
    ("soft", "git_commit", "commit {value}"),
    ("soft", "git_dirty", "dirty={value}"),
    ("config", "quick", "quick={value}"),
    ("config", "profile", "profile={value}"),
)


@dataclass(frozen=True)
class RunSet:
    """Several runs loaded side by side.

    ``cells`` has one row per (run, cell) with the summary.csv columns plus
    ``run`` (label), ``run_id``, ``run_path`` and ``peak_matmul_flops`` (the
    run's measured peak for that row's device, NaN when not measured).
    ``processes`` has one row per ok worker process.
    """

    runs: tuple[Run, ...]
    labels: tuple[str, ...]
    title: str
    differing_hard_keys: tuple[str, ...]
    cells: pd.DataFrame
    processes: pd.DataFrame


# --------------------------------------------------------------------------- reading


def read_run(path: str | os.PathLike[str]) -> Run:
    """Load one run directory and check it can be reported on.

    Beyond ``reports.rundir.load_run`` it rejects a summary.csv cut off in the
    middle (no final newline), one without rows, and one whose number columns
    hold text. Raises RunDirError with a one-line reason.
    """
    run = load_run(path)
    summary_path = Path(path) / SUMMARY_FILE
    raw = summary_path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise RunDirError(f"{summary_path}: cut off in the middle (no final newline)")
    summary = run.summary.copy()
    if summary.empty:
        raise RunDirError(f"{summary_path}: no cells (the run wrote a header only)")
    for column in NUMERIC_SUMMARY_COLUMNS + OPTIONAL_NUMERIC_COLUMNS:
        if column not in summary.columns:
            continue
        values = pd.to_numeric(summary[column], errors="coerce")
        unparsable = values.isna() & summary[column].notna()
        if unparsable.any():
            bad = summary.loc[unparsable, column].iloc[0]
            raise RunDirError(
                f"{summary_path}: corrupted summary (column {column} holds {bad!r}, not a number)"
            )
        summary[column] = values
    if "width" not in summary.columns:
        summary["width"] = 0
    summary["width"] = summary["width"].fillna(0).astype(int)
    summary["batch_size"] = summary["batch_size"].astype(int)
    summary["noisy"] = summary["noisy"].map(_as_bool)
    samples = run.samples.copy()
    if not samples.empty:
        if "width" not in samples.columns:
            samples["width"] = 0
        samples["width"] = pd.to_numeric(samples["width"], errors="coerce").fillna(0).astype(int)
    return Run(path=run.path, metadata=run.metadata, summary=summary, samples=samples)


def read_runs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Run], list[str]]:
    """Load every readable run; return (runs, one-line error per unreadable one)."""
    runs: list[Run] = []
    errors: list[str] = []
    for path in paths:
        try:
            runs.append(read_run(path))
        except RunDirError as exc:
            errors.append(str(exc))
    return runs, errors


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return bool(value)


# --------------------------------------------------------------------------- labels


def _metadata_value(run: Run, section: str, key: str) -> Any:
    value = run.metadata.get(section, {}).get(key)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) and key == "git_commit":
        return value[:10]
    return value


def run_labels(runs: Sequence[Run]) -> tuple[list[str], str]:
    """Name each run by what differs in its metadata; return (labels, title).

    Labels use the first (at most two) metadata keys of LABEL_KEYS whose values
    differ between the runs, e.g. ``["cpu", "gpu"]`` and the title
    ``"cpu vs gpu"``. Runs that differ in none of them are named by run id.
    One run is labelled by its run id and titled by it.

    >>> # run_labels([cpu_run, gpu_run]) -> (["cpu", "gpu"], "cpu vs gpu")
    """
    ids = [run.run_id for run in runs]
    if len(runs) <= 1:
        return ids, ids[0] if ids else ""
    parts: list[list[str]] = [[] for _ in runs]
    used = 0
    for section, key, template in LABEL_KEYS:
        values = [_metadata_value(run, section, key) for run in runs]
        if len({repr(v) for v in values}) <= 1:
            continue
        for part, value in zip(parts, values, strict=True):
            part.append(template.format(value=value if value is not None else "?"))
        used += 1
        if used == 2:
            break
    labels = [", ".join(part) if part else run_id for part, run_id in zip(parts, ids, strict=True)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({run_id})" for label, run_id in zip(labels, ids, strict=True)]
    if len(set(labels)) < len(labels):  # the same run given twice
        labels = [f"{label} #{number}" for number, label in enumerate(labels, start=1)]
    return labels, " vs ".join(labels)


def differing_hard_keys(runs: Sequence[Run]) -> list[str]:
    """Machine keys whose values differ between runs (their times do not compare)."""
    keys = sorted({key for run in runs for key in run.metadata.get("hard", {})})
    return [
        key
        for key in keys
        if len({repr(run.metadata.get("hard", {}).get(key)) for run in runs}) > 1
    ]


# --------------------------------------------------------------------------- tables


def _peak_flops(run: Run, device: str) -> float:
    peaks = run.metadata.get("soft", {}).get("peak_matmul_flops") or {}
    value = peaks.get(device) if isinstance(peaks, dict) else None
    return float(value) if isinstance(value, int | float) and value > 0 else float("nan")


def cell_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per (run, cell): summary.csv plus run label, id, path and peak FLOP/s."""
    frames = []
    for run, label in zip(runs, labels, strict=True):
        frame = run.summary.copy()
        frame.insert(0, "run", label)
        frame["run_id"] = run.run_id
        frame["run_path"] = str(run.path)
        frame["peak_matmul_flops"] = [_peak_flops(run, device) for device in frame["device"]]
        frames.append(frame)
    cells = pd.concat(frames, ignore_index=True)
    return cells.sort_values(list(GROUP_KEYS), kind="stable").reset_index(drop=True)


def process_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per ok worker process (one statistical sample each), with a run label."""
    frames = []
    for run, label in zip(runs, labels, strict=True):
        rows = run.process_samples()
        if rows.empty:
            continue
        rows = rows.copy()
        rows.insert(0, "run", label)
        frames.append(rows)
    columns = [*GROUP_KEYS, "process", "step_time_s", "compile_s"]
    if not frames:
        return pd.DataFrame(columns=columns)
    processes = pd.concat(frames, ignore_index=True)
    for column in ("step_time_s", "compile_s"):
        if column not in processes.columns:
            processes[column] = np.nan
        processes[column] = pd.to_numeric(processes[column], errors="coerce")
    processes["batch_size"] = processes["batch_size"].astype(int)
    return processes


def load_run_set(paths: Iterable[str | os.PathLike[str]]) -> RunSet:
    """Load runs side by side; raise RunDirError if any cannot be read.

    Example::

        run_set = load_run_set(["results/a", "results/b"])
        run_set.title            # e.g. "cpu vs gpu"
        run_set.cells.groupby("run").step_time_median_s.median()
    """
    runs, errors = read_runs(paths)
    if errors:
        raise RunDirError(errors[0])
    return run_set_from_runs(runs)


def run_set_from_runs(runs: Sequence[Run]) -> RunSet:
    """Build a RunSet from runs already read (see read_runs)."""
    if not runs:
        raise RunDirError("no readable run directory given")
    labels, title = run_labels(runs)
    return RunSet(
        runs=tuple(runs),
        labels=tuple(labels),
        title=title,
        differing_hard_keys=tuple(differing_hard_keys(runs)),
        cells=cell_table(runs, labels),
        processes=process_table(runs, labels),
    )


def load_runs(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Load one or more run directories into one tidy DataFrame.

    One row per (run, cell) with summary.csv's columns, ``run`` (a label
    naming what differs between the runs; the run id for a single run),
    ``run_id``, ``run_path`` and ``peak_matmul_flops``. Raises
    ``reports.rundir.RunDirError`` (a one-line message) for an unreadable run.

    Example::

        cells = load_runs(["results/20261121-cpu", "results/20261121-gpu"])
        cells.pivot_table(index=["workload", "loop"], columns="run",
                          values="step_time_median_s")
    """
    return load_run_set(paths).cells


def aggregate_processes(processes: pd.DataFrame) -> pd.DataFrame:
    """Per (run, workload, device, batch_size, width, loop): the process statistics.

    Columns: ``n_ok_processes``, ``process_step_time_median_s``,
    ``process_step_time_q1_s``, ``process_step_time_q3_s``,
    ``process_step_time_cv`` (sample std / mean; NaN below two processes) and
    ``process_compile_median_s``.
    """
    if processes.empty:
        return pd.DataFrame(
            columns=[
                *GROUP_KEYS,
                "n_ok_processes",
                "process_step_time_median_s",
                "process_step_time_q1_s",
                "process_step_time_q3_s",
                "process_step_time_cv",
                "process_compile_median_s",
            ]
        )
    grouped = processes.groupby(list(GROUP_KEYS), sort=True)
    step = grouped["step_time_s"]
    table = pd.DataFrame(
        {
            "n_ok_processes": step.count(),
            "process_step_time_median_s": step.median(),
            "process_step_time_q1_s": step.quantile(0.25),
            "process_step_time_q3_s": step.quantile(0.75),
            "process_step_time_cv": step.std(ddof=1) / step.mean(),
            "process_compile_median_s": grouped["compile_s"].median(),
        }
    )
    return table.reset_index()


__all__ = [
    "CELL_KEYS",
    "GROUP_KEYS",
    "RunSet",
    "aggregate_processes",
    "cell_table",
    "differing_hard_keys",
    "load_run_set",
    "load_runs",
    "process_table",
    "read_run",
    "read_runs",
    "run_labels",
    "run_set_from_runs",
]
