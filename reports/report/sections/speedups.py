"""Each loop against the reference and each rung against its neighbour, per setting: the
speedup tables and the Decisions (SPEEDUP_COLUMNS); cells that failed, were skipped or are
not equivalent are named, no decision drawn from them."""

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
    excluded,
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


def setting_sentences(derived: Derived, group: pd.DataFrame, several_runs: bool) -> list[Decision]:
    ladder, threshold = derived.ladder, derived.threshold
    topic = setting_heading(group.iloc[0], several_runs)
    rows = {row["loop"]: row for row in group.to_dict("records")}
    why_not = {loop: excluded(row) for loop, row in rows.items()}
    usable = {loop for loop, why in why_not.items() if why is None}
    reference, compiler = ladder.reference, compiler_rung(ladder)
    ref_row = rows.get(reference)
    choice = keras_choice(ref_row) if ref_row is not None else None
    ref_name = f"{reference} (Keras: {choice})" if choice else reference
    ref_xla = ref_row is not None and optional_bool(ref_row.get("keras_jit_compile")) is True
    trained = {loop: float(rows[loop].get("time_to_train_s", math.nan)) for loop in usable}

    def said(loop: str, other: str, kind: str = "reference", name: str = "") -> tuple[str, bool]:
        """``loop`` against ``other`` (the reference, or the rung it compares with)."""
        amortized, steady = (Ratio.of(rows[loop], kind, f) for f in ("amortized", "steady"))
        against = ref_name if kind == "reference" else other
        noisy = _noisy(rows, loop, other)
        return in_words(name or loop, against, amortized, steady, threshold, noisy)

    def speedup(loop: str) -> Ratio:
        return Ratio.of(rows[loop], "reference", "amortized")

    out: list[Decision] = []
    # the fastest loop against the reference
    others = ladder.order(usable - {reference}) if reference in usable else []
    candidates = [loop for loop in others if np.isfinite(speedup(loop).value)]
    best = max(candidates, key=lambda loop: speedup(loop).value, default=None)
    if best is not None:
        amortized = speedup(best)
        text, claim = said(best, reference)
        if verdict(amortized.low, amortized.high, threshold) == SAME:
            beats = f"No loop beats {reference} by more than ±{percent(threshold)}"
            text = f"{beats}: the fastest, {text}"
        elif amortized.value < 1:
            text = f"{reference} is the fastest; the closest loop: {text}"
        else:
            text = f"Fastest loop: {text}"
        if best == (compiler.loop if compiler else None) and ref_xla:
            text += (
                f"; Keras compiled {reference} with XLA here, so this is compiler against compiler"
            )
        finite = [loop for loop in usable if np.isfinite(trained[loop])]
        quickest = min(finite, key=lambda loop: trained[loop], default=None)
        if quickest not in (None, best) and np.isfinite(trained.get(best, math.nan)):
            text += (
                f". To train {epochs_text(derived.epochs)} from a cold start (set-up and compile "
                f"included), {quickest} is quicker: {format_seconds(trained[quickest])}, against "
                f"{format_seconds(trained[best])} with {best}"
            )
            if quickest != reference:
                text += f" and {format_seconds(trained[reference])} with {reference}"
        out.append(Decision(topic, text + ".", claim))

    # rungs compared with the reference only (the ladder's first custom loop)
    for rung in ladder.rungs:
        loop = rung.loop
        alone = not (rung.reference or rung.compares_with or loop == best)
        if alone and {loop, reference} <= usable:
            text, claim = said(loop, reference)
            out.append(Decision(topic, text + ".", claim))

    # each rung against the one it compares with: one change at a time
    for rung in ladder.rungs:
        loop, neighbour = rung.loop, rung.compares_with
        if not neighbour or not {loop, neighbour} <= usable:
            continue
        if compiler is not None and loop == compiler.loop:
            out.append(_pays_back(derived, rows, rung, topic))
            continue
        text, claim = said(loop, neighbour, "neighbour", f"{loop} ({rung.changes})")
        out.append(Decision(topic, text + ".", claim))

    # Keras compiled the reference with XLA: set it against the compiler rung too
    also = ref_xla and compiler is not None and compiler.loop != best
    if also and {compiler.loop, reference} <= usable:
        text, claim = said(compiler.loop, reference)
        text = (
            f"Keras compiled {reference} with XLA here, so it is also set against "
            f"{compiler.loop}, the ladder's compiler rung: {text}"
        )
        out.append(Decision(topic, text + ".", claim))
    out += [
        Decision(topic, why_not[loop] + ".", False, info=True)
        for loop in ladder.order(rows)
        if why_not[loop]
    ]
    return out


