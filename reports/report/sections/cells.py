"""All cells, folded: every figure of every cell, and why a cell did not run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Details,
    epochs_text,
    format_rate,
    format_seconds,
    int_or_blank,
    interval,
    keras_choice,
    optional_bool,
    setting_table,
    table,
)
from tf_loopbench.reports.report.derived import SPEEDUP_COLUMNS, Derived

EQUIVALENT = {True: "equivalent", False: "NOT equivalent", None: "not checked"}


def equal_work(row: dict) -> str:
    """ "0.0256 @6, equivalent": a cell's equal-work loss and its check; empty for runs
    made before it was recorded."""
    loss, steps = row.get("equal_work_loss"), row.get("equal_work_steps")
    if row["status"] != "ok" or not isinstance(loss, int | float) or not np.isfinite(loss):
        return ""
    at = f" @{steps:.0f}" if isinstance(steps, int | float) and np.isfinite(steps) else ""
    return f"{loss:.6g}{at}, {EQUIVALENT[optional_bool(row.get('equivalent'))]}"


def cells_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    ladder = derived.ladder
    rows = []
    for row in derived.cells.to_dict("records"):
        ok = row["status"] == "ok"
        ratio = {key: interval(*(row[c] for c in names)) for key, names in SPEEDUP_COLUMNS.items()}
        steady = (row[f"step_time_{s}"] for s in ("median_s", "ci_low_s", "ci_high_s"))
        columns = {
            "loop": row["loop"],
            "status": row["status"] + (" (noisy)" if ok and row["noisy"] else ""),
            "steady step [interval]": interval(*steady, format_seconds) if ok else "",
            "amortized step": format_seconds(row["amortized_step_time_s"]) if ok else "",
            "examples/s": f"{row['examples_per_s']:.4g}" if ok else "",
        }
        if ladder is not None:
            for figure in ("amortized", "steady"):
                columns[f"x {ladder.reference}, {figure} [interval]"] = (
                    ratio["reference", figure] if ok else ""
                )
            against = ratio["neighbour", "amortized"] if ok else ""
            columns["x neighbour, amortized [interval]"] = (
                f"{row['neighbour']}: {against}" if against else ""
            )
        mfu = row.get("mfu", math.nan)
        columns |= {
            "Keras chose": keras_choice(row) or "",
            "compile": format_seconds(row["compile_s"]) if ok else "",
            f"train {epochs_text(derived.epochs)}": (
                format_seconds(row.get("time_to_train_s", math.nan)) if ok else ""
            ),
            "equal work: loss @steps": equal_work(row),
            "FLOP/s": format_rate(row["achieved_flops_per_s"]) if ok else "",
            "MFU (per replica)": f"{mfu * 100:.1f}%" if ok and np.isfinite(mfu) else "",
            "processes": int_or_blank(row["n_processes"]),
            "error": str(row["error"]) if isinstance(row.get("error"), str) else "",
        }
        rows.append((row, columns))
    return setting_table(derived.cells, rows, several_runs)


def blocks(context: Context) -> list[Block]:
    frame = cells_table(context.derived, context.several_runs)
    return [Details("All cells", tuple(table(frame)))]
