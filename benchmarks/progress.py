"""Progress for long runs (cells done of total, current cell, time left) and the
summary table printed at the end, both with rich.

On a terminal a live progress bar goes to stderr; elsewhere (CI logs) one line
per worker process.
"""

from __future__ import annotations

import math
import sys
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


def _loop_setting(row: Any) -> str:
    """The loop and its knobs where not the default: "tf_function k8 mixed_bfloat16"."""
    parts = [str(row["loop"])]
    k, precision, jit = row.get("steps_per_call"), row.get("precision"), row.get("fit_jit")
    if k is not None and pd.notna(k) and int(k) != 1:
        parts.append(f"k{int(k)}")
    if isinstance(precision, str) and precision != "float32":
        parts.append(precision)
    if jit in ("off", "on"):
        parts.append(f"jit {jit}")
    if isinstance(row.get("strategy"), str) and row["strategy"] != "none":
        parts.append(row["strategy"])  # loops/distribute.py
    return " ".join(parts)


def _keras_setting(row: Any) -> str:
    """What Keras chose where it ran the loop (jit_compile, steps_per_execution);
    blank for custom loops."""
    jit, spe = row.get("keras_jit_compile"), row.get("keras_steps_per_execution")
    if row["status"] != "ok" or jit is None or pd.isna(jit):
        return ""
    return f"jit {'on' if str(jit) in ('True', 'true', '1') else 'off'}, spe {int(spe)}"


def print_summary(summary: pd.DataFrame, reference: str | None = None, wide: bool = False) -> None:
    """The per-cell table (stdout): steady and amortized step time, the ratio to the
    ladder's ``reference`` loop on each, the equal-work loss and whether it matches
    the equivalence reference's, and what Keras chose where it ran the loop."""
    table = Table(title="tf-loopbench: median step time per cell", show_lines=False)
    steps = summary.get("equal_work_steps", pd.Series(dtype=float)).dropna()
    equal_work = f"loss @{int(steps.iloc[0])} steps, equal" if len(steps) else "loss, equal"
    ref = reference or "reference"
    columns = (
        "workload",
        "loop",
        "device",
        "batch",
        "status",
        "step ms",
        "95% CI ms",
        "w/ epoch ms",
        f"x {ref}",
        f"x {ref} steady",
        "compile s",
        equal_work,
        "keras chose",
        "note",
    )
    for column in columns:
        left = column in ("workload", "loop", "device", "status", "note", "keras chose")
        table.add_column(column, justify="left" if left else "right")
    for _, row in summary.iterrows():
        ok = row["status"] == "ok"
        notes = []
        if ok and bool(row.get("noisy")):
            notes.append("noisy")
        if ok and (row.get("retraces") or 0) > 0:
            notes.append(f"retraced {int(row['retraces'])}x")
        if not ok:
            notes.append(str(row.get("error") or "")[:60])
        table.add_row(
            str(row["workload"]),
            _loop_setting(row),
            str(row["device"]),
            str(row["batch_size"]),
            str(row["status"]),
            _ms(row.get("step_time_median_s")),
            _interval(row),
            _ms(row.get("amortized_step_time_s")) if ok else "",
            _ratio(row, "speedup_vs_fit"),
            _ratio(row, "steady_speedup_vs_fit"),
            f"{row['compile_s']:.3f}" if ok and pd.notna(row.get("compile_s")) else "",
            _equal_work(row),
            _keras_setting(row),
            "; ".join(notes),
        )
    Console(width=220).print(table)
    if (summary["status"] == "ok").any() and summary.get("ci_basis", pd.Series()).eq("none").any():
        print(
            "-: no interval from one process; intervals and 'noisy' come from processes "
            "(run with --processes 2 or more)"
        )
    print(
        f"step ms: steady step; w/ epoch ms: plus per-epoch costs (e.g. Keras's epoch end) "
        f"over an epoch's steps; x {ref} uses it, x {ref} steady the steady step"
    )
