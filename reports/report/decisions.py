"""The "Decisions" of a report: a short answer per setting, each figure with its interval.

What it writes, from ``reports.report.derived.Derived``, along the runs' loop ladder
(every comparison is a loop against the reference, or a rung against the one it
compares with; a run without a ladder gets none of these). Per setting (workload,
device, batch size, width; the run too when there are several), under one heading:

* the fastest loop against the reference, on the amortized step (what a user pays per
  step over whole epochs) with its 95% interval, the steady step beside it, and the
  reference's settings as Keras chose them (``keras_jit_compile``,
  ``keras_steps_per_execution``, whatever loop records them); when training the
  chosen number of epochs from a cold start changes the answer, that too;
* the cost of each rung that compares with the reference only (the ladder's first
  custom loop);
* each rung against the one it compares with (one change at a time);
* whether the ladder's compiler rung (declared by its loop style, ``compiler``; in a
  ladder from before that, the rung whose change says "compil") pays its compile back against its neighbour: break-even
  steps and the time to train the chosen number of epochs;
* when Keras compiled the reference with XLA, the reference against the compiler rung;
* cells that failed, were skipped or are not equivalent (their equal-work loss differs
  from the equivalence reference's): said, and no decision drawn from them.

Then crossovers over batch size and width, and with several runs how each compares
with the first.

A claim stands when its 95% interval (across processes) lies wholly outside the band of
no practical difference (1 +- ``Derived.threshold``, the gate's 5%), or wholly inside it
("within 5%"). A noisy cell is flagged beside the claim: its noise has already widened
the interval, it does not veto the claim. Without an interval (fewer than two
processes) nothing is claimed; :func:`reading_notes` says so once.

Run it::

    python -c "from reports.rundir import load_runs; from reports.report.aggregate import RunSet; \
from tf_loopbench.reports.report.derived import derive; from reports.report.decisions import decisions; \
[print(d.topic, '|', d.text) for d in decisions(derive(RunSet.of(load_runs(['RUN']))))]"
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.report.derived import (
    OVERHEAD_THRESHOLD,
    SETTING_KEYS,
    SPEEDUP_COLUMNS,
    Derived,
)
from tf_loopbench.reports.report.versions import release_decisions
from tf_loopbench.reports.rundir import Ladder, Rung


@dataclass(frozen=True)
class Decision:
    """One generated sentence.

    ``topic`` groups sentences in the report (a setting, "Crossovers", ...);
    ``claim`` is False when the sentence says the data cannot carry a claim;
    ``info`` marks a statement of what happened (a failed cell, a loop left out),
    which is neither a claim nor a missing one.
    """

    topic: str
    text: str
    claim: bool
    info: bool = False


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


def _count(number: float, noun: str) -> str:
    number = int(round(number))
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _epochs(epochs: float) -> str:
    if not np.isfinite(epochs):
        return "n/a"
    text = f"{epochs:.0f}" if epochs >= 10 or float(epochs).is_integer() else f"{epochs:.2g}"
    return f"{text} epoch{'' if text == '1' else 's'}"


def setting_heading(row: Mapping[str, Any], several_runs: bool) -> str:
    """A setting said once: "linear (cpu, batch 4096)", "mlp (cpu, batch 128, width 128)"."""
    parts = [str(row["device"]), f"batch {int(row['batch_size'])}"]
    if int(row["width"]):
        parts.append(f"width {int(row['width'])}")
    if int(row.get("steps_per_call", 1) or 1) != 1:
        parts.append(f"{int(row['steps_per_call'])} steps a call")
    if str(row.get("precision", "float32") or "float32") != "float32":
        parts.append(str(row["precision"]))
    if str(row.get("strategy", "none") or "none") != "none":
        parts.append(str(row["strategy"]))
    where = f"{row['run']}: " if several_runs else ""
    return f"{row['workload']} ({where}{', '.join(parts)})"


def keras_choice(row: Mapping[str, Any]) -> str | None:
    """What Keras chose for a loop that records it: "jit_compile off, steps_per_execution 1";
    None for a loop that records neither (``keras_jit_compile``, ``keras_steps_per_execution``)."""
    jit = optional_bool(row.get("keras_jit_compile"))
    steps = row.get("keras_steps_per_execution")
    steps = float(steps) if isinstance(steps, int | float) and np.isfinite(steps) else None
    parts = []
    if jit is not None:
        parts.append(f"jit_compile {'on' if jit else 'off'}")
    if steps is not None:
        parts.append(f"steps_per_execution {steps:.0f}")
    return ", ".join(parts) or None


def optional_bool(value: Any) -> bool | None:
    """True/False from a CSV cell (bool, "True", 1.0); None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def compiler_rung(ladder: Ladder | None) -> Rung | None:
    """The rung whose one change is the compiler and that compares with a neighbour:
    whether it pays its compile back is a decision of its own."""
    if ladder is None:
        return None
    if any(r.compiler is not None for r in ladder.rungs):  # declared by the loop styles
        return next((r for r in ladder.rungs if r.compiler and r.compares_with), None)
    # a ladder written before rungs declared it: its text says which
    return next(
        (r for r in ladder.rungs if r.compares_with and re.search("compil", r.changes, re.I)),
        None,
    )


