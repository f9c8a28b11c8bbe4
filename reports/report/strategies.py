"""The report across tf.distribute strategies: scaling, and each loop against the reference.

A cell's ``strategy`` (loops/distribute.py: ``none``, ``mirrored:N``, ``multiworker:W``)
is part of its setting, so the rest of the report already compares loops within one
strategy (its decisions are headed by it). This module compares each loop under a
strategy with the SAME loop without one (``none``), at the same global batch:

* its speedup over one device (the ``none`` cell's median step over this cell's) and
  its **scaling efficiency**, that speedup over the replicas (N devices or W workers):
  1 is perfect strong scaling, 1/N no gain at all;
* its speed against the ladder's reference loop under that strategy beside the same
  ratio on one device ("under mirrored:2, <loop> runs at 0.9x <reference> (1.3x on one
  device)").

Every ratio is on the steady step, with a seeded percentile-bootstrap 95% interval
over the two cells' per-process samples (``reports.report.derived.speedups`` draws them
the same way); a claim stands by ``reports.report.decisions.verdict``. Cells that did
not run, or ran not equivalent, take no part. It never imports TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import ratio_with_interval
from tf_loopbench.reports.report.aggregate import GROUP_KEYS
from tf_loopbench.reports.report.decisions import format_ratio, verdict
from tf_loopbench.reports.report.derived import FIGURES, SPEEDUP_COLUMNS, Derived
from tf_loopbench.reports.report.render import (
    _interval,  # (render imports this module only when it runs)
)

NONE = "none"
#: the figure every ratio here is on: the steady step (per-epoch costs aside)
FIGURE = "steady"


def replicas(strategy: str) -> int:
    """Replicas of a strategy key: N of ``mirrored:N``, W of ``multiworker:W``, 1 else.

    >>> replicas("mirrored:2"), replicas("multiworker:3"), replicas("none")
    (2, 3, 1)
    """
    _, _, count = str(strategy).partition(":")
    return int(count) if count.isdigit() else 1


def scaling(derived: Derived) -> pd.DataFrame:
    """One row per cell under a strategy whose loop also ran without one in its setting:
    GROUP_KEYS, replicas, speedup over one device and its CI, scaling efficiency and its
    CI, the x-reference ratio and CI under the strategy and on one device."""
    cells = derived.cells
    columns = [
        *GROUP_KEYS,
        "replicas",
        "speedup",
        "speedup_ci_low",
        "speedup_ci_high",
        "efficiency",
        "efficiency_ci_low",
        "efficiency_ci_high",
        "vs_reference",
        "vs_reference_ci_low",
        "vs_reference_ci_high",
        "none_vs_reference",
        "none_vs_reference_ci_low",
        "none_vs_reference_ci_high",
    ]
    if "strategy" not in cells.columns or (cells["strategy"] == NONE).all():
        return pd.DataFrame(columns=columns)
    ok = cells[(cells["status"] == "ok") & (cells["equivalent"].map(lambda e: e is not False))]
    sample_column, cell_column = FIGURES[FIGURE]
    processes = derived.run_set.processes
    samples = {
        key: group[sample_column].dropna().to_numpy(dtype=float)
        for key, group in processes.groupby(list(GROUP_KEYS), sort=False)
    }
    by_key = {tuple(row[k] for k in GROUP_KEYS): row for row in ok.to_dict("records")}
    against = SPEEDUP_COLUMNS[("reference", FIGURE)]
    rows = []
    for key, row in by_key.items():
        if row["strategy"] == NONE:
            continue
        none_key = tuple(
            NONE if k == "strategy" else v for k, v in zip(GROUP_KEYS, key, strict=True)
        )
        single = by_key.get(none_key)
        if single is None:
            continue
        mine, theirs = samples.get(key, np.empty(0)), samples.get(none_key, np.empty(0))
        if mine.size and theirs.size:
            point, low, high = ratio_with_interval(mine, theirs)
        else:
            point, low, high = single[cell_column] / row[cell_column], math.nan, math.nan
        n = replicas(row["strategy"])
        rows.append(
            {
                **{k: row[k] for k in GROUP_KEYS},
                "replicas": n,
                "speedup": point,
                "speedup_ci_low": low,
                "speedup_ci_high": high,
                "efficiency": point / n,
                "efficiency_ci_low": low / n,
                "efficiency_ci_high": high / n,
                **dict(zip(columns[-6:-3], (row.get(c, math.nan) for c in against), strict=True)),
                **dict(zip(columns[-3:], (single.get(c, math.nan) for c in against), strict=True)),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _ratio(value: float, low: float, high: float) -> str:
    return _interval(value, low, high, format_ratio) or "n/a"


def _efficiency(value: float, low: float, high: float) -> str:
    return _interval(value, low, high, lambda share: f"{share:.0%}") or "n/a"


def scaling_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """The section's table: the loop under the strategy against itself on one device and
    against the reference under both."""
    table = scaling(derived)
    reference = derived.ladder.reference if derived.ladder is not None else "reference"
    rows = []
    for row in table.to_dict("records"):
        record = {"run": row["run"]} if several_runs else {}
        record.update(
            {
                "workload": row["workload"],
                "device": row["device"],
                "batch": str(row["batch_size"]),
                "loop": row["loop"],
                "strategy": row["strategy"],
                "x one device [95% CI]": _ratio(
                    row["speedup"], row["speedup_ci_low"], row["speedup_ci_high"]
                ),
                "scaling efficiency [95% CI]": _efficiency(
                    row["efficiency"], row["efficiency_ci_low"], row["efficiency_ci_high"]
                ),
                f"x {reference} under it": _ratio(
                    row["vs_reference"], row["vs_reference_ci_low"], row["vs_reference_ci_high"]
                ),
                f"x {reference} on one device": _ratio(
                    row["none_vs_reference"],
                    row["none_vs_reference_ci_low"],
                    row["none_vs_reference_ci_high"],
                ),
            }
        )
        rows.append(record)
    return pd.DataFrame(rows)


def strategy_sentences(derived: Derived) -> list[str]:
    """One sentence per loop and strategy: its speed against the reference under the
    strategy, beside the same on one device, and its scaling efficiency."""
    reference = derived.ladder.reference if derived.ladder is not None else None
    band = derived.threshold
    sentences = []
    for row in scaling(derived).to_dict("records"):
        where = f"{row['workload']} ({row['device']}, batch {row['batch_size']})"
        scale = verdict(row["speedup_ci_low"], row["speedup_ci_high"], band)
        gain = {
            "faster": "is faster than on one device",
            "slower": "is slower than on one device",
            "same": "is as fast as on one device",
        }.get(scale, "is not shown faster or slower than on one device")
        efficiency = _efficiency(
            row["efficiency"], row["efficiency_ci_low"], row["efficiency_ci_high"]
        )
        text = f"{where}: under {row['strategy']}, {row['loop']} "
        if reference is not None and row["loop"] != reference:
            single = _ratio(
                row["none_vs_reference"],
                row["none_vs_reference_ci_low"],
                row["none_vs_reference_ci_high"],
            )
            if np.isfinite(row["vs_reference"]):
                under = _ratio(
                    row["vs_reference"], row["vs_reference_ci_low"], row["vs_reference_ci_high"]
                )
                text += f"runs at {under} {reference} ({single} on one device) and "
            else:
                text += f"has no {reference} beside it ({single} {reference} on one device) and "
        text += f"{gain}: scaling efficiency {efficiency} over {row['replicas']} replicas."
        sentences.append(text)
    return sentences


def strategy_blocks(derived: Derived) -> list:
    """The report's section on strategies; empty when every cell ran without one."""
    from tf_loopbench.reports.report.render import Bullets, Heading, Paragraph, _table

    table = scaling_table(derived, len(derived.run_set.runs) > 1)
    if table.empty:
        return []
    return [
        Heading(2, "Strategies"),
        Paragraph(
            "Each loop under a tf.distribute strategy against the same loop on one device "
            "(strategy none) at the same global batch, steady step, 95% CI across processes "
            "in brackets. Scaling efficiency: that speedup over the replicas (100%: perfect "
            "strong scaling). Cells skipped under a strategy say why in All cells."
        ),
        *_table(table),
        Bullets(tuple(strategy_sentences(derived))),
    ]
