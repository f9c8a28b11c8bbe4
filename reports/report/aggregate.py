"""The runs of one report side by side (``RunSet``): one row per (run, cell) and one per ok
worker process, labelled by what differs in the runs' metadata ("cpu vs gpu"). Files are
read through ``reports.rundir`` only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import CELL_KEYS, GROUP_KEYS, LOOP_KEYS, PREFERRED_VARIANT
from tf_loopbench.reports.rundir import Ladder, Run, RunDirError, epoch_end_spans

#: The key within which one loop's cells differ (its compiler): folded into the loop's
#: label when a setting holds several.
(_VARIANT_KEY,) = (key for key in LOOP_KEYS if key != "loop")


def label_variants(frame: pd.DataFrame) -> None:
    """In place: where a setting holds several cells of one loop (with and without XLA),
    label all but the one Keras chose "<loop> (jit <value>)"."""
    if _VARIANT_KEY not in frame.columns or frame.empty:
        return
    setting = [k for k in GROUP_KEYS if k in frame.columns]
    variants = frame.groupby(setting, dropna=False)[_VARIANT_KEY].transform("nunique")
    chosen = frame[_VARIANT_KEY].astype(str).str.startswith(PREFERRED_VARIANT[_VARIANT_KEY])
    relabel = (variants > 1) & ~chosen
    frame.loc[relabel, "loop"] += " (jit " + frame.loc[relabel, _VARIANT_KEY].astype(str) + ")"


#: The figures the time to train adds up (``derived.time_to_train``): summary.csv's, else
#: the median of the cell's processes (older runs).
TIME_TO_TRAIN_FIGURES = ("build_s", "fit_setup_s", "first_step_s", "epoch_end_s", "steps_per_epoch")
#: Per-process figures the report reads, as numbers (NaN where not recorded).
PROCESS_FIGURES = ("step_time_s", "amortized_step_time_s", "compile_s", *TIME_TO_TRAIN_FIGURES)

#: Metadata (section, key, how to show a value), in the order tried, that may tell runs
#: apart in a label.
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
    """Several runs side by side: ``cells`` (:func:`cell_table`), ``processes``
    (:func:`process_table`)."""

    runs: tuple[Run, ...]
    labels: tuple[str, ...]
    title: str
    differing_hard_keys: tuple[str, ...]
    cells: pd.DataFrame
    processes: pd.DataFrame
    #: the loop ladder the runs declare (None: none does, so no loop comparisons)
    ladder: Ladder | None = None
    #: one line when the ladder is missing or the runs disagree on it
    ladder_note: str | None = None

    @classmethod
    def of(cls, runs: Sequence[Run]) -> RunSet:
        """The runs side by side.

        Example::

            run_set = RunSet.of(load_runs(["results/a", "results/b"]))
            run_set.title            # e.g. "cpu vs gpu"
        """
        if not runs:
            raise RunDirError("no readable run directory given")
        labels, title = run_labels(runs)
        ladder, note = shared_ladder(runs)
        return cls(
            runs=tuple(runs),
            labels=tuple(labels),
            title=title,
            differing_hard_keys=tuple(differing_hard_keys(runs)),
            cells=cell_table(runs, labels),
            processes=process_table(runs, labels),
            ladder=ladder,
            ladder_note=note,
        )


def _metadata_value(run: Run, section: str, key: str) -> Any:
    value = run.metadata.get(section, {}).get(key)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) and key == "git_commit":
        return value[:10]
    return value


def run_labels(runs: Sequence[Run]) -> tuple[list[str], str]:
    """(labels, title): each run named by the first (at most two) LABEL_KEYS whose values
    differ between the runs (``["cpu", "gpu"]``, "cpu vs gpu"), else by its run id."""
    ids = [run.run_id for run in runs]
    if len(runs) <= 1:
        return ids, ids[0] if ids else ""
    differing = []
    for section, key, template in LABEL_KEYS:
        values = [_metadata_value(run, section, key) for run in runs]
        if len({repr(v) for v in values}) > 1:
            differing.append([template.format(value="?" if v is None else v) for v in values])
    labels = [
        ", ".join(parts) or run_id for *parts, run_id in zip(*differing[:2], ids, strict=True)
    ]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({run_id})" for label, run_id in zip(labels, ids, strict=True)]
    if len(set(labels)) < len(labels):  # the same run given twice
        labels = [f"{label} #{number}" for number, label in enumerate(labels, start=1)]
    return labels, " vs ".join(labels)


def shared_ladder(runs: Sequence[Run]) -> tuple[Ladder | None, str | None]:
    """The first declared ladder (runs made before ladders were recorded are read along
    it) and, when it is not simply every run's, why."""
    declared = [(run, run.ladder) for run in runs if run.ladder is not None]
    if not declared:
        which = "This run declares no" if len(runs) == 1 else "None of these runs declares a"
        return None, (
            f"{which} loop ladder in its metadata.json (made before tf-loopbench recorded "
            "it): speedups, break-even and crossovers, which compare loops along it, are "
            "left out."
        )
    first_run, ladder = declared[0]
    if any(other != ladder for _, other in declared[1:]):
        return ladder, (
            f"The runs declare different loop ladders; this report follows {first_run.run_id}'s."
        )
    if len(declared) < len(runs):
        bare = ", ".join(run.run_id for run in runs if run.ladder is None)
        return ladder, (
            f"{bare} declares no loop ladder (made before tf-loopbench recorded it); "
            f"this report reads it along {first_run.run_id}'s."
        )
    return ladder, None


