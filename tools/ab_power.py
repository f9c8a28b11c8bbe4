"""Per-cell spread and detectable slowdown of finished ``loopbench ab`` outputs, side by side.

For the records of docs/results (duet against interleaved A/Bs of one sitting)::

    python tools/ab_power.py results/aa-duet results/aa-interleaved

For each A/B and cell: the mode, blocks, the paired spread (SD of the per-block log
ratio current/base: in a duet, of the block summary the gate judges, and of the other
summary, for docs/decisions/0011; interleaved, of the drift-corrected fastest-window
samples of process k on both sides), the per-process spread the rank test sees
(interleaved), the gate's detectable slowdown (the whole rule) and its verdict; and per
A/B the wall time and the median detectable slowdown. Developer tool: never installed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tf_loopbench.reports import gate
from tf_loopbench.reports.gate import stats
from tf_loopbench.reports.gate.render import detectable_text
from tf_loopbench.reports.gate.samples import (
    BLOCK_SUMMARIES,
    BLOCK_SUMMARY,
    block_grid,
    drift_corrected_samples,
    paired_log_ratios,
    process_samples,
)
from tf_loopbench.reports.rundir import AB_MARK, load_run


def ab_rows(out: Path) -> tuple[list[dict], dict]:
    """One row per cell of the A/B in ``out`` (base/ and current/), and its totals."""
    runs = (load_run(out / "base"), load_run(out / "current"))
    mark = runs[1].metadata.get("soft", {}).get(AB_MARK) or {}
    mode = mark.get("mode", "interleaved")
    if mode == "duet":
        mode += " pinned" if mark.get("pinned", True) else " shared"
    result = gate.compare(out / "base", out / "current")
    samples = tuple(process_samples(run) for run in runs)
    level = result.alpha / max(1, result.n_tested)
    extra: dict = {}
    if mode.startswith("duet"):
        for summary in BLOCK_SUMMARIES:
            ratios = paired_log_ratios(runs, samples, summary)
            extra[summary] = {
                cell: (
                    float(np.std(values, ddof=1)),
                    stats.paired_detectable_slowdown(values, level, result.threshold),
                )
                for cell, values in ratios.items()
                if len(values) > 1
            }
    else:
        cells, grid = block_grid(samples)
        base, cur, _ = drift_corrected_samples(samples)
        for index, cell in enumerate(cells):
            pairs = np.log(grid[index, 1] / grid[index, 0])
            logs = np.concatenate(
                [np.log(side[cell]) - np.median(np.log(side[cell])) for side in (base, cur)]
            )
            extra[cell] = (float(np.nanstd(pairs, ddof=1)), float(np.std(logs, ddof=2)))
    rows = []
    for cell in result.cells:
        row = {
            "ab": out.name,
            "mode": mode,
            "cell": cell.cell.name,
            "blocks": cell.n_current,
            "verdict": cell.verdict,
            "ratio": cell.ratio,
            "detectable": cell.detectable,
        }
        if mode.startswith("duet"):
            for summary in BLOCK_SUMMARIES:
                sd, detectable = extra[summary].get(cell.cell, (math.nan, math.nan))
                row[f"sd_{summary}"], row[f"det_{summary}"] = sd, detectable
        else:
            row["sd_pairs"], row["sd_process"] = extra.get(cell.cell, (math.nan, math.nan))
        rows.append(row)
    totals = {
        "ab": out.name,
        "mode": mode,
        "wall_min": float(mark.get("elapsed_s", math.nan)) / 60,
        "median_detectable": float(np.median([r["detectable"] for r in rows])),
        "by_summary": {
            summary: float(np.median([r[f"det_{summary}"] for r in rows]))
            for summary in BLOCK_SUMMARIES
            if mode.startswith("duet")
        },
        "exit": result.exit_status,
        "flagged": ", ".join(c.cell.name for c in result.regressions) or "none",
    }
    return rows, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outs", nargs="+", type=Path, help="loopbench ab --out directories")
    args = parser.parse_args(argv)
    print(
        "| A/B | mode | cell | blocks | verdict | ratio | detectable (gate) | paired SD "
        "| SD, other | detectable, other |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    totals = []
    for out in args.outs:
        rows, total = ab_rows(out)
        totals.append(total)
        for r in rows:
            if r["mode"].startswith("duet"):
                other = next(s for s in BLOCK_SUMMARIES if s != BLOCK_SUMMARY)
                sd, sd_other = r[f"sd_{BLOCK_SUMMARY}"], r[f"sd_{other}"]
                detail = (
                    f"{sd_other:.3f} ({other})",
                    f"{detectable_text(r[f'det_{other}'])} ({other})",
                )
            else:
                sd = r["sd_pairs"]
                detail = f"{r['sd_process']:.3f} (per process)", "-"
            print(
                f"| {r['ab']} | {r['mode']} | {r['cell']} | {r['blocks']} | {r['verdict']} "
                f"| {r['ratio']:.3f} | {detectable_text(r['detectable'])} | {sd:.3f} | {detail[0]} "
                f"| {detail[1]} |"
            )
    print()
    print(
        "| A/B | mode | wall (min) | median detectable (gate) | by block summary | exit | flagged |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in totals:
        by = ", ".join(f"{s} {detectable_text(v)}" for s, v in t["by_summary"].items()) or "-"
        print(
            f"| {t['ab']} | {t['mode']} | {t['wall_min']:.1f} | {detectable_text(t['median_detectable'])} "
            f"| {by} | {t['exit']} | {t['flagged']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
