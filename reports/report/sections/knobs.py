"""The report across settings of a knob: steps per call, precision, the reference's compiler
(docs/methodology.md, "How the report reads the knobs"), every ratio the core's row. Example::

    knob_tables(derive(RunSet.of(load_runs(["RUN"])))).ratios
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import pandas as pd
from tf_loopbench.reports.compare import (
    CELL_KEY_DEFAULTS,
    COMPARISON_COLUMNS,
    FASTER,
    FIGURES,
    GROUP_KEYS,
    RUN_SETTING_KEYS,
    SAME,
    SLOWER,
    against,
    against_each,
    compare,
    knob_base,
    verdict,
)
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.common import (
    VARYING_SETTING_COLUMNS,
    Block,
    Context,
    Decision,
    Heading,
    Paragraph,
    Ratio,
    compiler_rung,
    in_words,
    interval,
    optional_bool,
    setting_heading,
    table,
)
from tf_loopbench.reports.report.derived import Derived, loop_order
from tf_loopbench.reports.report.plots import usable
from tf_loopbench.reports.report.sections.speedups import loop_table
from tf_loopbench.reports.rundir import Ladder

#: The knob axes this section compares across.
STEPS, PRECISION = "steps_per_call", "precision"
BASE_PRECISION = "float32"
#: fit_jit keys of a reference cell that ran with / without XLA (loops/knobs.py fit_jit_key).
XLA_ON = ("on", "auto:on")
XLA_OFF = ("off", "auto:off")
#: Carried beside each side of a ratio: whether the cell is noisy, the reference's compiler (fit_jit).
CARRY = ("noisy", "fit_jit")


@dataclass(frozen=True)
class KnobTables:
    """The core's rows across knob settings, ``kind`` and ``against_<key>`` for every key."""

    ratios: pd.DataFrame
    ladder: Ladder | None

    def of(self, kind: str, figure: str = "amortized") -> pd.DataFrame:
        table = self.ratios
        return table[(table["kind"] == kind) & (table["figure"] == figure)]


def knob_groups(ok: pd.DataFrame, axis: str) -> Iterable[tuple[pd.DataFrame, list]]:
    """Per setting without ``axis`` measured at two values of it or more: (cells, values)."""
    fixed = [key for key in RUN_SETTING_KEYS if key != axis]
    for _, group in ok.groupby(fixed, sort=True, dropna=False):
        values = sorted(group[axis].unique())
        if len(values) >= 2:
            yield group, values


def graph_rung(ladder: Ladder | None) -> str | None:
    """The ladder's first graph-mode rung: the one that compares with the bottom custom loop."""
    if ladder is None:
        return None
    bottom = {r.loop for r in ladder.rungs if r.compares_with is None and not r.reference}
    return next((r.loop for r in ladder.rungs if r.compares_with in bottom), None)


def comparisons(ok: pd.DataFrame, ladder: Ladder | None) -> list[tuple]:
    """(kind, cells, the key(s) that vary, the core's rule) of every ratio drawn here. Kinds:
    ``steps_own`` a loop at K against itself at the smallest K, ``steps_same_k`` against
    the reference at the same K, ``steps_fit_k`` a loop at the smallest K against the
    reference at K, ``precision`` against itself in float32, ``fit_compiler`` a rung
    against the reference with the same compiler setting."""
    reference = ladder.reference if ladder is not None else None
    found = []
    for group, values in knob_groups(ok, STEPS):
        base = values[0]  # the smallest K of the setting, whatever the loop
        found.append(("steps_own", group, STEPS, against(base)))
        if reference is None:
            continue
        found.append(("steps_same_k", group, "loop", against(reference)))
        loops = [loop for loop in dict.fromkeys(group["loop"]) if loop != reference]
        user = [((loop, base), (reference, k)) for loop in loops for k in values]
        found.append(("steps_fit_k", group, ("loop", STEPS), against_each(user)))
    for group, _ in knob_groups(ok, PRECISION):
        found.append(("precision", group, PRECISION, knob_base(PRECISION)))
    compiler, graph = compiler_rung(ladder), graph_rung(ladder)
    if compiler is not None and "fit_jit" in ok:
        for _, group in ok.groupby(list(RUN_SETTING_KEYS), sort=True, dropna=False):
            jit = group["fit_jit"].astype(str)
            fit_on = group.loc[jit.isin(XLA_ON), "loop"]
            fit_off = group.loc[jit.isin(XLA_OFF), "loop"]
            if fit_on.empty:  # without XLA against the graph rung: the setting's own decision
                continue
            pairs = [(compiler.loop, fit_on.iloc[0]), *((graph, off) for off in fit_off[:1])]
            found.append(("fit_compiler", group, "loop", against_each(pairs)))
    return found