def differing_hard_keys(runs: Sequence[Run]) -> list[str]:
    """Machine keys whose values differ between runs (their times do not compare)."""
    hard = [run.metadata.get("hard", {}) for run in runs]
    keys = sorted({key for machine in hard for key in machine})
    return [key for key in keys if len({repr(machine.get(key)) for machine in hard}) > 1]


def strategy_replicas(strategy: str) -> int:
    """Replicas of a strategy key: N of ``mirrored:N``, W of ``multiworker:W``, 1 else.

    >>> strategy_replicas("mirrored:2"), strategy_replicas("multiworker:3"), strategy_replicas("none")
    (2, 3, 1)
    """
    _, _, count = str(strategy).partition(":")
    return int(count) if count.isdigit() else 1


def compute_dtype(precision: str) -> str:
    """The dtype a Keras precision policy computes in: ``mixed_bfloat16`` -> ``bfloat16``
    (Keras names its mixed policies so; variables stay float32)."""
    return str(precision).removeprefix("mixed_")


def _soft_dict(run: Run, key: str, device: str) -> dict:
    by_device = run.metadata.get("soft", {}).get(key)
    found = by_device.get(device) if isinstance(by_device, dict) else None
    return found if isinstance(found, dict) else {}


def matmul_peak(run: Run, device: str, precision: str) -> tuple[float, str | None]:
    """(the run's measured matmul peak of one ``device`` in ``precision``'s compute
    dtype, None) or (NaN, why there is none): a run's probe measures float32 and the
    dtypes its cells compute in (benchmarks/metadata.py); a dtype is never held
    against another's peak."""
    dtype = compute_dtype(precision)
    value = _soft_dict(run, "peak_matmul_flops_by_dtype", device).get(dtype)
    if value is None and dtype == "float32":  # runs from before the per-dtype probe
        peaks = run.metadata.get("soft", {}).get("peak_matmul_flops")
        value = peaks.get(device) if isinstance(peaks, dict) else None
    if isinstance(value, int | float) and value > 0:
        return float(value), None
    error = _soft_dict(run, "peak_matmul_errors", device).get(dtype)
    if error:
        return float("nan"), f"{dtype} matmuls did not run on {device} ({error})"
    return float("nan"), f"no {dtype} matmul peak was measured on {device}"


#: Where a cell's replicas ran (loops/distribute.py ``replica_devices``, in every
#: process row): their count, the physical devices under them, how several share one.
REPLICA_FACTS = ("replicas", "replica_physical_devices", "replicas_share", "replica_shared_cores")


def replica_facts(run: Run) -> pd.DataFrame:
    """Per cell of ``run`` (its summary's rows, in order): REPLICA_FACTS as its first ok
    process recorded them. A run made before they were recorded gets what the harness
    sets up for each key: N logical devices of the one CPU for ``mirrored:N`` on CPU,
    W processes on this machine's CPU for ``multiworker:W`` on CPU (both sharing the
    run's visible cores), a GPU per replica on GPU."""
    summary = run.summary
    keys = [key for key in CELL_KEYS if key in summary.columns]
    processes = run.process_samples()
    recorded = [c for c in REPLICA_FACTS if c in processes.columns]
    facts = summary[keys].copy()
    if recorded and set(keys) <= set(processes.columns):
        first = processes.drop_duplicates(keys)[[*keys, *recorded]]
        facts = facts.merge(first, on=keys, how="left")
    replicas = facts["strategy"].map(strategy_replicas)
    kind = facts["strategy"].astype(str).str.partition(":")[0]
    cpu = facts["device"] == "cpu"
    share = pd.Series(None, index=facts.index, dtype=object)
    share[cpu & (kind == "mirrored") & (replicas > 1)] = "logical devices"
    share[cpu & (kind == "multiworker")] = "worker processes"
    cores = run.metadata.get("hard", {}).get("visible_cores")
    rule = {
        "replicas": replicas,
        "replica_physical_devices": replicas.where(~cpu, 1),
        "replicas_share": share,
        "replica_shared_cores": pd.Series(cores, index=facts.index).where(share.notna()),
    }
    for column in REPLICA_FACTS:
        if column not in facts.columns:
            facts[column] = rule[column]
        elif column != "replicas_share":  # a None share is what was recorded
            facts[column] = pd.to_numeric(facts[column], errors="coerce").fillna(rule[column])
    return facts[list(REPLICA_FACTS)]


