"""Compile break-even: each rung against the one it compares with (``Derived.break_even``),
and whether the time to train the report's epochs is lower with it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import GROUP_KEYS
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Heading,
    Paragraph,
    Table,
    count,
    epochs_text,
    format_seconds,
    setting_table,
)
from tf_loopbench.reports.report.derived import Derived


def break_even_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    trained = derived.cells.set_index(list(GROUP_KEYS))["time_to_train_s"]
    rows = []
    for row in derived.break_even.to_dict("records"):
        steps, in_epochs = row["break_even_steps"], row["break_even_epochs"]
        setting = tuple(row[k] for k in GROUP_KEYS if k != "loop")
        mine = trained.get((*setting, row["loop"]), math.nan)
        theirs = trained.get((*setting, row["reference"]), math.nan)
        paid_back = "paid back" if mine < theirs else "not paid back"
        paid_back = paid_back if np.isfinite(mine) and np.isfinite(theirs) else ""
        columns = {
            "loop": row["loop"],
            "against": row["reference"],
            "compile": format_seconds(row["compile_s"]),
            "against's compile": format_seconds(row["reference_compile_s"]),
            "saving per step (amortized)": format_seconds(row["saving_per_step_s"]),
            "break-even": count(steps, "step") if np.isfinite(steps) else row["outcome"],
            "in epochs": f"{in_epochs:.3g}" if np.isfinite(in_epochs) else "",
            f"at {epochs_text(derived.epochs)}": paid_back,
        }
        rows.append((row, columns))
    return setting_table(derived.cells, rows, several_runs)


def blocks(context: Context) -> list[Block]:
    derived = context.derived
    if derived.break_even.empty:
        return []
    return [
        Heading(2, "Compile break-even"),
        Paragraph(
            "Each rung against the one it compares with, on the amortized step; the last "
            f"column: whether the time to train {epochs_text(derived.epochs)} (below) is "
            "lower with the rung."
        ),
        Table(break_even_table(derived, context.several_runs)),
    ]