def knob_ratios(run_set: RunSet) -> KnobTables:
    """Every ratio across knob settings of ``run_set``, on the amortized and the steady step."""
    parts, options = [], {"samples": run_set.processes, "keys": GROUP_KEYS, "carry": CARRY}
    for figure in FIGURES:
        for kind, cells, vary, rule in comparisons(usable(run_set.cells), run_set.ladder):
            rows = compare(cells, vary, rule, figure=figure, **options)
            for key in GROUP_KEYS:  # the keys both cells share, said on both sides
                if f"against_{key}" not in rows:
                    rows[f"against_{key}"] = rows[key]
            parts.append(rows.assign(kind=kind).reset_index(drop=True))
    columns = ["kind", *GROUP_KEYS, *(f"against_{k}" for k in GROUP_KEYS)]
    columns += [f"{side}{c}" for c in CARRY for side in ("", "against_")]
    columns += COMPARISON_COLUMNS
    ratios = (
        pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    )
    return KnobTables(ratios, run_set.ladder)


def knob_tables(derived: Derived) -> KnobTables:
    """The report's knob ratios, computed once: ``knob_tables(derived).of("steps_fit_k")``."""
    return derived.once("knobs", lambda: knob_ratios(derived.run_set))


# --------------------------------------------------------------------------- wording


def _calls(k: int) -> str:
    return "one step a call" if int(k) == 1 else f"{int(k)} steps a call"


def _heading(row: Mapping[str, Any], several_runs: bool, without: str) -> str:
    """The setting without the knob ``without`` ("linear (cpu, batch 32, mixed_bfloat16)")."""
    return setting_heading({**row, without: CELL_KEY_DEFAULTS[without]}, several_runs)


def _ratios(tables: KnobTables, kind: str) -> pd.DataFrame:
    """The ``kind`` ratios, one row per pair, the steady figure's beside the amortized."""
    steady = tables.of(kind, "steady")[["ratio", "ci_low", "ci_high"]].add_prefix("steady_")
    return tables.of(kind).reset_index(drop=True).join(steady.reset_index(drop=True))


def _words(row: Mapping[str, Any], names: Sequence[str], threshold: float, said=None):
    """``in_words`` of a ratio row, its cells said as ``said`` (else ``names``)."""
    flags = (row["noisy"], row["against_noisy"])
    noisy = [n for n, flag in zip(names, flags, strict=True) if optional_bool(flag)]
    amortized, steady = Ratio.row(row), Ratio.row(row, "steady_")
    return in_words(*(said or names), amortized, steady, threshold, noisy)


def _deciding(rows: Sequence[Mapping[str, Any]], threshold: float) -> tuple[Mapping, bool]:
    """(The first row from which on the loop is no longer faster, True), else (last row, False)."""
    caught = [verdict(r["ci_low"], r["ci_high"], threshold) in (SAME, SLOWER) for r in rows]
    tail = len(list(takewhile(bool, reversed(caught))))
    return (rows[-tail], True) if tail else (rows[-1], False)


def _decide_steps(tables: KnobTables, several_runs: bool, threshold: float) -> list[Decision]:
    """Per setting and ladder loop run at several K: the user's question, then equal K."""
    ladder = tables.ladder
    fixed = [key for key in RUN_SETTING_KEYS if key != STEPS]
    several_k = tables.of("steps_own").groupby(fixed, dropna=False)["loop"].agg(set)
    same_k = dict(iter(_ratios(tables, "steps_same_k").groupby([*fixed, "loop"], dropna=False)))
    out = []
    for setting, group in _ratios(tables, "steps_fit_k").groupby(fixed, sort=True, dropna=False):
        heading = _heading(dict(zip(fixed, setting, strict=True)), several_runs, STEPS)
        for loop in loop_order(ladder, group["loop"]):
            # a second reference cell (jit on) is not on the ladder: see its compiler
            if loop not in ladder.loops or loop not in several_k.get(setting, ()):
                continue
            rows = group[group["loop"] == loop].sort_values(f"against_{STEPS}")
            equal = same_k.get((*setting, loop), rows.iloc[:0]).sort_values(STEPS)
            for kind, found in (("steps_fit_k", rows), ("steps_same_k", equal)):
                if len(found) >= 2:
                    rows = found.to_dict("records")
                    out.append(_steps_decision(kind, rows, heading, loop, ladder, threshold))
    return out


