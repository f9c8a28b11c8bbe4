"""Progress for long runs (cells done of total, current cell, time left) and the
summary table printed at the end, both with rich.

On a terminal a live progress bar goes to stderr; elsewhere (CI logs) one line
per worker process.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from tf_loopbench.benchmarks.config import Job


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self._bar = (
            RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left ~{task.fields[eta]}"),
                console=self.console,
                transient=True,
            )
            if self.live
            else None
        )
        self._task = None

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=self.total, eta="?")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def on_job(self, job: Job, index: int, total: int, eta_s: float) -> None:
        eta = "?" if math.isnan(eta_s) else f"{eta_s:.0f}s"
        text = f"{job.cell.label} #{job.process + 1}"
        if self._bar is not None:
            self._bar.update(self._task, description=text, completed=index, eta=eta)
        else:
            print(f"[{index + 1}/{total}] {text} (time left ~{eta})", file=sys.stderr, flush=True)

    def on_result(self, job: Job, result: dict[str, Any]) -> None:
        row = result["process"]
        message = None
        if row.get("status") != "ok":
            message = (
                f"  {job.cell.label} #{job.process + 1}: {row.get('status')}: {row.get('error')}"
            )
        elif row.get("retraces"):
            message = (
                f"  warning: {job.cell.label} #{job.process + 1}: unexpected retrace "
                f"(trace counts {row.get('trace_counts')})"
            )
        if message:
            if self._bar is not None:
                self._bar.console.print(message, markup=False, highlight=False)
            else:
                print(message, file=sys.stderr, flush=True)
        if self._bar is not None:
            self._bar.advance(self._task)


#: the terminal the table must fit without wrapping (a side-by-side window's width;
#: the --wide table takes what it needs)
TABLE_WIDTH = 120
#: characters of a failed or skipped cell's note ("skipped: no GPU"); a longer reason
#: is numbered in the note and printed under the table
NOTE_CHARS = 20
WIDE_NOTE_CHARS = 60


@dataclass(frozen=True)
class Axis:
    """A key of a cell beside workload and loop, shown as a column when the run varies
    it or holds a value other than its defaults (``usual``)."""

    header: str
    column: str  # summary.csv's
    usual: tuple[str, ...] = ()  # values that need no column: the default, not applicable
    blank: tuple[str, ...] = ()  # values shown as blank (the key does not apply)
    per_workload: bool = False  # each workload has its own default: varies within one
    numeric: bool = False  # right-justified

    def values(self, summary: pd.DataFrame) -> list[str]:
        if self.column not in summary:
            return [""] * len(summary)
        texts = [_text(value) for value in summary[self.column]]
        return ["" if text in self.blank else text for text in texts]

    def shown(self, summary: pd.DataFrame) -> bool:
        if self.column not in summary or summary[self.column].isna().all():
            return False
        if self.per_workload:
            return bool((summary.groupby("workload")[self.column].nunique() > 1).any())
        values = set(self.values(summary)) - {""}
        return len(values) > 1 or bool(values - set(self.usual))


#: in the order they join the default table while it fits TABLE_WIDTH
AXES = (
    Axis("device", "device", usual=("cpu",)),
    Axis("batch", "batch_size", per_workload=True, numeric=True),
    Axis("width", "width", per_workload=True, numeric=True),
    Axis("strategy", "strategy", usual=("none",)),
    Axis("K", "steps_per_call", usual=("1",), numeric=True),
    Axis("precision", "precision", usual=("float32",)),
    # fit's jit_compile: shown when asked for (off, on); auto:<Keras's choice> is the
    # default and "none" the other loops' (loops/knobs.py)
    Axis("fit jit", "fit_jit", usual=("auto:off", "auto:on"), blank=("none",)),
)


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ms(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{1000 * float(value):.3f}"


def _ratio(row: Any, column: str) -> str:
    value = row.get(column)
    return f"{float(value):.2f}" if row["status"] == "ok" and pd.notna(value) else ""


def _interval(row: Any) -> str:
    low, high = row.get("step_time_ci_low_s"), row.get("step_time_ci_high_s")
    if row["status"] != "ok":
        return ""
    return "-" if pd.isna(low) or pd.isna(high) else f"{_ms(low)}-{_ms(high)}"


def _equal_work(row: Any) -> str:
    loss = row.get("equal_work_loss")
    if row["status"] != "ok" or loss is None or pd.isna(loss):
        return ""
    verdict = {True: "yes", False: "NO"}.get(row.get("equivalent"), "?")
    return f"{float(loss):.5g} {verdict}"


def _keras_setting(row: Any) -> str:
    """What Keras chose where it ran the loop (jit_compile, steps_per_execution);
    blank for custom loops."""
    jit, spe = row.get("keras_jit_compile"), row.get("keras_steps_per_execution")
    if row["status"] != "ok" or jit is None or pd.isna(jit):
        return ""
    return f"jit {'on' if str(jit) in ('True', 'true', '1') else 'off'}, spe {int(spe)}"


def _notes(row: Any) -> str:
    """What to know beside an ok cell's numbers."""
    notes = []
    if bool(row.get("noisy")):
        notes.append("noisy")
    if (row.get("retraces") or 0) > 0:
        notes.append(f"retraced {int(row['retraces'])}x")
    return "; ".join(notes)


