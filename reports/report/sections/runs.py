"""The report's title and its runs: what ran where, and each later run against the first
(``Derived.run_comparison``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import FASTER, SLOWER, verdict
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Decision,
    Heading,
    Paragraph,
    Table,
    format_rate,
    format_ratio,
    percent,
)
from tf_loopbench.reports.report.derived import Derived

TOPIC = "Between runs"


def runs_table(derived: Derived) -> pd.DataFrame:
    rows = []
    for run, label in zip(derived.run_set.runs, derived.run_set.labels, strict=True):
        hard, soft, config = (run.metadata.get(k, {}) for k in ("hard", "soft", "config"))
        dirty = " (dirty)" if soft.get("git_dirty") else ""
        commit = str(soft.get("git_commit") or "")[:10] + dirty
        peaks = soft.get("peak_matmul_flops_by_dtype") or {
            device: {"float32": value}
            for device, value in (soft.get("peak_matmul_flops") or {}).items()
        }
        rows.append(
            {
                "run": label,
                "run id": run.run_id,
                "devices": ", ".join(config.get("devices", [])),
                "tensorflow": str(soft.get("tensorflow", "")),
                "host": str(soft.get("hostname", "")),
                "cpu": f"{hard.get('cpu_model', '')} ({hard.get('visible_cores', '?')} cores)",
                "gpus": ", ".join(str(g) for g in hard.get("gpus") or []) or "none",
                "commit": commit,
                "started": str(soft.get("started_at", "")),
                "matmul peak (probe)": ", ".join(
                    f"{d}{'' if dtype == 'float32' else ' ' + dtype}: {format_rate(v)}"
                    for d, by_dtype in peaks.items()
                    for dtype, v in by_dtype.items()
                )
                or "not measured",
            }
        )
    return pd.DataFrame(rows)


def sentences(derived: Derived) -> list[Decision]:
    """Per later run and workload: its cells against the first run's, on the steady step."""
    run_set, out = derived.run_set, []
    if run_set.differing_hard_keys:
        keys = ", ".join(run_set.differing_hard_keys)
        text = f"These runs differ in machine keys ({keys}): they are shown side by side, not as"
        out.append(Decision(TOPIC, f"{text} a regression check.", False, info=True))
    by_workload = derived.run_comparison.groupby(["baseline", "run", "workload"], sort=True)
    for (baseline, run, workload), group in by_workload:
        ratios = group["speedup"].to_numpy(dtype=float)
        intervals = zip(group["speedup_ci_low"], group["speedup_ci_high"], strict=True)
        beyond = sum(verdict(*ci, derived.threshold) in (FASTER, SLOWER) for ci in intervals)
        median = float(np.median(ratios))
        direction = "faster" if median >= 1 else "slower"
        factor = median if median >= 1 else 1 / median
        text = (
            f"{run} against {baseline} on {workload}, steady step: median over {len(group)} "
            f"matching cells {format_ratio(factor)} {direction} (range "
            f"{format_ratio(ratios.min())}-{format_ratio(ratios.max())} the speed); "
            f"{beyond} of {len(group)} cells differ beyond ±{percent(derived.threshold)} "
            "with their interval"
        )
        out.append(Decision(TOPIC, text + ".", bool(beyond)))
    return out


def blocks(context: Context) -> list[Block]:
    run_set, cells = context.derived.run_set, context.derived.cells
    counts = cells["status"].value_counts()
    out: list[Block] = [
        Heading(1, f"tf-loopbench report: {run_set.title}"),
        Paragraph(
            f"{len(cells)} cells ({counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
            f"{counts.get('skipped', 0)} skipped) over {cells['workload'].nunique()} workloads and "
            f"{cells['loop'].nunique()} loop styles"
            + (f", from {len(run_set.runs)} runs." if context.several_runs else ".")
        ),
        Heading(2, "Runs"),
        Table(runs_table(context.derived)),
    ]
    if run_set.differing_hard_keys:
        keys = ", ".join(run_set.differing_hard_keys)
        text = f"These runs differ in machine keys ({keys}): compare them side by side, not as"
        out.append(Paragraph(f"{text} a regression."))
    return out