# --------------------------------------------------------------------------- one comparison


def verdict(low: float, high: float, threshold: float) -> str:
    """What a speedup's 95% interval [low, high] carries against the band 1 +- threshold:
    "faster" or "slower" (wholly outside it), "same" (wholly inside), "unclear" (it
    reaches into the band from outside), "none" (no interval).

    >>> [verdict(*ci, 0.05) for ci in ((1.1, 1.3), (0.5, 0.9), (0.97, 1.02), (0.9, 1.2))]
    ['faster', 'slower', 'same', 'unclear']
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return "none"
    if low > 1 + threshold:
        return "faster"
    if high < 1 - threshold:
        return "slower"
    if low >= 1 - threshold and high <= 1 + threshold:
        return "same"
    return "unclear"


@dataclass(frozen=True)
class Ratio:
    """A speedup (against time / loop time) with its 95% interval, on one figure."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, row: Mapping[str, Any], kind: str, figure: str) -> Ratio:
        value, low, high = (float(row[c]) for c in SPEEDUP_COLUMNS[(kind, figure)])
        return cls(value, low, high)

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def as_cost(self) -> Ratio:
        """The same ratio the other way round (how many times the time)."""
        return Ratio(1 / self.value, 1 / self.high, 1 / self.low)

    def text(self) -> str:
        if self.has_interval:
            return f"{format_ratio(self.value)}, 95% CI {format_ratio(self.low)}-{format_ratio(self.high)}"
        return format_ratio(self.value)


def _figures(amortized: Ratio, steady: Ratio, cost: bool, noisy: list[str]) -> str:
    """The figures in brackets, "(amortized, 95% CI a-b; steady step s, 95% CI c-d;
    noisy: x)", as costs when ``cost``; the steady step only where it differs."""
    shown = amortized.as_cost() if cost else amortized
    parts = [f"amortized, {_interval_only(shown)}" if shown.has_interval else "amortized"]
    if format_ratio(steady.value) != format_ratio(amortized.value):
        parts.append(f"steady step {(steady.as_cost() if cost else steady).text()}")
    if noisy:
        parts.append(f"noisy: {', '.join(noisy)}")
    return "(" + "; ".join(parts) + ")"


def _interval_only(ratio: Ratio) -> str:
    return f"95% CI {format_ratio(ratio.low)}-{format_ratio(ratio.high)}"


