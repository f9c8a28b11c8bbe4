"""The "Decisions" of a report: plain sentences, each with its numbers and uncertainty.

What it writes, from ``reports.report.derived.Derived``, along the runs' loop ladder
(every comparison is a loop against the reference, or a rung against the one it
compares with; a run without a ladder gets none of these):

* cost of each loop against the reference ("eager costs 8.9x fit ... (95% CI
  8.5-9.3x)", "tf_function is within 3% of fit ..."), and of each rung against its
  neighbour ("tf_function is 9.2x faster than eager ...");
* compile break-even of each rung against its neighbour ("xla pays back its 1.50 s
  compile after 734 steps against tf_data ...");
* crossovers over batch size and width (where a loop's overhead against the
  reference stays under 10%, where a rung's change stops mattering);
* achieved FLOP/s and MFU of the fastest loop per setting;
* with several runs, how each run compares with the first.

A sentence only claims what the data carries. When a 95% CI includes 1, a
cell is noisy, failed or skipped, or has fewer than two processes, the sentence
says so and is marked ``claim=False`` instead of claiming.

Run it::

    python -c "from reports.rundir import load_runs; from reports.report.aggregate import RunSet; \
from reports.report.derived import derive; from reports.report.decisions import decisions; \
[print(d.text) for d in decisions(derive(RunSet.of(load_runs(['RUN']))))]"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports.report.derived import (
    OVERHEAD_THRESHOLD,
    SETTING_KEYS,
    SPEEDUP_COLUMNS,
    Derived,
    neighbour_pairs,
    reference_pairs,
)

#: A loop counts as "within N% of" its reference only when the whole 95% CI lies
#: within this margin; otherwise an interval that includes 1 is "cannot be told apart".
EQUIVALENCE_MARGIN = 0.05


@dataclass(frozen=True)
class Decision:
    """One generated sentence.

    ``topic`` groups sentences in the report; ``claim`` is False when the
    sentence says the data cannot carry a claim.
    """

    topic: str
    text: str
    claim: bool


# --------------------------------------------------------------------------- wording


def format_ratio(value: float) -> str:
    """8.9 -> "8.9x", 1.234 -> "1.23x"."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.1f}x" if value >= 2 else f"{value:.2f}x"


def format_seconds(value: float) -> str:
    """0.0042 -> "4.2 ms", 1.5 -> "1.50 s"."""
    if not np.isfinite(value):
        return "n/a"
    # thresholds just under 1 so that 0.9999996 ms shows as "1 ms", not "1e+03 µs"
    if abs(value) >= 0.9995:
        return f"{value:.2f} s"
    if abs(value) >= 0.9995e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def format_rate(value: float, unit: str = "FLOP/s") -> str:
    """1.2e11 -> "120 GFLOP/s"."""
    if not np.isfinite(value):
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _percent(value: float, signed: bool = False) -> str:
    rounded = round(value * 100) + 0  # + 0 turns -0 into 0
    return f"{rounded:+d}%" if signed else f"{rounded:d}%"


def _place(row: Any, several_runs: bool) -> str:
    where = f"{row['run']}, {row['device']}" if several_runs else f"this machine ({row['device']})"
    return f"On {where}"


def _setting(row: Any) -> str:
    width = int(row["width"])
    workload = f"{row['workload']} (width {width})" if width else str(row["workload"])
    return f"{workload} at batch {int(row['batch_size'])}"


