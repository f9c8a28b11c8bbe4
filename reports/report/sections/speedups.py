"""Each loop against the reference and each rung against its neighbour, per setting:
the speedup tables and a short answer per setting among the Decisions.

The figures are the core's rows as ``derive`` adds them to each cell (SPEEDUP_COLUMNS:
``ladder_reference`` and ``ladder_neighbours``). Per setting, under one heading: the
fastest loop against the reference on the amortized step (what a user pays per step over
whole epochs) with its interval, the steady step beside it and the reference as Keras
chose it; when training the report's epochs from a cold start changes the answer, that
too; the rungs that compare with the reference only; each rung against the one it
compares with; whether the compiler rung pays its compile back; when Keras compiled the
reference with XLA, the reference against the compiler rung; and the cells that failed,
were skipped or are not equivalent (no decision is drawn from them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import (
    FASTER,
    MISSING,
    RUN_SETTING_KEYS,
    SAME,
    SLOWER,
    UNCLEAR,
    verdict,
)
from tf_loopbench.reports.report.common import (
    VARYING_SETTING_COLUMNS,
    Block,
    Context,
    Decision,
    Heading,
    Paragraph,
    Ratio,
    compiler_rung,
    count,
    epochs_text,
    figures_text,
    format_ratio,
    format_seconds,
    in_words,
    interval,
    keras_choice,
    optional_bool,
    percent,
    setting_heading,
    table,
    varying_setting_keys,
)
from tf_loopbench.reports.report.derived import SPEEDUP_COLUMNS, Derived
from tf_loopbench.reports.rundir import Rung


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


def setting_sentences(derived: Derived, group: pd.DataFrame, several_runs: bool) -> list[Decision]:
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
    epochs = epochs_text(derived.epochs)

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
        text, claim = in_words(best, ref_name, amortized, steady, threshold, noisy)
        if kind == SAME:
            text = (
                f"No loop beats {reference} by more than ±{percent(threshold)}: the fastest, {text}"
            )
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
        text, claim = in_words(loop, ref_name, amortized, steady, threshold, noisy)
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
        text, claim = in_words(
            f"{loop} ({rung.changes})", neighbour, amortized, steady, threshold, noisy
        )
        out.append(Decision(topic, text + ".", claim))

    # Keras compiled the reference with XLA: set it against the compiler rung too
    if ref_xla and compiler is not None and compiler.loop != best:
        loop = compiler.loop
        if loop in usable and reference in usable:
            amortized, steady = against_reference(loop)
            noisy = _noisy(rows, loop, reference)
            text, claim = in_words(loop, ref_name, amortized, steady, threshold, noisy)
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
        & np.logical_and.reduce([table[k] == row[k] for k in RUN_SETTING_KEYS])
    ]
    even = match.iloc[0] if len(match) else None
    figures = figures_text(amortized, steady, kind == SLOWER, noisy)
    compile_text = (
        f"its {format_seconds(float(row['compile_s']))} compile "
        f"({neighbour}: {format_seconds(float(other['compile_s']))})"
    )
    subject = f"{loop} ({rung.changes}) against {neighbour}"
    if kind == FASTER:
        gain, claim = f"{subject}: {percent(amortized.value - 1)} faster per step {figures}", True
        if amortized.value >= 1.5:
            gain = f"{subject}: {format_ratio(amortized.value)} faster per step {figures}"
    elif kind == SLOWER:
        gain, claim = (
            f"{subject}: slower per step, {format_ratio(1 / amortized.value)} its time "
            f"{figures}, so {compile_text} never pays back",
            True,
        )
    elif kind == SAME:
        gain, claim = (
            f"{subject}: within ±{percent(threshold)} per step {figures}, so {compile_text} "
            "buys no practical gain",
            True,
        )
    else:
        gain, claim = (
            f"{subject}: {format_ratio(amortized.value)} the speed per step {figures}"
            + (
                f", an interval that does not clear ±{percent(threshold)}"
                if kind == UNCLEAR
                else ""
            ),
            False,
        )
    if even is not None and kind in (FASTER, UNCLEAR, MISSING):
        point = "; " if kind == FASTER else "; on the point estimate "
        if even["outcome"] == "after":
            epochs = float(even["break_even_epochs"])
            in_epochs = f" ({epochs_text(epochs)})" if np.isfinite(epochs) else ""
            gain += (
                f"{point}{compile_text} pays back after "
                f"{count(even['break_even_steps'], 'step')}{in_epochs}"
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
            f". To train {epochs_text(derived.epochs)} from a cold start (set-up and compile "
            f"included), {loop} takes {format_seconds(mine)} and {neighbour} "
            f"{format_seconds(theirs)}: {paid}"
        )
    return Decision(topic, gain + ".", claim)


def failure_sentences(derived: Derived, several_runs: bool) -> list[Decision]:
    """Cells that did not run, for a report without a ladder (with one, each setting says)."""
    out = []
    for row in derived.cells[derived.cells["status"] != "ok"].to_dict("records"):
        out.append(
            Decision(setting_heading(row, several_runs), _excluded(row) + ".", False, info=True)
        )
    return out


def speedup_table(derived: Derived, several_runs: bool, figure: str) -> pd.DataFrame:
    """Rows: settings; columns: loops; values: speedup against the reference on ``figure``
    [CI], the status, or (the reference's column) what Keras chose for it."""
    cells = derived.cells.copy()
    reference = derived.ladder.reference

    def value(row: dict) -> str:
        if row["status"] != "ok":
            return row["status"]
        if row["loop"] == reference:
            return keras_choice(row) or "1"
        text = interval(*(row[c] for c in SPEEDUP_COLUMNS[("reference", figure)]))
        return f"{text} (not equivalent)" if optional_bool(row.get("equivalent")) is False else text

    cells["value"] = [value(row) for row in cells.to_dict("records")]
    index = (
        ["run", "workload", "device", "batch_size", "width"]
        if several_runs
        else ["workload", "device", "batch_size", "width"]
    )
    index += varying_setting_keys(cells)  # a row per knob setting or strategy
    loops = list(dict.fromkeys(cells["loop"]))
    pivot = cells.pivot_table(index=index, columns="loop", values="value", aggfunc="first")
    pivot = pivot.reindex(columns=[loop for loop in loops if loop in pivot.columns]).reset_index()
    pivot = pivot.rename(
        columns={
            "batch_size": "batch",
            **VARYING_SETTING_COLUMNS,
            reference: f"{reference} (reference)",
        }
    )
    pivot.columns.name = None
    pivot["width"] = pivot["width"].map(lambda w: str(w) if w else "")
    return pivot.fillna("").astype(str)


def sentences(derived: Derived) -> list[Decision]:
    """A short answer per setting along the ladder; without one, the cells that did not run."""
    several_runs = len(derived.run_set.runs) > 1
    if derived.ladder is None:
        return failure_sentences(derived, several_runs)
    groups = derived.cells.groupby(list(RUN_SETTING_KEYS), sort=True)
    return [d for _, group in groups for d in setting_sentences(derived, group, several_runs)]


def blocks(context: Context) -> list[Block]:
    derived = context.derived
    if derived.ladder is None:
        return []
    reference = derived.ladder.reference
    return [
        Heading(2, f"Speedup against {reference}"),
        Paragraph(
            f"Amortized: per step over whole epochs, per-epoch costs included (what a user "
            f"pays); median speedup against {reference} with its 95% CI across processes in "
            f"brackets (>1: faster than {reference}). The {reference} column says how it ran."
        ),
        *table(speedup_table(derived, context.several_runs, "amortized")),
        Paragraph(f"Steady step alone (per-epoch costs left out), against {reference}:"),
        *table(speedup_table(derived, context.several_runs, "steady")),
    ]