def compare(
    loop: str,
    against: str,
    amortized: Ratio,
    steady: Ratio,
    threshold: float,
    noisy: list[str],
) -> tuple[str, bool]:
    """``loop`` against ``against`` in words, its figures in brackets, and whether that
    is a claim (see :func:`verdict`; decided on the amortized figure)."""
    kind = verdict(amortized.low, amortized.high, threshold)
    band = _percent(threshold)
    slower = amortized.value < 1
    # the figures the way the words put it: "costs 4.8x" or "runs at 0.95x the speed"
    cost = slower and kind in ("slower", "none")
    figures = _figures(amortized, steady, cost, noisy)
    if kind == "same":
        return f"{loop} is within ±{band} of {against} {figures}", True
    if kind == "unclear":
        return (
            f"{loop} runs at {format_ratio(amortized.value)} the speed of {against} {figures}, "
            f"an interval that does not clear ±{band}",
            False,
        )
    if slower:
        times = 1 / amortized.value
        what = (
            f"{loop} costs {format_ratio(times)} {against}"
            if times >= 1.5
            else f"{loop} is {_percent(times - 1)} slower than {against}"
        )
    else:
        what = (
            f"{loop} is {format_ratio(amortized.value)} faster than {against}"
            if amortized.value >= 1.5
            else f"{loop} is {_percent(amortized.value - 1)} faster than {against}"
        )
    return f"{what} {figures}", kind in ("faster", "slower")


# --------------------------------------------------------------------------- one setting


def _noisy(rows: Mapping[str, Mapping[str, Any]], *loops: str) -> list[str]:
    return [loop for loop in loops if bool(rows[loop].get("noisy"))]


def _excluded(row: Mapping[str, Any]) -> str | None:
    """Why no decision is drawn from this cell (failed, skipped, not equivalent), or None."""
    loop = row["loop"]
    if row["status"] != "ok":
        error = row.get("error")
        reason = f": {error}" if isinstance(error, str) and error else ""
        return f"{loop} {row['status']}{reason}. No decision about it"
    if optional_bool(row.get("equivalent")) is False:
        steps = row.get("equal_work_steps")
        after = (
            f"after {steps:.0f} equal steps"
            if isinstance(steps, int | float) and np.isfinite(steps)
            else "after the equal steps"
        )
        reference = row.get("reference_equal_work_loop") or "the equivalence reference"
        tolerance = row.get("equivalence_rtol")
        within = (
            f" (relative tolerance {float(tolerance):g})"
            if isinstance(tolerance, int | float) and np.isfinite(tolerance)
            else ""
        )
        return (
            f"{loop} is not equivalent here: its loss {after} is "
            f"{float(row['equal_work_loss']):.6g}, {reference}'s "
            f"{float(row['reference_equal_work_loss']):.6g}{within}; no decision is drawn from it"
        )
    return None


def _reference_name(reference: str, row: Mapping[str, Any]) -> str:
    choice = keras_choice(row)
    return f"{reference} (Keras: {choice})" if choice else reference