ACROSS = (
    "across settings: {reference} at K={k} against {loop} at K={mine}, which differ in the loop "
    "and in K; K measured: {ks}"
)
EQUAL = "At equal steps per call on {heading} (the loop the one difference)"
#: The steps-per-call sentences: ``steps_fit_k`` the reference at K against a loop at the
#: smallest K, ``steps_same_k`` at equal K; by what the rows (in K order) show: the loop not
#: faster from the first K, from a later K, or up to the last (a claim, or "open").
STEPS_WORDING = {
    "steps_fit_k": {
        "first": "On {heading}, {reference} needs no more steps a call to keep up with {loop}: "
        "at K={mine}, {text} (K measured: {ks})",
        "from": "On {heading}, raising {reference}'s steps_per_execution to {k} closes the gap "
        "to {loop} at {calls}: from K={k} on, {reference} is at most {band} slower than it, or "
        "faster. At K={k}, {text} (" + ACROSS + ")",
        "never": "On {heading}, raising {reference}'s steps_per_execution up to {k} does not "
        "close the gap to {loop} at {calls}: {text} (" + ACROSS + ")",
        "open": "On {heading}, raising {reference}'s steps_per_execution up to {k} is not shown "
        "to close the gap to {loop} at {calls} (no claim either way): {text} (" + ACROSS + ")",
    },
    "steps_same_k": {
        "first": EQUAL + ", {loop} is not faster than {reference} beyond {band} at any K: {text}",
        "from": EQUAL + ", the gap between {reference} and {loop} closes from K={k} on "
        "({first_text}): {text}",
        "never": EQUAL + ", {loop} stays ahead of {reference} up to K={k}: {first_text}; {text}",
        "open": EQUAL + ", whether {reference} catches up with {loop} by K={k} is not shown (no "
        "claim either way): {first_text}; {text}",
    },
}


def _steps_decision(kind: str, rows, heading: str, loop: str, ladder: Ladder, threshold: float):
    """From which K on is ``loop`` no longer faster than the reference (``kind``'s rows)?"""
    reference = ladder.reference
    theirs = f"against_{STEPS}" if kind == "steps_fit_k" else STEPS
    row, found = _deciding(rows, threshold)
    mine, k, first_k = int(row[STEPS]), int(row[theirs]), int(rows[0][theirs])
    names = (f"{loop} at K={mine}", f"{reference} at K={k}")
    jit = str(row.get("against_fit_jit") or "")
    state = "on" if jit in XLA_ON else "off" if jit in XLA_OFF else ""
    compiler = f", jit_compile {state}" if state else ""
    said = (f"{names[0]} ({_calls(mine)})", f"{names[1]} (steps_per_execution={k}{compiler})")
    text, claim = _words(row, names, threshold, said if kind == "steps_fit_k" else None)
    first = (f"{loop} at K={int(rows[0][STEPS])}", f"{reference} at K={first_k}")
    if found:
        case = "first" if k == first_k else "from"
    else:
        claim = verdict(row["ci_low"], row["ci_high"], threshold) == FASTER
        case = "never" if claim else "open"
    sentence = STEPS_WORDING[kind][case].format(
        heading=heading,
        loop=loop,
        reference=reference,
        mine=mine,
        k=k,
        ks=", ".join(str(int(r[theirs])) for r in rows),
        calls=_calls(mine),
        band=f"{round(threshold * 100)}%",
        text=text,
        first_text=_words(rows[0], first, threshold)[0],
    )
    return Decision("Steps per call", sentence + ".", claim)


def _decide_precision(tables: KnobTables, several_runs: bool, threshold: float) -> list[Decision]:
    fixed = [key for key in RUN_SETTING_KEYS if key != PRECISION]
    ordered = _ratios(tables, "precision").sort_values([*fixed, PRECISION], kind="stable")
    out = []
    for row in ordered.to_dict("records"):
        loop, precision = row["loop"], row[PRECISION]
        names = (f"{loop} in {precision}", f"{loop} in {BASE_PRECISION}")
        text, claim = _words(row, names, threshold)
        heading = _heading(row, several_runs, PRECISION)
        out.append(Decision("Precision", f"On {heading}, {text}.", claim))
    return out