def _reason(row: Any) -> str:
    """Why a cell that is not ok has no numbers ("" when the run did not say)."""
    error = row.get("error")
    return "" if error is None or pd.isna(error) else str(error)


@dataclass
class SummaryTable:
    """The table, the keys the run varies that it leaves out (to fit), and the
    reasons of cells without numbers, which the note column numbers ``[n]``."""

    table: Table
    left_out: list[str]
    reasons: list[str]


def summary_table(
    summary: pd.DataFrame, reference: str | None = None, wide: bool = False
) -> SummaryTable:
    """The per-cell table at the end of ``loopbench run``.

    By default it answers first, in TABLE_WIDTH columns: workload, loop, the steady
    step and its interval (its coverage in a line below), x ``reference`` (amortized: with per-epoch costs),
    the equal-work loss and whether it matches, a note; and each key beside workload
    and loop (device, batch, K, precision, ...) that the run varies, while the table
    fits. A failed or skipped cell's note is its reason when short, else ``[n]``, the
    reason's number in ``reasons``. ``wide``: every column (status, the amortized
    step, x reference on the steady step, compile time, what Keras chose), every
    varied key, the reasons in the notes.

    Example::

        result = summary_table(pd.read_csv("results/RUN/summary.csv"), "fit")
        Console(width=TABLE_WIDTH).print(result.table)
    """
    n = _equal_work_steps(summary)
    equal_work = f"loss @{n}, equal" if n else "loss, equal"
    ref = reference or "reference"
    rows = [row for _, row in summary.iterrows()]
    reasons: list[str] = []

    def note(row: Any) -> str:
        if row["status"] == "ok":
            return _notes(row)
        reason = _reason(row)
        if wide:
            return reason[:WIDE_NOTE_CHARS]
        text = f"{row['status']}: {reason}" if reason else str(row["status"])
        if len(text) <= NOTE_CHARS:
            return text
        if reason not in reasons:
            reasons.append(reason)
        return f"{row['status']} [{reasons.index(reason) + 1}]"

    formats = {
        "workload": lambda row: str(row["workload"]),
        "loop": lambda row: str(row["loop"]),
        "status": lambda row: str(row["status"]),
        "step ms": lambda row: _ms(row.get("step_time_median_s")),
        "interval ms": _interval,
        "w/ epoch ms": lambda row: (
            _ms(row.get("amortized_step_time_s")) if row["status"] == "ok" else ""
        ),
        f"x {ref}": lambda row: _ratio(row, "speedup_vs_fit"),
        f"x {ref} steady": lambda row: _ratio(row, "steady_speedup_vs_fit"),
        "compile s": lambda row: (
            f"{row['compile_s']:.3f}"
            if row["status"] == "ok" and pd.notna(row.get("compile_s"))
            else ""
        ),
        equal_work: _equal_work,
        "keras chose": _keras_setting,
        "note": note,
    }
    if wide:
        headers = ["status", "step ms", "interval ms", "w/ epoch ms", f"x {ref}"]
        headers += [f"x {ref} steady", "compile s", equal_work, "keras chose", "note"]
    else:
        headers = ["step ms", "interval ms", f"x {ref}", equal_work, "note"]
    values = {
        header: [formats[header](row) for row in rows] for header in ["workload", "loop", *headers]
    }
    values.update({axis.header: axis.values(summary) for axis in AXES})
    shown = [axis.header for axis in AXES if axis.shown(summary)]
    keys = (
        ["device", "batch", *(h for h in shown if h not in ("device", "batch"))] if wide else shown
    )
    text_columns = ("workload", "loop", "status", "note", "keras chose")
    # numbers right-justified; names, notes and keys that are names left
    right = {axis.header for axis in AXES if axis.numeric} | (set(headers) - set(text_columns))

    def build(keys: list[str]) -> Table:
        table = Table(title="tf-loopbench: median step time per cell")
        columns = ["workload", "loop", *keys, *headers]
        for header in columns:
            text = header in text_columns
            # a name too long for any table folds in its cell; numbers never do
            table.add_column(
                header,
                justify="right" if header in right else "left",
                no_wrap=not text,
                overflow="fold" if text else "ellipsis",
            )
        for row in zip(*(values[header] for header in columns), strict=True):
            table.add_row(*row)
        return table

    table = build(keys)
    while not wide and keys and _width(table) > TABLE_WIDTH:
        keys = keys[:-1]  # the last to join leaves first
        table = build(keys)
    return SummaryTable(table, [key for key in shown if key not in keys], reasons)


