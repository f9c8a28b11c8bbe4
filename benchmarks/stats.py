"""Per-cell statistics from the raw samples: one summary.csv row per cell.

A statistical sample is one worker process (its windows summarised to their
median first). Per cell:

- ``step_time_median_s``: median of the per-process samples;
- ``step_time_ci_low_s``/``_high_s``: a distribution-free interval for that median
  from order statistics (ranks chosen with scipy's binomial distribution), the
  narrowest whose coverage reaches 95%, else (2 to 8 processes) the range of the
  processes; its exact coverage is in ``ci_coverage`` (93.75% for the range of 5).
  With one process there is none (``ci_basis = "none"``): its windows agree far
  better than processes do;
- ``amortized_step_time_s``: the median steady step plus the median of the cell's
  epoch-end spans (every epoch end after the first its processes timed) over an
  epoch's steps; ``amortized_step_time_ci_low_s``/``_high_s``: the core's percentile
  bootstrap with the steady steps and the spans resampled together
  (``reports.compare.amortized_interval``), its simulated coverage in
  ``amortized_ci_coverage``; the step-time interval for a loop without epochs;
- ``step_time_iqr_s``, ``step_time_cv``: spread of the samples (none below three);
- ``noisy``: IQR / median above ``NOISY_IQR_FRACTION`` (10%); None below three samples;
- ``speedup_vs_fit`` (amortized) and ``steady_speedup_vs_fit``: against the ladder's
  reference loop, given to :func:`summarize`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tf_loopbench.reports.compare import (
    AMORTIZED_COVERAGE,
    CELL_KEY_DEFAULTS,
    CELL_KEYS,
    SETTING_KEYS,
    Amortized,
    Figure,
    against,
    amortized_interval,
    compare,
    simulated_coverage,
)
from tf_loopbench.reports.rundir import (
    FIRST_EPOCH_ENDS,
    LATER_EPOCH_ENDS,
    SUMMARY_COLUMNS,
    CellKey,
    epoch_end_spans,
)

NOISY_IQR_FRACTION = 0.10
CONFIDENCE = 0.95


def median_ci(
    samples: Iterable[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(low, high, coverage): order-statistic interval for the median.

    The interval [x_(r), x_(n+1-r)] covers the population median with probability
    1 - 2 * P(Binomial(n, 1/2) <= r - 1), whatever the distribution (continuous, samples
    independent); r is the largest rank reaching ``confidence``. Below 6 samples none
    reaches 95%: the interval is then the range, [min, max], whose exact coverage is
    1 - 2^(1-n) (93.75% at 5, 87.5% at 4). NaNs with fewer than two samples.

    >>> low, high, coverage = median_ci(range(1, 11))
    >>> (low, high, round(coverage, 3))
    (2.0, 9.0, 0.979)
    >>> median_ci([3.0, 1.0, 2.0, 5.0, 4.0])
    (1.0, 5.0, 0.9375)
    """
    values = np.sort(np.asarray(list(samples), dtype=float))
    n = len(values)
    if n < 2:
        return (math.nan, math.nan, math.nan)
    best = (float(values[0]), float(values[-1]), range_coverage(n))
    for r in range(2, n // 2 + 1):
        coverage = 1.0 - 2.0 * stats.binom.cdf(r - 1, n, 0.5)
        if coverage < confidence:
            break
        best = (float(values[r - 1]), float(values[n - r]), float(coverage))
    return best


def range_coverage(n: int) -> float:
    """The exact coverage of [min, max] of ``n`` samples for their population's median.

    >>> range_coverage(5)
    0.9375
    """
    return 1.0 - 2.0 ** (1 - n)


def interval_basis(n: int) -> str:
    """summary.csv's ``ci_basis`` for ``n`` processes: "processes" (an order-statistic
    interval of their medians, exact coverage in ``ci_coverage``) or "none" (one process).
    Runs made before coverage was stated may hold "processes-bootstrap" (2 to 5 processes:
    a percentile bootstrap, which for the median of 3 or 5 is the range)."""
    return "processes" if n >= 2 else "none"


def amortized_coverage_of(n: int) -> float:
    """The simulated coverage of the amortized step's bootstrap interval at ``n`` processes
    (``reports.compare.AMORTIZED_COVERAGE``)."""
    return simulated_coverage(AMORTIZED_COVERAGE, n)


def spread(samples: Iterable[float]) -> tuple[float, float]:
    """(IQR, coefficient of variation)."""
    values = np.asarray(list(samples), dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    iqr = float(stats.iqr(values))
    cv = float(stats.variation(values, ddof=1))
    return iqr, cv


def amortized_samples(processes: list[Mapping[str, Any]]) -> tuple[Amortized, str | None]:
    """A cell's samples of the amortized step (``reports.compare.Amortized``): each
    process's steady step, every epoch-end span its processes timed (pooled: one span can
    be stretched by a busy machine, docs/methodology.md) and the steps an epoch; and the
    spans' basis (``reports.rundir.epoch_end_spans``: later epoch ends, or a process's
    first ones in a run made before those were recorded; None without epochs)."""
    spans, bases = [], set()
    for process in processes:
        found, basis = epoch_end_spans(process)
        spans += found
        bases.add(basis)
    steps = next((p.get("steps_per_epoch") for p in processes if p.get("steps_per_epoch")), None)
    steady = np.array([float(p["step_time_s"]) for p in processes])
    if not spans or not steps:
        return Amortized(steady, np.empty(0)), None
    basis = FIRST_EPOCH_ENDS if FIRST_EPOCH_ENDS in bases else LATER_EPOCH_ENDS
    return Amortized(steady, np.array(spans), float(steps)), basis


def summarize_cell(
    keys: Mapping[str, Any], processes: list[Mapping[str, Any]], windows: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """One summary row from a cell's process rows and window rows."""
    ok = [p for p in processes if p.get("status") == "ok"]
    row: dict[str, Any] = dict(keys)
    row["n_processes"] = len(ok)
    row["n_processes_failed"] = sum(p.get("status") == "failed" for p in processes)
    if not ok:
        statuses = {p.get("status") for p in processes}
        row["status"] = "skipped" if statuses == {"skipped"} else "failed"
        errors = [p.get("error") for p in processes if p.get("error")]
        row["error"] = errors[0] if errors else "no worker finished"
        return row
    row["status"] = "ok"
    row["error"] = next((p.get("error") for p in processes if p.get("status") == "failed"), None)
    samples = [float(p["step_time_s"]) for p in ok]
    median = float(np.median(samples))
    # one process: no interval; its windows agree far better than processes do, so an
    # interval from them would claim a precision the cell does not have
    low, high, coverage = median_ci(samples)
    basis = interval_basis(len(samples))
    iqr, cv = spread(samples) if len(samples) >= 3 else (math.nan, math.nan)
    amortized, epoch_end_basis = amortized_samples(ok)
    if amortized.epochs:  # the epoch-end spans resampled with the steady steps
        amortized_low, amortized_high = amortized_interval(amortized)
        amortized_coverage = amortized_coverage_of(len(samples))
    else:  # the steady step is the amortized one
        amortized_low, amortized_high, amortized_coverage = low, high, coverage
    first = ok[0]

    def med(name: str) -> float:
        values = [float(p[name]) for p in ok if p.get(name) is not None]
        return float(np.median(values)) if values else math.nan

    row.update(
        step_time_median_s=median,
        step_time_ci_low_s=low,
        step_time_ci_high_s=high,
        ci_coverage=coverage,
        ci_basis=basis,
        step_time_iqr_s=iqr,
        step_time_cv=cv,
        step_time_min_s=float(min(samples)),
        step_time_max_s=float(max(samples)),
        examples_per_s=int(keys["batch_size"]) / median,
        compile_s=med("compile_s"),
        first_step_s=med("first_step_s"),
        build_s=med("build_s"),
        fit_setup_s=med("fit_setup_s"),
        warmup_s=med("warmup_s"),
        epoch_end_s=float(np.median(amortized.spans)) if amortized.epochs else med("epoch_end_s"),
        steps_per_epoch=first.get("steps_per_epoch"),
        amortized_step_time_s=amortized.point,
        amortized_step_time_ci_low_s=amortized_low,
        amortized_step_time_ci_high_s=amortized_high,
        amortized_ci_coverage=amortized_coverage,
        epoch_end_basis=epoch_end_basis,
        n_epoch_end_spans=int(amortized.spans.size),
        first_epoch_end_s=med("first_epoch_end_s"),
        equal_work_steps=first.get("equal_work_steps"),
        equal_work_loss=med("equal_work_loss"),
        equivalence_rtol=first.get("equivalence_rtol"),
        equal_work_reference_loss=med("equal_work_reference_loss"),
        equivalence_reference=bool(first.get("equivalence_reference")),
        final_loss=med("final_loss"),
        retraces=int(max(int(p.get("retraces") or 0) for p in ok)),
        peak_rss_bytes=int(max(int(p.get("peak_rss_bytes") or 0) for p in ok)),
        peak_gpu_bytes=(
            int(max(int(p["peak_gpu_bytes"]) for p in ok if p.get("peak_gpu_bytes") is not None))
            if any(p.get("peak_gpu_bytes") is not None for p in ok)
            else None
        ),
        # from processes only (never flagged with fewer than 3: no spread to judge)
        noisy=bool(math.isfinite(iqr) and iqr / median > NOISY_IQR_FRACTION),
        n_windows=int(sum(int(p.get("n_windows") or 0) for p in ok)),
        # the same for every process with --steps; chosen per process when by duration
        steps_per_window=(
            round(med("steps_per_window")) if any(p.get("steps_per_window") for p in ok) else None
        ),
        model_flops_per_step=first.get("model_flops_per_step"),
        keras_jit_compile=first.get("keras_jit_compile"),
        keras_steps_per_execution=first.get("keras_steps_per_execution"),
        data_source=first.get("data_source"),
    )
    if any("precision_floor" in p for p in ok):  # runs from before it have none
        row["precision_floor"] = first.get("precision_floor")
    for name in (
        "profile_op_time_s",
        "profile_input_wait_s",
        "profile_overhead_fraction",
        "profile_step_time_s",
        "profile_cost_fraction",
    ):
        if any(name in p for p in ok):
            row[name] = med(name)
    row["profile_error"] = next((p["profile_error"] for p in ok if p.get("profile_error")), None)
    # mixed_float16: each optimizer's final dynamic loss scale (halved on every skipped step)
    for name in sorted({n for p in ok for n in p if n.startswith("loss_scale_")}):
        row[name] = med(name)
    val = first.get("val_metrics") or {}
    for name, _value in val.items():
        if name != "loss":
            row[f"val_{name}"] = float(np.median([float(p["val_metrics"][name]) for p in ok]))
    return row


def summarize(
    rows: Iterable[Mapping[str, Any]],
    cell_order: list[Mapping[str, Any]] | None = None,
    reference: str | None = None,
) -> pd.DataFrame:
    """summary.csv as a DataFrame from samples.jsonl rows (any order).

    ``reference`` is the ladder's reference loop (metadata.json's ``ladder``,
    ``reports.rundir.reference_loop``): ``speedup_vs_fit`` and ``steady_speedup_vs_fit``
    are against it (the column names are the contract), empty without one.
    """
    processes: dict[CellKey, list] = {}
    windows: dict[CellKey, list] = {}
    for row in rows:
        key = CellKey.of(row)  # a row from before a cell key holds its default
        (processes if row["kind"] == "process" else windows).setdefault(key, []).append(row)
    order = [_cell_in(c, processes) for c in cell_order] if cell_order else list(processes)
    summary_rows = [
        summarize_cell(dict(zip(CELL_KEYS, key, strict=True)), processes[key], windows.get(key, []))
        for key in order
        if key in processes
    ]
    frame = pd.DataFrame(summary_rows)
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = math.nan if column != "status" else "failed"
    for column in ("amortized_step_time_s", "equal_work_loss", "equivalence_rtol"):
        if column not in frame.columns:
            frame[column] = math.nan
    if "equivalence_reference" not in frame.columns:
        frame["equivalence_reference"] = False
    # what users pay over whole epochs (per-epoch costs included), and the steady step
    frame["speedup_vs_fit"] = speedup_vs_reference(frame, "amortized_step_time_s", reference)
    frame["steady_speedup_vs_fit"] = speedup_vs_reference(frame, "step_time_median_s", reference)
    frame["equivalent"] = equivalence(frame)
    return frame


def _cell_in(cell: Mapping[str, Any], processes: Mapping[CellKey, Any]) -> CellKey:
    """The key of ``cell`` (metadata.json's form) among the rows' keys. A run made before
    the fit_jit key lists its cells without it, while its fit rows read as Keras's
    choice (``reports.rundir.fill_cell_keys``): such a cell is the row key that
    differs from it in fit_jit only."""
    key = CellKey.of(cell)
    if key in processes or "fit_jit" in cell:
        return key
    return next((k for k in processes if k._replace(fit_jit=key.fit_jit) == key), key)


#: cells whose equal-work losses are compared, the reference one per group: every
#: steps per call of a setting trains the same equal-work steps, every strategy the
#: same math as one device (the reference runs without one)
EQUIVALENCE_GROUP = tuple(key for key in SETTING_KEYS if key not in ("steps_per_call", "strategy"))


def _columns(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    return [name for name in names if name in frame.columns]


def equivalence(frame: pd.DataFrame) -> pd.Series:
    """Per cell: does its loss after the equal-work steps match the equivalence
    reference loop's (same workload, device, batch size, width and precision; the
    reference runs one step a call, and every cell of a run trains the same
    equal-work steps whatever its steps per call) within this loop style's tolerance
    at that precision (loops/equivalence.py, the one tests/test_equivalence.py uses)?
    A mixed-precision cell whose process rows carry a ``precision_floor`` must also lie
    farther than that from the float32 reference's loss, and within its tolerance of
    it, when the run has that reference: nearer, it trained in float32 whatever its
    label says. None when the run has no such reference cell or the cell did not run."""
    result = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if frame.empty or "equal_work_loss" not in frame:
        return result
    group = _columns(frame, EQUIVALENCE_GROUP)
    ok = frame[frame["status"] == "ok"]
    references = ok[ok["equivalence_reference"].fillna(False).astype(bool)]
    reference_loss = {
        tuple(r[g] for g in group): r["equal_work_loss"] for _, r in references.iterrows()
    }
    for index, row in ok.iterrows():
        expected = reference_loss.get(tuple(row[g] for g in group))
        if expected is None:  # a run without the reference loop: its untimed loss
            expected = row.get("equal_work_reference_loss")
        loss, rtol = row["equal_work_loss"], row.get("equivalence_rtol")
        if expected is None or not all(map(_finite, (expected, loss, rtol))):
            continue
        # the losses of one loop style's processes differ by at most float rounding
        result[index] = bool(_relative(loss, expected) <= float(rtol))
        floor = row.get("precision_floor")
        float32 = reference_loss.get(
            tuple(CELL_KEY_DEFAULTS[g] if g == "precision" else row[g] for g in group)
        )
        if result[index] and _finite(floor) and float32 is not None and _finite(float32):
            result[index] = bool(float(floor) < _relative(loss, float32) <= float(rtol))
    return result


def _relative(value: Any, reference: Any) -> float:
    return abs(float(value) - float(reference)) / max(abs(float(reference)), 1e-12)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def speedup_vs_reference(frame: pd.DataFrame, column: str, reference: str | None) -> pd.Series:
    """Per cell, the ``reference`` loop's ``column`` over this cell's, within its setting
    (``reports.compare.SETTING_KEYS``): the comparison core's ratio, every ok cell against
    the reference's, the reference's own cells included (1 for the reference cell). With
    several reference cells in a setting (fit with ``--fit-jit auto,off,on``) the one
    Keras chose (``auto:...``) is the reference, else the first in the run. NaN for a cell
    that did not run or has no reference cell, and everywhere without a reference.

    Example::

        summary["speedup_vs_fit"] = speedup_vs_reference(summary, "amortized_step_time_s", "fit")
    """
    if frame.empty:
        return pd.Series(dtype=float)
    if reference is None:
        return pd.Series(math.nan, index=frame.index)
    ok = frame[frame["status"] == "ok"]
    # summary.csv has one figure per cell and no samples here: the summary ratio
    figure = Figure(column, cell_column=column, sample_column=column)
    rows = compare(ok, "loop", against(reference, itself=True), figure=figure, keys=CELL_KEYS)
    return rows["ratio"].reindex(frame.index).astype(float).rename(None)
