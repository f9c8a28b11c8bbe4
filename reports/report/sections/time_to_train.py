"""Time to train the report's epochs from a cold start, per ok cell, and its total
against the reference's (the core's rows on the total)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import GROUP_KEYS, Figure, against, compare
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Heading,
    Paragraph,
    Table,
    epochs_text,
    format_ratio,
    format_seconds,
    keras_choice,
    setting_table,
)
from tf_loopbench.reports.report.derived import Derived

#: The time to train as a figure of the core (per cell; no per-process samples).
TOTAL = Figure("time to train", "time_to_train_s", "time_to_train_s")


def time_to_train_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    reference = derived.ladder.reference if derived.ladder is not None else None
    ok = derived.cells[derived.cells["status"] == "ok"]
    ratios = {}
    if reference is not None:
        rule = against(reference, itself=True)
        ratios = compare(ok, "loop", rule, figure=TOTAL, keys=GROUP_KEYS)["ratio"].to_dict()
    keys = list(GROUP_KEYS)
    trained = ok[keys].reset_index().merge(derived.time_to_train, on=keys).set_index("index")
    rows = []
    for label, parts in zip(trained.index, trained.to_dict("records"), strict=True):
        row = ok.loc[label].to_dict()
        known = np.isfinite(float(parts["time_to_train_s"]))
        columns = {
            "loop": row["loop"],
            "set-up": format_seconds(parts["setup_s"]),
            "first step (trace, compile)": format_seconds(parts["first_step_s"]),
            "steps": f"{parts['steps']:,.0f}" if known else "—",
            "the other steps, epoch ends included": (
                format_seconds(parts["steps_s"]) if known else "—"
            ),
            "total": format_seconds(parts["time_to_train_s"]) if known else "—",
        }
        if reference is not None:
            ratio = ratios.get(label, np.nan)
            columns[f"x {reference}"] = format_ratio(ratio) if np.isfinite(ratio) else ""
        rows.append((row, {**columns, "Keras chose": keras_choice(row) or ""}))
    return setting_table(derived.cells, rows, several_runs)


def blocks(context: Context) -> list[Block]:
    trained = time_to_train_table(context.derived, context.several_runs)
    if trained.empty:
        return []
    epochs = epochs_text(context.derived.epochs)
    out: list[Block] = [
        Heading(2, f"Time to train {epochs}"),
        Paragraph(
            f"From a cold start: set-up (build, and the loop's own set-up call where it "
            f"has one) + the first step (trace, compile) + the other steps of {epochs} with "
            "their per-epoch costs; medians of the run, no interval."
        ),
        Table(trained),
    ]
    if (trained["total"] == "—").any():
        why = "steps per epoch or a phase time; runs made before tf-loopbench recorded them"
        out.append(Paragraph(f"—: a figure the total needs was not recorded ({why})."))
    return out