def stacked(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """The runs' tables (empty ones left out) in one, each row's run label first, as ``run``
    (a loop's compiler variants named: :func:`label_variants`)."""
    frames = [t.assign(run=label) for t, label in zip(tables, labels, strict=True) if not t.empty]
    if not frames:
        return pd.DataFrame(columns=["run"])
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "run", frame.pop("run"))
    label_variants(frame)
    return frame


def _with_peaks(run: Run) -> pd.DataFrame:
    summary = run.summary.reset_index(drop=True)
    precisions = summary.get("precision", pd.Series("float32", index=summary.index))
    peaks = [matmul_peak(run, d, p) for d, p in zip(summary["device"], precisions, strict=True)]
    return pd.concat([summary, replica_facts(run)], axis=1).assign(
        run_id=run.run_id,
        run_path=str(run.path),
        peak_dtype=precisions.map(compute_dtype),
        peak_matmul_flops=[value for value, _ in peaks],
        peak_note=[note for _, note in peaks],
    )


def cell_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per (run, cell): summary.csv plus run label, id, path, where its replicas
    ran (:func:`replica_facts`) and the run's probe peak FLOP/s of one device of the
    cell's in its compute dtype (:func:`matmul_peak`; NaN and ``peak_note`` if none)."""
    tables = [_with_peaks(run) for run in runs]
    cells = stacked(tables, labels)
    # a run made before per-epoch costs were recorded pays its steady step
    cells["amortized_recorded"] = cells["amortized_step_time_s"].notna()
    steady = cells["step_time_median_s"]
    cells["amortized_step_time_s"] = cells["amortized_step_time_s"].fillna(steady)
    return cells.sort_values(list(GROUP_KEYS), kind="stable").reset_index(drop=True)


def amortized_per_process(processes: pd.DataFrame) -> pd.Series:
    """Each process's steady step plus the median of its cell's epoch-end spans (clipped at
    0) over an epoch's steps; without epoch ends, the steady step. (The cell's interval
    resamples the spans themselves: ``reports.compare.Amortized``.)"""
    keys = [k for k in GROUP_KEYS if k in processes.columns]
    pooled = processes.groupby(keys, dropna=False)["epoch_end_spans_s"].transform(_pooled_median)
    epoch_end = pd.to_numeric(pooled, errors="coerce")
    steps = processes.groupby(keys, dropna=False)["steps_per_epoch"].transform("max")
    share = (epoch_end.clip(lower=0) / steps).where(epoch_end.notna() & (steps > 0), 0.0)
    return processes["step_time_s"] + share.fillna(0.0)


def _pooled_median(lists: pd.Series) -> float:
    values = [value for spans in lists for value in spans]
    return float(np.median(values)) if values else np.nan


def add_epoch_spans(processes: pd.DataFrame) -> None:
    """In place: ``epoch_end_spans_s`` as a list per process and ``epoch_end_basis``
    (``reports.rundir.epoch_end_spans``: a run made before later epoch ends were timed
    gives each process's first-epoch-end median, and says so)."""
    found = [epoch_end_spans(row) for row in processes.to_dict("records")]
    processes["epoch_end_spans_s"] = pd.Series(
        [spans for spans, _ in found], dtype=object, index=processes.index
    )
    processes["epoch_end_basis"] = pd.Series(
        [basis for _, basis in found], dtype=object, index=processes.index
    )


def process_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per ok worker process (one statistical sample each), with a run label."""
    processes = stacked([run.process_samples() for run in runs], labels)
    if processes.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "process", *PROCESS_FIGURES])
    for column in PROCESS_FIGURES:
        processes[column] = pd.to_numeric(processes.get(column, np.nan), errors="coerce")
    add_epoch_spans(processes)
    processes["amortized_step_time_s"] = amortized_per_process(processes)
    processes["batch_size"] = processes["batch_size"].astype(int)
    return processes


def aggregate_processes(processes: pd.DataFrame) -> pd.DataFrame:
    """Per report cell (GROUP_KEYS): n_ok_processes and the processes' step-time median,
    quartiles, coefficient of variation (NaN below two) and median compile time."""
    numbers = processes.astype({"step_time_s": float, "compile_s": float})
    grouped = numbers.groupby(list(GROUP_KEYS), sort=True)
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