def _decide_compiler(tables: KnobTables, several_runs: bool, threshold: float) -> list[Decision]:
    ladder = tables.ladder
    compiler = compiler_rung(ladder)
    out = []
    for row in _ratios(tables, "fit_compiler").to_dict("records"):
        jit = str(row["against_fit_jit"])
        chosen = "Keras's choice" if jit.startswith("auto") else f"asked for with fit_jit {jit}"
        compiled = jit in XLA_ON
        reference = f"{ladder.reference} (jit_compile {'on' if compiled else 'off'}, {chosen})"
        change = (
            "the loop around the same XLA compiler"
            if compiled and compiler is not None and row["loop"] == compiler.loop
            else "the loop, neither compiled by XLA"
        )
        names = (row["loop"], row["against_loop"])
        text, claim = _words(row, names, threshold, (row["loop"], reference))
        heading = setting_heading(row, several_runs)
        sentence = f"On {heading} (one change: {change}), {text}."
        out.append(Decision(f"{ladder.reference}'s compiler", sentence, claim))
    return out


def sentences(derived: Derived) -> list[Decision]:
    """The sentences across knob settings: steps per call, precision, the reference's compiler."""
    tables = knob_tables(derived)
    if tables.ratios.empty or tables.ladder is None:
        return []
    several_runs = len(derived.run_set.runs) > 1
    makers = (_decide_steps, _decide_precision, _decide_compiler)
    return [d for maker in makers for d in maker(tables, several_runs, derived.threshold)]


# --------------------------------------------------------------------------- tables


def knob_table(tables: KnobTables, several_runs: bool, kind: str) -> pd.DataFrame:
    """The ``kind`` ratios as a table: rows, settings with the knob's values (``steps_fit_k``:
    the reference's K; the other knob only where it varies); columns, loops; values,
    speedup [interval]."""
    axis = PRECISION if kind == "precision" else STEPS
    ratios = tables.of(kind)
    if ratios.empty:
        return pd.DataFrame()
    if kind == "steps_fit_k":
        ratios = ratios.assign(**{STEPS: ratios[f"against_{STEPS}"]})
    ratios = ratios.sort_values([*(k for k in RUN_SETTING_KEYS if k != axis), axis], kind="stable")
    other = [k for k in VARYING_SETTING_COLUMNS if k != axis and ratios[k].nunique() > 1]
    values = [interval(*r) for r in ratios[["ratio", "ci_low", "ci_high"]].to_numpy()]
    loops = loop_order(tables.ladder, ratios["loop"])
    return loop_table(ratios.assign(value=values), several_runs, [*other, axis], loops)


def precision_table(tables: KnobTables, several_runs: bool) -> pd.DataFrame:
    return knob_table(tables, several_runs, "precision")


def blocks(context: Context) -> list[Block]:
    """The tables across knob settings; empty without a knob axis of several values."""
    tables, threshold = knob_tables(context.derived), context.derived.threshold
    reference = tables.ladder.reference if tables.ladder is not None else None
    shown = {  # kind: (heading, paragraph)
        "steps_own": (
            "Steps per call",
            "What more steps per call buys each loop: its speedup at K over itself at the "
            "smallest K measured, amortized step, interval across processes in brackets.",
        ),
        "steps_fit_k": (
            "Steps per call",
            f"Do you still need a custom loop if you raise {reference}'s steps_per_execution? "
            f"Each loop at the smallest K measured against {reference} at K (two settings "
            f"apart, on purpose): above 1, the loop at one step a call is still faster than "
            f"{reference} at K; within 1 ± {threshold:.0%} or below, {reference} at K has "
            "caught up.",
        ),
        "precision": (
            "Precision",
            f"Each loop's speedup in a precision over the same loop in {BASE_PRECISION} at the "
            "same setting (above 1: faster in that precision), amortized step, interval across "
            "processes in brackets.",
        ),
    }
    out: list[Block] = []
    for kind, (heading, paragraph) in shown.items():
        frame = knob_table(tables, context.several_runs, kind)
        if not frame.empty:
            out += [Heading(2, heading)] if Heading(2, heading) not in out else []
            out += [Paragraph(paragraph), *table(frame)]
    return out