def _setting_decisions(derived: Derived, group: pd.DataFrame, several_runs: bool) -> list[Decision]:
    ladder = derived.ladder
    threshold = derived.threshold
    first = group.iloc[0]
    topic = setting_heading(first, several_runs)
    rows = {row["loop"]: row for row in group.to_dict("records")}
    excluded = {loop: _excluded(row) for loop, row in rows.items()}
    usable = {loop for loop, why in excluded.items() if why is None}
    out: list[Decision] = []
    reference = ladder.reference
    compiler = compiler_rung(ladder)
    ref_row = rows.get(reference)
    ref_name = _reference_name(reference, ref_row) if ref_row is not None else reference
    ref_xla = ref_row is not None and optional_bool(ref_row.get("keras_jit_compile")) is True
    trained = {loop: float(rows[loop].get("time_to_train_s", math.nan)) for loop in usable}
    epochs = _epochs(derived.epochs)

    def against_reference(loop: str) -> tuple[Ratio, Ratio]:
        return (
            Ratio.of(rows[loop], "reference", "amortized"),
            Ratio.of(rows[loop], "reference", "steady"),
        )

    # the fastest loop against the reference
    best = None
    if reference in usable:
        candidates = [
            loop
            for loop in ladder.order(usable)
            if loop != reference and np.isfinite(against_reference(loop)[0].value)
        ]
        if candidates:
            best = max(candidates, key=lambda loop: against_reference(loop)[0].value)
    if best is not None:
        amortized, steady = against_reference(best)
        kind = verdict(amortized.low, amortized.high, threshold)
        noisy = _noisy(rows, best, reference)
        text, claim = compare(best, ref_name, amortized, steady, threshold, noisy)
        if kind == "same":
            text = f"No loop beats {reference} by more than ±{_percent(threshold)}: the fastest, {text}"
        elif amortized.value < 1:
            text = f"{reference} is the fastest; the closest loop: {text}"
        else:
            text = f"Fastest loop: {text}"
        if best == (compiler.loop if compiler else None) and ref_xla:
            text += (
                f"; Keras compiled {reference} with XLA here, so this is compiler against compiler"
            )
        quickest = min(
            (loop for loop in usable if np.isfinite(trained[loop])),
            key=lambda loop: trained[loop],
            default=None,
        )
        if quickest is not None and quickest != best and np.isfinite(trained.get(best, math.nan)):
            text += (
                f". To train {epochs} from a cold start (set-up and compile included), "
                f"{quickest} is quicker: {format_seconds(trained[quickest])}, against "
                f"{format_seconds(trained[best])} with {best}"
                + (
                    f" and {format_seconds(trained[reference])} with {reference}"
                    if quickest != reference
                    else ""
                )
            )
        out.append(Decision(topic, text + ".", claim))

    # rungs compared with the reference only (the ladder's first custom loop)
    for rung in ladder.rungs:
        loop = rung.loop
        if rung.reference or rung.compares_with or loop == best:
            continue
        if loop not in usable or reference not in usable:
            continue
        amortized, steady = against_reference(loop)
        noisy = _noisy(rows, loop, reference)
        text, claim = compare(loop, ref_name, amortized, steady, threshold, noisy)
        out.append(Decision(topic, text + ".", claim))

    # each rung against the one it compares with: one change at a time
    for rung in ladder.rungs:
        loop, neighbour = rung.loop, rung.compares_with
        if not neighbour or loop not in usable or neighbour not in usable:
            continue
        amortized = Ratio.of(rows[loop], "neighbour", "amortized")
        steady = Ratio.of(rows[loop], "neighbour", "steady")
        noisy = _noisy(rows, loop, neighbour)
        if compiler is not None and loop == compiler.loop:
            out.append(_pays_back(derived, rows, rung, amortized, steady, noisy, topic))
            continue
        text, claim = compare(
            f"{loop} ({rung.changes})", neighbour, amortized, steady, threshold, noisy
        )
        out.append(Decision(topic, text + ".", claim))

    # Keras compiled the reference with XLA: set it against the compiler rung too
    if ref_xla and compiler is not None and compiler.loop != best:
        loop = compiler.loop
        if loop in usable and reference in usable:
            amortized, steady = against_reference(loop)
            noisy = _noisy(rows, loop, reference)
            text, claim = compare(loop, ref_name, amortized, steady, threshold, noisy)
            out.append(
                Decision(
                    topic,
                    f"Keras compiled {reference} with XLA here, so it is also set against "
                    f"{loop}, the ladder's compiler rung: {text}.",
                    claim,
                )
            )

    for loop in ladder.order(rows):
        why = excluded[loop]
        if why is not None:
            out.append(Decision(topic, why + ".", False, info=True))
    return out


