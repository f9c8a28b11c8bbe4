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
    keras_column,
    setting_fields,
    table,
    varying_setting_keys,
)
from tf_loopbench.reports.report.derived import Derived


def throughput_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """The fastest loop (steady step) of each setting: model FLOPs, FLOP/s, MFU."""
    keras = keras_column(derived.cells)
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    varying = varying_setting_keys(derived.cells)
    rows = []
    for _, group in cells.groupby(list(RUN_SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()].to_dict()
        flops, mfu = best["model_flops_per_step"], best["mfu"]
        rows.append(
            {
                **setting_fields(best, several_runs, varying),
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
            }
        )
        if keras:
            rows[-1]["Keras chose"] = keras_choice(best) or ""
    return pd.DataFrame(rows)


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
