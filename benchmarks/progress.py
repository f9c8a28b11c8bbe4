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

from benchmarks.config import Job


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left ~{task.fields[eta]}"),
            console=self.console,
            transient=True,
        ) if self.live else None
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
            message = f"  {job.cell.label} #{job.process + 1}: {row.get('status')}: {row.get('error')}"
        elif row.get("retraces"):
            message = (f"  warning: {job.cell.label} #{job.process + 1}: unexpected retrace "
                       f"(trace counts {row.get('trace_counts')})")
        if message:
            if self._bar is not None:
                self._bar.console.print(message, markup=False, highlight=False)
            else:
                print(message, file=sys.stderr, flush=True)
        if self._bar is not None:
            self._bar.advance(self._task)


def _ms(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{1000 * float(value):.3f}"


def print_summary(summary: pd.DataFrame) -> None:
    """The per-cell table (stdout)."""
    table = Table(title="tf-loopbench: median step time per cell", show_lines=False)
    for column in ("workload", "loop", "device", "batch", "status", "step ms", "95% CI ms",
                   "IQR ms", "examples/s", "compile s", "x fit", "final loss", "note"):
        table.add_column(column, justify="left" if column in ("workload", "loop", "device",
                                                                "status", "note") else "right")
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
            str(row["workload"]), str(row["loop"]), str(row["device"]), str(row["batch_size"]),
            str(row["status"]),
            _ms(row.get("step_time_median_s")),
            f"{_ms(row.get('step_time_ci_low_s'))}-{_ms(row.get('step_time_ci_high_s'))}" if ok else "",
            _ms(row.get("step_time_iqr_s")),
            f"{row['examples_per_s']:.0f}" if ok else "",
            f"{row['compile_s']:.3f}" if ok and pd.notna(row.get("compile_s")) else "",
            f"{row['speedup_vs_fit']:.2f}" if ok and pd.notna(row.get("speedup_vs_fit")) else "",
            f"{row['final_loss']:.4f}" if ok else "",
            "; ".join(notes),
        )
    Console(width=200).print(table)
