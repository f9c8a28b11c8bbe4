"""Crossovers over a sweep (``Derived.crossovers``, on the core's rows): from which batch
size or width on a loop's overhead against its reference stays under 10%, as a table and
a sentence each among the Decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import RUN_SETTING_KEYS
from tf_loopbench.reports.report.common import (
    VARYING_SETTING_COLUMNS,
    Block,
    Context,
    Decision,
    Heading,
    Table,
    int_or_blank,
    percent,
    varying_setting_keys,
)
from tf_loopbench.reports.report.derived import OVERHEAD_THRESHOLD, SPEEDUP_COLUMNS, Derived

#: The sweep's and the fixed key's names in words.
NAMES = {"batch_size": "batch", "width": "width"}


def crossover_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    rows, varying = derived.crossovers, varying_setting_keys(derived.cells)
    at = [f"{c:.0f}" if np.isfinite(c) else "never (in the grid)" for c in rows["crossover"]]
    always = np.where(rows["outcome"] == "always", " (smallest measured)", "")
    overheads = [
        ", ".join(f"{g}: {o:+.0%}" for g, o in zip(grid, values, strict=True))
        for grid, values in zip(rows["grid"], rows["overheads"], strict=True)
    ]
    table = rows[[*(["run"] if several_runs else []), "workload", "device"]]
    table = table.join(rows[list(varying)].astype(str).rename(columns=VARYING_SETTING_COLUMNS))
    return table.assign(
        sweep=rows["axis"].map({"batch_size": "batch size", "width": "width"}),
        at=rows["fixed_key"].map(NAMES) + " " + rows["fixed_value"].astype(str),
        loop=rows["loop"] + " vs " + rows["reference"],
        **{
            f"under {OVERHEAD_THRESHOLD:.0%} from": at + always,
            "log-interpolated": rows["crossover_log_interpolated"].map(int_or_blank),
            "overheads along the grid": overheads,
        },
    )


def sentences(derived: Derived) -> list[Decision]:
    """Per crossover: from which grid point on a loop's overhead stays under the threshold."""
    several_runs = len(derived.run_set.runs) > 1
    cells = derived.cells.set_index([*RUN_SETTING_KEYS, "loop"])
    out = []
    threshold = percent(OVERHEAD_THRESHOLD)
    for row in derived.crossovers.to_dict("records"):
        axis_name, grid = NAMES[row["axis"]], row["grid"]
        fixed = f" ({NAMES[row['fixed_key']]} {row['fixed_value']})" if row["fixed_value"] else ""
        what = row["workload"] + fixed
        plural = "es" if axis_name == "batch" else "s"
        grid_text = f"{axis_name}{plural} measured: {', '.join(map(str, grid))}"
        loop, reference = row["loop"], row["reference"]
        # a neighbour's overhead against the rung that changes one thing of it
        rung = next(rung for rung in derived.ladder.rungs if rung.loop == reference)
        change = rung.changes if rung.compares_with == loop else None
        subject = (
            f"{change} stops mattering ({loop} within {threshold} of {reference})"
            if change
            else f"{loop}'s overhead against {reference} falls under {threshold}"
        )
        place = f"On {row['run']}, {row['device']}" if several_runs else f"On {row['device']}"
        # the grid point the sentence rests on: the crossover, or the largest measured
        deciding = int(row["crossover"]) if row["outcome"] != "never" else int(grid[-1])
        key = {**row, row["axis"]: deciding, row["fixed_key"]: row["fixed_value"]}
        key = tuple(key[k] for k in RUN_SETTING_KEYS)
        cell, ref_cell = cells.loc[(*key, loop)], cells.loc[(*key, reference)]
        if change:  # the rung's speedup over its neighbour is the neighbour's overhead + 1
            _, low, high = (float(ref_cell[c]) for c in SPEEDUP_COLUMNS[("neighbour", "steady")])
            overhead_low, overhead_high = low - 1, high - 1
        else:
            _, low, high = (float(cell[c]) for c in SPEEDUP_COLUMNS[("reference", "steady")])
            overhead_low, overhead_high = 1 / high - 1, 1 / low - 1
        has_ci = bool(np.isfinite(overhead_low) and np.isfinite(overhead_high))
        ci = f"interval {percent(overhead_low, True)} to {percent(overhead_high, True)}"
        ci = ci if has_ci else "no interval"
        if row["outcome"] == "never":
            last = f"{deciding}: {percent(row['overheads'][-1], True)}"
            if change:
                text = (
                    f"{place}, {change} still matters on {what} at the largest {axis_name} "
                    f"measured ({loop} {last} over {reference}, steady step, {ci}; {grid_text})"
                )
            else:
                text = (
                    f"{place}, {loop}'s overhead against {reference} on {what} stays above "
                    f"{threshold} up to the largest {axis_name} measured ({last}, steady step, "
                    f"{ci}; {grid_text})"
                )
            claim = has_ci and overhead_low >= OVERHEAD_THRESHOLD
        else:
            at = f"overhead there {percent(row['overhead_at_crossover'], True)}, steady step, {ci}"
            if row["outcome"] == "always":
                text = (
                    f"{place}, {subject} on {what} already at the smallest {axis_name} measured "
                    f"({deciding}; {at}; {grid_text})"
                )
            else:
                interpolated = row["crossover_log_interpolated"]
                text = (
                    f"{place}, {subject} on {what} from {axis_name} {deciding} on "
                    f"(first grid point; about {interpolated:.0f} interpolated on a log scale; {at})"
                )
            claim = has_ci and overhead_high < OVERHEAD_THRESHOLD
        if has_ci and not claim:
            text += f"; the interval reaches across {threshold}"
        noisy = [name for name, c in ((loop, cell), (reference, ref_cell)) if bool(c["noisy"])]
        if noisy:
            text += f" (noisy: {', '.join(noisy)})"
        out.append(Decision("Crossovers", text + ".", claim))
    return out


def blocks(context: Context) -> list[Block]:
    if context.derived.crossovers.empty:
        return []
    return [
        Heading(2, "Crossovers"),
        Table(crossover_table(context.derived, context.several_runs)),
    ]