def interval_coverage_line(summary: pd.DataFrame) -> str | None:
    """What the table's intervals are and their real coverage, e.g. "interval: the range
    of 5 processes, which covers the median with probability 93.8% (exact)"; None when
    no cell has one."""
    ok = summary[summary["status"].eq("ok")]
    none = pd.Series(dtype=float)  # (a run in which no cell ran has neither column)
    counts = pd.to_numeric(ok.get("n_processes", none), errors="coerce")
    coverages = pd.to_numeric(ok.get("ci_coverage", none), errors="coerce")
    found = sorted(
        {(int(n), float(c)) for n, c in zip(counts, coverages, strict=True) if n >= 2 and c > 0}
    )
    if not found:
        return None
    parts = [
        f"{'the range' if math.isclose(c, 1 - 2.0 ** (1 - n)) else 'order statistics'} of {n} processes"
        f" covers the median with probability {c:.1%}"
        for n, c in found
    ]
    return f"interval: {'; '.join(parts)} (exact, whatever the distribution)"


def _equal_work_steps(summary: pd.DataFrame) -> int | None:
    """The steps every cell trained before its equal-work loss (one per run)."""
    steps = summary.get("equal_work_steps", pd.Series(dtype=float)).dropna()
    return int(steps.iloc[0]) if len(steps) else None


def _shorten(line: str) -> str:
    """A line cut to TABLE_WIDTH (summary.csv and logs/ have the whole reason)."""
    return line if len(line) <= TABLE_WIDTH else line[: TABLE_WIDTH - 3] + "..."


def _width(table: Table) -> int:
    """The width the table takes when nothing wraps."""
    return Console(width=10_000).measure(table).maximum


def print_summary(
    summary: pd.DataFrame,
    reference: str | None = None,
    wide: bool = False,
    console: Console | None = None,
) -> None:
    """The per-cell table at the end of ``loopbench run`` (``summary_table``) and what
    its columns mean, on stdout (or ``console``): TABLE_WIDTH columns, or with ``wide``
    every column at the width they take.

    Example::

        print_summary(pd.read_csv("results/RUN/summary.csv"), "fit", wide=True)
    """
    result = summary_table(summary, reference, wide)
    if console is None:
        width = max(TABLE_WIDTH, _width(result.table)) if wide else TABLE_WIDTH
        console = Console(width=width)
    ref = reference or "reference"
    console.print(result.table)
    lines = [_shorten(f"[{n}] {reason}") for n, reason in enumerate(result.reasons, 1)]
    ok = summary["status"].eq("ok")
    if ok.any() and summary.get("ci_basis", pd.Series(dtype=object)).eq("none").any():
        lines.append(
            "-: no interval from one process; intervals and 'noisy' come from processes "
            "(run with --processes 2 or more)"
        )
    coverage = interval_coverage_line(summary)
    if coverage:
        lines.append(coverage)
    if wide:
        lines.append(
            "step ms: steady step; w/ epoch ms: plus per-epoch costs (e.g. Keras's epoch end) "
            f"over an epoch's steps; x {ref} uses it, x {ref} steady the steady step"
        )
    else:
        lines.append(
            f"step ms: the steady step and its interval; x {ref}: times faster than {ref} over "
            "whole epochs (per-epoch costs in)"
        )
        n = _equal_work_steps(summary) or "N"
        loops = []
        if "equivalence_reference" in summary:
            flagged = summary["equivalence_reference"].fillna(False).astype(bool)
            loops = list(summary.loc[flagged, "loop"].unique())
        matches = f"{loops[0]}'s" if len(loops) == 1 else "the reference style's"
        lines.append(
            f"loss @{n}, equal: each style's loss after the same first {n} steps, and whether "
            f"it matches {matches}"
        )
        left_out = result.left_out
        hidden = f"; this run also varies {', '.join(left_out)}" if left_out else ""
        lines.append(f"every column: summary.csv, or loopbench run --wide{hidden}")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