def _relative(
    loop: str, reference: str, speedup: float, low: float, high: float
) -> tuple[str, bool]:
    """How ``loop`` compares with ``reference``, given speedup = reference time / loop time."""
    interval = f"95% CI {format_ratio(low)}-{format_ratio(high)}"
    if not (np.isfinite(low) and np.isfinite(high)):
        return (
            f"{loop} runs at {format_ratio(speedup)} the speed of {reference}, "
            "but fewer than two processes succeeded, so there is no CI and no claim",
            False,
        )
    if low <= 1 <= high:
        deviation = max(1 - low, high - 1, 1 - 1 / high, 1 / low - 1)
        if deviation <= EQUIVALENCE_MARGIN:
            return (
                f"{loop} is within {math.ceil(deviation * 100)}% of {reference} "
                f"({format_ratio(speedup)} its speed, {interval})",
                True,
            )
        return (
            f"{loop} cannot be told apart from {reference} "
            f"({format_ratio(speedup)} its speed, {interval} includes 1)",
            False,
        )
    if high < 1:
        cost, cost_low, cost_high = 1 / speedup, 1 / high, 1 / low
        if cost >= 1.5:
            return (
                f"{loop} costs {format_ratio(cost)} {reference} "
                f"(95% CI {format_ratio(cost_low)}-{format_ratio(cost_high)})",
                True,
            )
        return (
            f"{loop} is {_percent(cost - 1)} slower than {reference} "
            f"(95% CI {_percent(cost_low - 1)}-{_percent(cost_high - 1)})",
            True,
        )
    if speedup >= 1.5:
        return f"{loop} is {format_ratio(speedup)} faster than {reference} ({interval})", True
    return (
        f"{loop} is {_percent(speedup - 1)} faster than {reference} "
        f"(95% CI {_percent(low - 1)}-{_percent(high - 1)})",
        True,
    )


# --------------------------------------------------------------------------- sentences


def _failure_decisions(cells: pd.DataFrame, several_runs: bool) -> list[Decision]:
    out = []
    for row in cells[cells["status"] != "ok"].to_dict("records"):
        error = row.get("error")
        reason = f": {error}" if isinstance(error, str) and error else ""
        out.append(
            Decision(
                "Failed or skipped",
                f"{_place(row, several_runs)}, {row['loop']} {row['status']} on "
                f"{_setting(row)}{reason}. No claim about it.",
                False,
            )
        )
    return out


def _speedup_of(row: Any, reference: str, ladder_reference: str) -> tuple[float, float, float]:
    """(speedup, CI low, CI high) of a derived cell against ``reference``: the ladder's
    reference loop or the cell's neighbour."""
    kind = "reference" if reference == ladder_reference else "neighbour"
    if kind == "neighbour" and row["neighbour"] != reference:
        return math.nan, math.nan, math.nan
    low_high = tuple(float(row[column]) for column in SPEEDUP_COLUMNS[kind])
    return low_high[0], low_high[1], low_high[2]


def _cost_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    ladder = derived.ladder
    if ladder is None:
        return []
    out = []
    pairs = reference_pairs(ladder) + neighbour_pairs(ladder)
    for _, group in derived.cells.groupby(list(SETTING_KEYS), sort=True):
        by_loop = group.set_index("loop")
        for loop, reference in pairs:
            if loop not in by_loop.index or reference not in by_loop.index:
                continue
            row, ref_row = by_loop.loc[loop], by_loop.loc[reference]
            if row["status"] != "ok" or ref_row["status"] != "ok":
                continue  # said in "Failed or skipped"
            speedup, low, high = _speedup_of(row, reference, ladder.reference)
            place = f"{_place(row, several_runs)}, on {_setting(row)}"
            text, claim = _relative(loop, reference, speedup, low, high)
            noisy = [name for name, r in ((loop, row), (reference, ref_row)) if bool(r["noisy"])]
            if noisy:
                verb = "is" if len(noisy) == 1 else "are"
                if claim:
                    text = (
                        f"{text.split(' (')[0]} on the point estimate, but {' and '.join(noisy)} "
                        f"{verb} noisy here (speedup {format_ratio(speedup)}, "
                        f"95% CI {format_ratio(low)}-{format_ratio(high)}), so no claim"
                    )
                    claim = False
                else:
                    text += f"; {' and '.join(noisy)} {verb} noisy here"
            out.append(Decision(f"Cost against {reference}", f"{place}, {text}.", claim))
    return out