def _pays_back(
    derived: Derived,
    rows: Mapping[str, Mapping[str, Any]],
    rung: Rung,
    amortized: Ratio,
    steady: Ratio,
    noisy: list[str],
    topic: str,
) -> Decision:
    """Does the compiler rung pay its compile back against its neighbour, and at the
    chosen number of epochs?"""
    loop, neighbour = rung.loop, rung.compares_with
    row, other = rows[loop], rows[neighbour]
    threshold = derived.threshold
    kind = verdict(amortized.low, amortized.high, threshold)
    table = derived.break_even
    match = table[
        (table["loop"] == loop)
        & (table["reference"] == neighbour)
        & np.logical_and.reduce([table[k] == row[k] for k in SETTING_KEYS])
    ]
    even = match.iloc[0] if len(match) else None
    figures = _figures(amortized, steady, kind == "slower", noisy)
    compile_text = (
        f"its {format_seconds(float(row['compile_s']))} compile "
        f"({neighbour}: {format_seconds(float(other['compile_s']))})"
    )
    subject = f"{loop} ({rung.changes}) against {neighbour}"
    if kind == "faster":
        gain, claim = f"{subject}: {_percent(amortized.value - 1)} faster per step {figures}", True
        if amortized.value >= 1.5:
            gain = f"{subject}: {format_ratio(amortized.value)} faster per step {figures}"
    elif kind == "slower":
        gain, claim = (
            f"{subject}: slower per step, {format_ratio(1 / amortized.value)} its time "
            f"{figures}, so {compile_text} never pays back",
            True,
        )
    elif kind == "same":
        gain, claim = (
            f"{subject}: within ±{_percent(threshold)} per step {figures}, so {compile_text} "
            "buys no practical gain",
            True,
        )
    else:
        gain, claim = (
            f"{subject}: {format_ratio(amortized.value)} the speed per step {figures}"
            + (
                f", an interval that does not clear ±{_percent(threshold)}"
                if kind == "unclear"
                else ""
            ),
            False,
        )
    if even is not None and kind in ("faster", "unclear", "none"):
        point = "; " if kind == "faster" else "; on the point estimate "
        if even["outcome"] == "after":
            epochs = float(even["break_even_epochs"])
            in_epochs = f" ({_epochs(epochs)})" if np.isfinite(epochs) else ""
            gain += (
                f"{point}{compile_text} pays back after "
                f"{_count(even['break_even_steps'], 'step')}{in_epochs}"
            )
        elif even["outcome"] == "immediately":
            gain += f"{point}it is ahead from the first step ({compile_text})"
        elif even["outcome"] == "never":
            gain += f"{point}{compile_text} never pays back"
    mine, theirs = (
        float(row.get("time_to_train_s", math.nan)),
        float(other.get("time_to_train_s", math.nan)),
    )
    if np.isfinite(mine) and np.isfinite(theirs):
        paid = "paid back" if mine < theirs else "not paid back"
        gain += (
            f". To train {_epochs(derived.epochs)} from a cold start (set-up and compile "
            f"included), {loop} takes {format_seconds(mine)} and {neighbour} "
            f"{format_seconds(theirs)}: {paid}"
        )
    return Decision(topic, gain + ".", claim)


# --------------------------------------------------------------------------- other topics


def _failure_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    """Cells that did not run, for a report without a ladder (with one, each setting says)."""
    out = []
    for row in derived.cells[derived.cells["status"] != "ok"].to_dict("records"):
        out.append(
            Decision(setting_heading(row, several_runs), _excluded(row) + ".", False, info=True)
        )
    return out


def _crossover_decisions(derived: Derived, several_runs: bool) -> list[Decision]:
    cells = derived.cells.set_index(list(SETTING_KEYS) + ["loop"])
    out = []
    threshold = _percent(OVERHEAD_THRESHOLD)
    steady_reference = SPEEDUP_COLUMNS[("reference", "steady")]
    steady_neighbour = SPEEDUP_COLUMNS[("neighbour", "steady")]
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
        place = f"On {row['run']}, {row['device']}" if several_runs else f"On {row['device']}"
        # the grid point the sentence rests on: the crossover, or the largest measured
        deciding = int(row["crossover"]) if row["outcome"] != "never" else int(grid[-1])
        batch = deciding if row["axis"] == "batch_size" else row["fixed_value"]
        width = deciding if row["axis"] == "width" else row["fixed_value"]
        key = (row["run"], row["workload"], row["device"], batch, width)
        key += (row["steps_per_call"], row["precision"], row["strategy"])
        cell, ref_cell = cells.loc[(*key, loop)], cells.loc[(*key, reference)]
        if change:  # the rung's speedup over its neighbour is the neighbour's overhead + 1
            _, speedup_low, speedup_high = (float(ref_cell[c]) for c in steady_neighbour)
            overhead_low, overhead_high = speedup_low - 1, speedup_high - 1
        else:
            _, speedup_low, speedup_high = (float(cell[c]) for c in steady_reference)
            overhead_low, overhead_high = 1 / speedup_high - 1, 1 / speedup_low - 1
        has_ci = bool(np.isfinite(overhead_low) and np.isfinite(overhead_high))
        ci = (
            f"95% CI {_percent(overhead_low, True)} to {_percent(overhead_high, True)}"
            if has_ci
            else "no interval"
        )
        if row["outcome"] == "never":
            last = f"{deciding}: {_percent(row['overheads'][-1], True)}"
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
            at = f"overhead there {_percent(row['overhead_at_crossover'], True)}, steady step, {ci}"
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
                info=True,
            )
        )
    table = derived.run_comparison
    for (baseline, run, workload), group in table.groupby(
        ["baseline", "run", "workload"], sort=True
    ):
        ratios = group["speedup"].to_numpy(dtype=float)
        beyond = [
            verdict(low, high, derived.threshold) in ("faster", "slower")
            for low, high in zip(group["speedup_ci_low"], group["speedup_ci_high"], strict=True)
        ]
        median = float(np.median(ratios))
        direction = "faster" if median >= 1 else "slower"
        factor = median if median >= 1 else 1 / median
        text = (
            f"{run} against {baseline} on {workload}, steady step: median over {len(group)} "
            f"matching cells {format_ratio(factor)} {direction} (range "
            f"{format_ratio(ratios.min())}-{format_ratio(ratios.max())} the speed); "
            f"{sum(beyond)} of {len(group)} cells differ beyond ±{_percent(derived.threshold)} "
            "with their 95% interval"
        )
        out.append(Decision("Between runs", text + ".", bool(sum(beyond))))
    return out