def _pays_back(derived: Derived, rows: Mapping[str, Mapping], rung: Rung, topic: str) -> Decision:
    """Does the compiler rung pay its compile back against its neighbour, and in the epochs?"""
    loop, neighbour = rung.loop, rung.compares_with
    row, other = rows[loop], rows[neighbour]
    amortized, steady = (Ratio.of(row, "neighbour", f) for f in ("amortized", "steady"))
    threshold = derived.threshold
    kind = verdict(amortized.low, amortized.high, threshold)
    table, cell = derived.break_even, {k: row[k] for k in RUN_SETTING_KEYS}
    keys = {"loop": loop, "reference": neighbour, **cell}
    match = table[np.logical_and.reduce([table[k] == value for k, value in keys.items()])]
    even = match.iloc[0] if len(match) else None
    figures = figures_text(amortized, steady, kind == SLOWER, _noisy(rows, loop, neighbour))
    compile_text = (
        f"its {format_seconds(float(row['compile_s']))} compile "
        f"({neighbour}: {format_seconds(float(other['compile_s']))})"
    )
    subject = f"{loop} ({rung.changes}) against {neighbour}"
    value, band = amortized.value, percent(threshold)
    faster = format_ratio(value) if value >= 1.5 else percent(value - 1)
    cost = format_ratio(1 / value) if value else "n/a"
    gain = {
        FASTER: f"{subject}: {faster} faster per step {figures}",
        SLOWER: f"{subject}: slower per step, {cost} its time {figures}, so {compile_text} "
        "never pays back",
        SAME: f"{subject}: within ±{band} per step {figures}, so {compile_text} buys no "
        "practical gain",
    }.get(kind, f"{subject}: {format_ratio(value)} the speed per step {figures}")
    if kind == UNCLEAR:
        gain += f", an interval that does not clear ±{band}"
    claim = kind in (FASTER, SLOWER, SAME)
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
    mine, theirs = (float(r.get("time_to_train_s", math.nan)) for r in (row, other))
    if np.isfinite(mine) and np.isfinite(theirs):
        paid = "paid back" if mine < theirs else "not paid back"
        gain += (
            f". To train {epochs_text(derived.epochs)} from a cold start (set-up and compile "
            f"included), {loop} takes {format_seconds(mine)} and {neighbour} "
            f"{format_seconds(theirs)}: {paid}"
        )
    return Decision(topic, gain + ".", claim)


def loop_table(frame: pd.DataFrame, several_runs: bool, keys, loops, names=()) -> pd.DataFrame:
    """Rows: settings, with the knob ``keys``; columns: ``loops`` (renamed by ``names``);
    values: the rows' ``value``. The speedup tables and the knob tables."""
    index = ["run"] if several_runs else []
    index += ["workload", "device", "batch_size", "width", *keys]
    pivot = frame.pivot_table(index=index, columns="loop", values="value", aggfunc="first")
    pivot = pivot.reindex(columns=[loop for loop in loops if loop in pivot.columns]).reset_index()
    pivot = pivot.rename(columns={"batch_size": "batch", **VARYING_SETTING_COLUMNS, **dict(names)})
    pivot.columns.name = None
    pivot["width"] = pivot["width"].map(lambda w: str(w) if w else "")
    return pivot.fillna("").astype(str)


def speedup_table(derived: Derived, several_runs: bool, figure: str) -> pd.DataFrame:
    """Rows: settings; columns: loops; values: speedup against the reference on ``figure``
    [CI], the status, or (the reference's column) what Keras chose for it."""
    reference = derived.ladder.reference

    def value(row: dict) -> str:
        if row["status"] != "ok":
            return row["status"]
        if row["loop"] == reference:
            return keras_choice(row) or "1"
        text = interval(*(row[c] for c in SPEEDUP_COLUMNS[("reference", figure)]))
        return f"{text} (not equivalent)" if optional_bool(row.get("equivalent")) is False else text

    cells = derived.cells
    cells = cells.assign(value=[value(row) for row in cells.to_dict("records")])
    loops = dict.fromkeys(cells["loop"])
    names = {reference: f"{reference} (reference)"}
    return loop_table(cells, several_runs, varying_setting_keys(cells), loops, names)


def sentences(derived: Derived) -> list[Decision]:
    """A short answer per setting along the ladder; without one, the cells that did not run."""
    several_runs = len(derived.run_set.runs) > 1
    if derived.ladder is None:  # the cells that did not run (with a ladder, each setting says)
        failed = derived.cells[derived.cells["status"] != "ok"].to_dict("records")
        return [
            Decision(setting_heading(row, several_runs), excluded(row) + ".", False, info=True)
            for row in failed
        ]
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
            f"pays); median speedup against {reference} with its interval across processes in "
            f"brackets (>1: faster than {reference}). The {reference} column says how it ran."
        ),
        *table(speedup_table(derived, context.several_runs, "amortized")),
        Paragraph(f"Steady step alone (per-epoch costs left out), against {reference}:"),
        *table(speedup_table(derived, context.several_runs, "steady")),
    ]