def _break_even_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    cells = derived.cells.set_index([*SETTING_KEYS, "loop"])
    out = []
    for row in derived.break_even.to_dict("records"):
        key = tuple(row[k] for k in SETTING_KEYS)
        cell = cells.loc[(*key, row["loop"])]
        ref_cell = cells.loc[(*key, row["reference"])]
        speedup, low, high = _speedup_of(cell, row["reference"], derived.ladder.reference)
        interval = f"{format_ratio(speedup)} the speed of {row['reference']}, 95% CI {format_ratio(low)}-{format_ratio(high)}"
        place = f"{_place(row, several_runs)}, on {_setting(row)}"
        compile_text = (
            f"its {format_seconds(row['compile_s'])} compile "
            f"({row['reference']}: {format_seconds(row['reference_compile_s'])})"
        )
        significant = np.isfinite(low) and np.isfinite(high) and not (low <= 1 <= high)
        noisy = bool(cell["noisy"]) or bool(ref_cell["noisy"])
        loop, reference = row["loop"], row["reference"]
        if row["outcome"] == "unknown":
            text, claim = (
                f"{loop}'s break-even against {reference} is unknown (no compile time recorded)",
                False,
            )
        elif not significant or noisy:
            why = "a noisy cell" if noisy else "its 95% CI includes 1"
            if row["outcome"] == "after":
                text = (
                    f"{loop} would pay back {compile_text} after {row['break_even_steps']:.0f} steps "
                    f"against {reference}, but its per-step gain is not shown ({interval}; {why}), so no claim"
                )
            else:
                text = (
                    f"{loop} shows no per-step gain over {reference} to pay back {compile_text} "
                    f"({interval}; {why}), so no claim"
                )
            claim = False
        elif row["outcome"] == "after":
            text = (
                f"{loop} pays back {compile_text} after {row['break_even_steps']:.0f} steps "
                f"against {reference} ({format_seconds(row['break_even_s'])} in; steps at {interval})"
            )
            claim = True
        elif row["outcome"] == "immediately":
            text = (
                f"{loop} is ahead of {reference} from the first step: {compile_text} is no more, "
                f"and its steps are faster ({interval})"
            )
            claim = True
        else:
            text = (
                f"{loop} never pays back {compile_text} against {reference}: "
                f"its steps are slower ({interval})"
            )
            claim = True
        out.append(Decision("Compile break-even", f"{place}, {text}.", claim))
    return out


def _crossover_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    cells = derived.cells.set_index(list(SETTING_KEYS) + ["loop"])
    out = []
    threshold = _percent(OVERHEAD_THRESHOLD)
    for row in derived.crossovers.to_dict("records"):
        axis_name = "batch" if row["axis"] == "batch_size" else "width"
        fixed_name = "width" if row["fixed_key"] == "width" else "batch"
        what = f"{row['workload']}" + (
            f" ({fixed_name} {row['fixed_value']})" if row["fixed_value"] else ""
        )
        grid = row["grid"]
        grid_text = (
            f"{axis_name}es measured: {', '.join(str(g) for g in grid)}"
            if axis_name == "batch"
            else f"widths measured: {', '.join(str(g) for g in grid)}"
        )
        loop, reference = row["loop"], row["reference"]
        # a neighbour's overhead against the rung that changes one thing of it
        rung = derived.ladder.rung(reference)
        change = rung.changes if rung is not None and rung.compares_with == loop else None
        subject = (
            f"{change} stops mattering ({loop} within {threshold} of {reference})"
            if change
            else f"{loop}'s overhead against {reference} falls under {threshold}"
        )
        place = _place(row, several_runs)
        # the grid point the sentence rests on: the crossover, or the largest measured
        deciding = int(row["crossover"]) if row["outcome"] != "never" else int(grid[-1])
        batch = deciding if row["axis"] == "batch_size" else row["fixed_value"]
        width = deciding if row["axis"] == "width" else row["fixed_value"]
        key = (row["run"], row["workload"], row["device"], batch, width)
        cell, ref_cell = cells.loc[(*key, loop)], cells.loc[(*key, reference)]
        if change:  # the rung's speedup over its neighbour is the neighbour's overhead + 1
            _, speedup_low, speedup_high = _speedup_of(ref_cell, loop, derived.ladder.reference)
            overhead_low, overhead_high = speedup_low - 1, speedup_high - 1
        else:
            _, speedup_low, speedup_high = _speedup_of(cell, reference, derived.ladder.reference)
            overhead_low, overhead_high = 1 / speedup_high - 1, 1 / speedup_low - 1
        has_ci = bool(np.isfinite(overhead_low) and np.isfinite(overhead_high))
        ci = (
            f"95% CI {_percent(overhead_low, True)} to {_percent(overhead_high, True)}"
            if has_ci
            else "no CI"
        )
        if row["outcome"] == "never":
            last = f"{deciding}: {_percent(row['overheads'][-1], True)}"
            if change:
                text = (
                    f"{place}, {change} still matters on {what} at the largest {axis_name} "
                    f"measured ({loop} {last} over {reference}, {ci}; {grid_text})"
                )
            else:
                text = (
                    f"{place}, {loop}'s overhead against {reference} on {what} stays above "
                    f"{threshold} up to the largest {axis_name} measured ({last}, {ci}; {grid_text})"
                )
            certain = has_ci and overhead_low >= OVERHEAD_THRESHOLD
        else:
            at = f"overhead there {_percent(row['overhead_at_crossover'], True)}, {ci}"
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
            certain = has_ci and overhead_high < OVERHEAD_THRESHOLD
        claim = certain
        if not certain:
            text += f"; the CI reaches across {threshold}, so this is not certain"
        noisy = [name for name, c in ((loop, cell), (reference, ref_cell)) if bool(c["noisy"])]
        if noisy:
            text += f"; {' and '.join(noisy)} {'is' if len(noisy) == 1 else 'are'} noisy there"
            claim = False
        out.append(Decision("Crossovers", text + ".", claim))
    return out