def reading_notes(derived: Derived) -> list[str]:
    """What the decisions rest on, said once above them: the figure, the claim rule, and
    what the data lacks (intervals, per-epoch costs, equal-work losses)."""
    cells = derived.cells
    ok = cells[cells["status"] == "ok"]
    band = _percent(derived.threshold)
    notes = []
    if derived.ladder is not None:
        notes.append(
            f"x {derived.ladder.reference} is per step over whole epochs (amortized: the steady "
            "step plus per-epoch costs such as Keras's epoch end, spread over an epoch's steps); "
            "the steady step alone is given beside it where it differs. "
            f"A claim stands when its 95% interval across processes lies wholly outside ±{band} "
            "(no practical difference, the regression gate's threshold), or wholly inside it; "
            "a noisy cell's interval is wider and it is flagged, it does not veto a claim."
        )
    few = ok[~(pd.to_numeric(ok["n_processes"], errors="coerce") >= 2)]
    if len(few) and len(few) == len(ok):
        notes.append(
            "Every cell ran one worker process: there is no interval (intervals come from "
            "processes only), so nothing below is claimed; the figures are point estimates "
            "(run with --processes 5 or more for claims)."
        )
    elif len(few):
        notes.append(
            f"{len(few)} of {len(ok)} cells ran one worker process: they have no interval, so "
            "nothing about them is claimed."
        )
    if len(ok) and not ok["amortized_recorded"].any():
        notes.append(
            "These runs recorded no per-epoch costs (made before tf-loopbench did): the "
            "amortized figures are the steady step."
        )
    if len(ok) and ok["equivalent"].map(optional_bool).isna().all():
        notes.append(
            "These runs recorded no equal-work losses (made before tf-loopbench did): whether "
            "the loops trained alike is not checked here."
        )
    return notes


def decisions(derived: Derived) -> list[Decision]:
    """Every decision sentence of a report, grouped by topic in report order: one topic per
    setting, then crossovers; with several runs, how they compare first.

    Example::

        for decision in decisions(derive(RunSet.of(load_runs(["results/RUN"])))):
            print(("" if decision.claim else "(no claim) ") + decision.text)
    """
    several_runs = len(derived.run_set.runs) > 1
    out = [*_run_comparison_decisions(derived), *release_decisions(derived)]
    if derived.ladder is None:
        return [*out, *_failure_decisions(derived, several_runs)]
    for _, group in derived.cells.groupby(list(SETTING_KEYS), sort=True):
        out += _setting_decisions(derived, group, several_runs)
    from tf_loopbench.reports.report.knobs import (
        knob_decisions,  # across knob settings; it reads this module
    )

    return [*out, *_crossover_decisions(derived, several_runs), *knob_decisions(derived)]


__all__ = [
    "Decision",
    "compare",
    "compiler_rung",
    "decisions",
    "format_rate",
    "format_ratio",
    "format_seconds",
    "keras_choice",
    "reading_notes",
    "setting_heading",
    "verdict",
]
