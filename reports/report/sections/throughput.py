"""Throughput: the fastest loop of each setting (steady step), its FLOP/s and its MFU per
replica in the cell's compute dtype against the run's matmul probe (derived.throughput);
for information, no decision rests on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import RUN_SETTING_KEYS
from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Context,
    Heading,
    Paragraph,
    format_rate,
    interval,
    keras_choice,
    setting_heading,
    setting_table,
    table,
)
from tf_loopbench.reports.report.derived import Derived


def replica_peak_text(row: dict) -> str:
    """A replica's device peak, its dtype, and the share of a device it is, e.g.
    "120 GFLOP/s bfloat16 (1/2 of the cpu's 240 GFLOP/s)"."""
    text = f"{format_rate(row['replica_peak_flops'])} {row['peak_dtype']}"
    sharing = row["replicas_per_device"]
    if np.isfinite(row["replica_peak_flops"]) and sharing > 1:
        text += (
            f" (1/{sharing:.0f} of the {row['device']}'s {format_rate(row['peak_matmul_flops'])})"
        )
    return text if np.isfinite(row["replica_peak_flops"]) else f"none in {row['peak_dtype']}"


def throughput_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    rows = []
    for _, group in cells.groupby(list(RUN_SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()].to_dict()
        flops, mfu = best["model_flops_per_step"], best["mfu"]
        per_replica = (
            f" ({best['flops_per_replica']:.4g} a replica)" if best["replicas"] > 1 else ""
        )
        columns = {
            "fastest loop (steady step)": best["loop"],
            "model FLOPs per step": f"{flops:.4g}{per_replica}",
            "achieved [interval]": interval(
                best["achieved_flops_per_s"],
                flops / best["step_time_ci_high_s"],
                flops / best["step_time_ci_low_s"],
                format_rate,
            ),
            "peak of a replica's device (probe)": replica_peak_text(best),
            "MFU (per replica)": f"{mfu * 100:.1f}%" if np.isfinite(mfu) else "none: see below",
            "Keras chose": keras_choice(best) or "",
        }
        rows.append((best, columns))
    return setting_table(derived.cells, rows, several_runs)


def mfu_notes(derived: Derived, several_runs: bool) -> list[str]:
    """Why a setting's fastest loop has no MFU, one line per setting."""
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    notes = []
    for _, group in cells.groupby(list(RUN_SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()]
        if isinstance(best.get("mfu_note"), str):
            notes.append(f"{setting_heading(best, several_runs)}: no MFU: {best['mfu_note']}.")
    return notes


def blocks(context: Context) -> list[Block]:
    throughput = throughput_table(context.derived, context.several_runs)
    if throughput.empty:
        return []
    notes = mfu_notes(context.derived, context.several_runs)
    return [
        Heading(2, "Throughput"),
        Paragraph(
            "The fastest loop of each setting (steady step). FLOPs per step from the "
            "workload's formula. MFU per replica: (FLOPs per step / replicas) / step time / "
            "the peak of a replica's device, measured by the run's matmul probe in the "
            "dtype the cell computes in (bfloat16 for mixed_bfloat16; on this machine, not "
            "the vendor's figure). Replicas on one physical device (logical CPU devices, "
            "worker processes on one CPU) each get an equal share of its peak; with no "
            "peak in the cell's dtype there is no MFU. Achieved: FLOPs per step over the steady "
            "step, in brackets over the ends of the step's interval (its coverage: Decisions, Intervals). "
            "For information: no decision rests on it."
        ),
        *table(throughput),
        *([Bullets(tuple(notes))] if notes else []),
    ]