def _throughput_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    out = []
    for _, group in cells.groupby(list(SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()]
        flops = best["model_flops_per_step"]
        low_rate = flops / best["step_time_ci_high_s"]
        high_rate = flops / best["step_time_ci_low_s"]
        rate = (
            f"{format_rate(best['achieved_flops_per_s'])} "
            f"(95% CI {format_rate(low_rate)}-{format_rate(high_rate)})"
        )
        place = f"{_place(best, several_runs)}, {_setting(best)}"
        if np.isfinite(best["mfu"]):
            peak = format_rate(best["peak_matmul_flops"])
            text = (
                f"{place} reaches {rate} with {best['loop']}, its fastest loop: "
                f"MFU {best['mfu'] * 100:.1f}% of the measured {peak} matmul peak"
            )
            if best["mfu"] > 1:
                text += " (above the peak: check the FLOP formula or the peak measurement)"
        else:
            text = f"{place} reaches {rate} with {best['loop']}; no measured peak, so no MFU"
        out.append(Decision("Throughput", text + ".", True))
    return out


def _run_comparison_decisions(derived: Derived) -> list[Decision]:
    out = []
    run_set = derived.run_set
    if run_set.differing_hard_keys:
        out.append(
            Decision(
                "Between runs",
                f"These runs differ in machine keys ({', '.join(run_set.differing_hard_keys)}): "
                "they are shown side by side, not as a regression check.",
                False,
            )
        )
    table = derived.run_comparison
    for (baseline, run, workload), group in table.groupby(
        ["baseline", "run", "workload"], sort=True
    ):
        ratios = group["speedup"].to_numpy(dtype=float)
        excludes_one = ((group["speedup_ci_low"] > 1) | (group["speedup_ci_high"] < 1)).sum()
        median = float(np.median(ratios))
        direction = "faster" if median >= 1 else "slower"
        factor = median if median >= 1 else 1 / median
        text = (
            f"{run} against {baseline} on {workload}: median over {len(group)} matching cells "
            f"{format_ratio(factor)} {direction} (range {format_ratio(ratios.min())}-"
            f"{format_ratio(ratios.max())} the speed); {excludes_one} of {len(group)} cells "
            "differ beyond their 95% CI"
        )
        out.append(Decision("Between runs", text + ".", bool(excludes_one)))
    return out


def decisions(derived: Derived) -> list[Decision]:
    """Every decision sentence of a report, grouped by topic in report order.

    Example::

        for decision in decisions(derive(RunSet.of(load_runs(["results/RUN"])))):
            print(("" if decision.claim else "(no claim) ") + decision.text)
    """
    several_runs = len(derived.run_set.runs) > 1
    return [
        *_run_comparison_decisions(derived),
        *_cost_decisions(derived, several_runs),
        *_break_even_decisions(derived, several_runs),
        *_crossover_decisions(derived, several_runs),
        *_throughput_decisions(derived, several_runs),
        *_failure_decisions(derived.cells, several_runs),
    ]


__all__ = ["Decision", "decisions", "format_rate", "format_ratio", "format_seconds"]
