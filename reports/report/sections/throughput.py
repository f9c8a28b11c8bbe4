"""Throughput: the fastest loop of each setting (steady step), its FLOP/s and MFU against
the run's matmul probe; for information, no decision rests on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import RUN_SETTING_KEYS
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Heading,
    Paragraph,
    format_rate,
    interval,
    keras_choice,
    setting_table,
    table,
)
from tf_loopbench.reports.report.derived import Derived


def throughput_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    rows = []
    for _, group in cells.groupby(list(RUN_SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()].to_dict()
        flops, mfu = best["model_flops_per_step"], best["mfu"]
        columns = {
            "fastest loop (steady step)": best["loop"],
            "model FLOPs per step": f"{flops:.4g}",
            "achieved [95% CI]": interval(
                best["achieved_flops_per_s"],
                flops / best["step_time_ci_high_s"],
                flops / best["step_time_ci_low_s"],
                format_rate,
            ),
            "matmul probe peak": format_rate(best["peak_matmul_flops"]),
            "MFU (of the probe peak)": f"{mfu * 100:.1f}%" if np.isfinite(mfu) else "",
            "Keras chose": keras_choice(best) or "",
        }
        rows.append((best, columns))
    return setting_table(derived.cells, rows, several_runs)


def blocks(context: Context) -> list[Block]:
    throughput = throughput_table(context.derived, context.several_runs)
    if throughput.empty:
        return []
    return [
        Heading(2, "Throughput"),
        Paragraph(
            "The fastest loop of each setting (steady step). FLOPs per step from the "
            "workload's formula; MFU against the run's matmul probe (a peak measured on "
            "this machine, not the vendor's): for information, no decision rests on it."
        ),
        *table(throughput),
    ]
