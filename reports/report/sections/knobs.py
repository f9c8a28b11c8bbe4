"""The report across the knobs of a run: steps per call, precision, the reference's compiler.

The rest of the report compares loops within one setting (steps per call and precision
are part of it). This section compares cells ACROSS those settings, each sentence saying
what differs; every ratio is the core's row (``reports.compare.compare``):

* **Steps per call** (a setting measured at several K): what more steps per call buys
  each loop (the loop at K against itself at the smallest K of the setting,
  ``against(base)``), and for each compiled custom loop the user's question, "if I raise
  steps_per_execution, do I still need a custom loop?" (the reference at K = k against
  the loop at the smallest K: the first k from which on the loop is no longer faster),
  and the gap at equal K (does it close as K grows?).
* **Precision** (several precisions, float32 among them): each loop against itself in
  float32 (``knob_base``).
* **The reference's compiler** (a setting whose reference cell ran with XLA): the
  ladder's compiler rung against the reference with XLA (one change: the loop around the
  same compiler), and the first graph-mode rung against the reference without.

Cells that failed, were skipped or are not equivalent take no part. Run it::

    python -c "from tf_loopbench.reports.rundir import load_runs; \
from tf_loopbench.reports.report.aggregate import RunSet; \
from tf_loopbench.reports.report.derived import derive; \
from tf_loopbench.reports.report.sections.knobs import knob_tables; \
print(knob_tables(derive(RunSet.of(load_runs(['RUN'])))).ratios)"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import (
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
    setting_fields,
    setting_heading,
    table,
)
from tf_loopbench.reports.report.derived import Derived, loop_order
from tf_loopbench.reports.report.plots import usable
from tf_loopbench.reports.rundir import Ladder

#: The knob axes this section compares across.
STEPS, PRECISION = "steps_per_call", "precision"
BASE_PRECISION = "float32"
#: fit_jit keys of a reference cell that ran with / without XLA (loops/knobs.py fit_jit_key).
XLA_ON = ("on", "auto:on")
XLA_OFF = ("off", "auto:off")
#: The kinds of ratio (column ``kind``): the cell ``loop`` against the cell ``against_*``.
KINDS = {
    "steps_own": "a loop at K against itself at the smallest K",
    "steps_same_k": "a loop at K against the reference at the same K",
    "steps_fit_k": "a loop at the smallest K against the reference at K",
    "precision": "a loop in a precision against itself in float32",
    "fit_compiler": "a rung against the reference with the same compiler setting",
}
#: Carried beside each side of a ratio: whether the cell is noisy, the reference's compiler (fit_jit).
CARRY = ("noisy", "fit_jit")


@dataclass(frozen=True)
class KnobTables:
    """The ratios across knob settings: the core's rows, one per (kind, cell, cell it is
    set against, figure), ``against_<key>`` for every key; empty without a knob axis."""

    ratios: pd.DataFrame
    ladder: Ladder | None

    def of(self, kind: str, figure: str = "amortized") -> pd.DataFrame:
        table = self.ratios
        return table[(table["kind"] == kind) & (table["figure"] == figure)]


def knob_groups(ok: pd.DataFrame, axis: str) -> Iterable[tuple[pd.DataFrame, list]]:
    """Per setting without ``axis``: its cells and the axis values measured, when there
    are two or more."""
    fixed = [key for key in RUN_SETTING_KEYS if key != axis]
    for _, group in ok.groupby(fixed, sort=True, dropna=False):
        values = sorted(group[axis].unique())
        if len(values) >= 2:
            yield group, values


def graph_rung(ladder: Ladder | None) -> str | None:
    """The ladder's first graph-mode rung: the rung that compares with the bottom custom
    loop (the rung that compares with nothing and is not the reference); None without."""
    if ladder is None:
        return None
    bottom = {r.loop for r in ladder.rungs if r.compares_with is None and not r.reference}
    return next((r.loop for r in ladder.rungs if r.compares_with in bottom), None)


def comparisons(
    ok: pd.DataFrame, ladder: Ladder | None
) -> list[tuple[str, pd.DataFrame, Any, Any]]:
    """(kind, cells, the key(s) that vary, the core's rule) of every ratio drawn here."""
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
            fit_on, fit_off = (
                group.loc[jit.isin(XLA_ON), "loop"],
                group.loc[jit.isin(XLA_OFF), "loop"],
            )
            if fit_on.empty:  # without XLA against the graph rung: the setting's own decision
                continue
            pairs = [(compiler.loop, fit_on.iloc[0]), *((graph, off) for off in fit_off[:1])]
            found.append(("fit_compiler", group, "loop", against_each(pairs)))
    return found


def knob_ratios(run_set: RunSet) -> KnobTables:
    """Every ratio across knob settings of ``run_set`` (see the module docstring), on the
    amortized and the steady step."""
    parts = []
    for figure in FIGURES:
        for kind, cells, vary, rule in comparisons(usable(run_set.cells), run_set.ladder):
            rows = compare(
                cells,
                vary,
                rule,
                samples=run_set.processes,
                figure=figure,
                keys=GROUP_KEYS,
                carry=CARRY,
            )
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
    """The report's knob ratios, computed once.

    Example::

        tables = knob_tables(derive(RunSet.of(load_runs(["results/RUN"]))))
        tables.of("steps_fit_k")      # the loop at one step a call against the reference at K
    """
    return derived.once("knobs", lambda: knob_ratios(derived.run_set))


# --------------------------------------------------------------------------- wording


def _calls(k: int) -> str:
    return "one step a call" if int(k) == 1 else f"{int(k)} steps a call"


def _heading(row: Mapping[str, Any], several_runs: bool, without: str) -> str:
    """The setting without the knob ``without`` ("linear (cpu, batch 32, mixed_bfloat16)")."""
    defaults = {STEPS: 1, PRECISION: BASE_PRECISION}
    return setting_heading({**row, without: defaults[without]}, several_runs)


def _ratios(tables: KnobTables, kind: str) -> pd.DataFrame:
    """The ``kind`` ratios, one row per pair, the steady figure's beside the amortized."""
    amortized = tables.of(kind, "amortized").reset_index(drop=True)
    steady = tables.of(kind, "steady").reset_index(drop=True)
    out = amortized.copy()
    for column in ("ratio", "ci_low", "ci_high"):
        out[f"steady_{column}"] = steady[column].to_numpy()
    return out


def _noisy(row: Mapping[str, Any], name: str, against: str) -> list[str]:
    """The noisy cells of a ratio, by the names its sentence gives them."""
    flags = (row["noisy"], row["against_noisy"])
    return [n for n, flag in zip((name, against), flags, strict=True) if optional_bool(flag)]


def _pair(row: Mapping[str, Any]) -> tuple[Ratio, Ratio]:
    return Ratio.row(row), Ratio.row(row, "steady_")


def _closes_from(rows: Sequence[Mapping[str, Any]], threshold: float) -> Mapping | None:
    """The first row (in K order) from which on every row's loop is, with its interval,
    no longer faster than the cell it is set against (within the band, or slower)."""
    start = len(rows)
    while start > 0 and verdict(
        rows[start - 1]["ci_low"], rows[start - 1]["ci_high"], threshold
    ) in (SAME, SLOWER):
        start -= 1
    return rows[start] if start < len(rows) else None


def _fit_name(reference: str, row: Mapping[str, Any], k: int) -> str:
    jit = str(row.get("against_fit_jit") or "")
    compiler = (
        ", jit_compile on" if jit in XLA_ON else ", jit_compile off" if jit in XLA_OFF else ""
    )
    return f"{reference} at K={int(k)} (steps_per_execution={int(k)}{compiler})"


def _steps_decisions(derived: Derived, tables: KnobTables, several_runs: bool) -> list[Decision]:
    """Per setting without K and per loop on the ladder that ran at several K: the
    user's question (the reference at K against the loop at the smallest K), then the
    gap at equal K."""
    ladder = tables.ladder
    if ladder is None:
        return []
    reference, threshold = ladder.reference, derived.threshold
    band = f"{round(threshold * 100)}%"
    fit_k, same_k = _ratios(tables, "steps_fit_k"), _ratios(tables, "steps_same_k")
    own = tables.of("steps_own")
    fixed = [key for key in RUN_SETTING_KEYS if key != STEPS]
    out = []
    for setting, group in fit_k.groupby(fixed, sort=True, dropna=False):
        heading = _heading(dict(zip(fixed, setting, strict=True)), several_runs, STEPS)
        in_setting = np.logical_and.reduce(
            [own[key] == value for key, value in zip(fixed, setting, strict=True)]
        )
        several_k = set(own.loc[in_setting, "loop"])  # loops whose K can be raised
        for loop in loop_order(ladder, group["loop"]):
            # a second reference cell (jit on) is not on the ladder: see its compiler
            if loop not in ladder.loops or loop not in several_k:
                continue
            rows = group[group["loop"] == loop].sort_values(f"against_{STEPS}")
            rows = rows.to_dict("records")
            if len(rows) < 2:
                continue
            base = int(rows[0][STEPS])
            ks = ", ".join(str(int(r[f"against_{STEPS}"])) for r in rows)
            out.append(_user_question(rows, heading, loop, reference, base, ks, threshold, band))
            equal = same_k[
                np.logical_and.reduce(
                    [same_k[key] == value for key, value in zip(fixed, setting, strict=True)]
                )
                & (same_k["loop"] == loop)
            ].sort_values(STEPS)
            equal_rows = equal.to_dict("records")
            if len(equal_rows) >= 2:
                out.append(_equal_k(equal_rows, heading, loop, reference, threshold, band))
    return out


def _user_question(
    rows: Sequence[Mapping[str, Any]],
    heading: str,
    loop: str,
    reference: str,
    base: int,
    ks: str,
    threshold: float,
    band: str,
) -> Decision:
    """The reference at K = k against ``loop`` at K = ``base`` (rows in k order): from
    which k on is the loop at one step a call no longer faster?"""
    loop_name = f"{loop} at K={base} ({_calls(base)})"
    found = _closes_from(rows, threshold)
    row = found if found is not None else rows[-1]
    k = int(row[f"against_{STEPS}"])
    amortized, steady = _pair(row)
    fit_name = _fit_name(reference, row, k)
    text, claim = in_words(
        loop_name,
        fit_name,
        amortized,
        steady,
        threshold,
        _noisy(row, f"{loop} at K={base}", f"{reference} at K={k}"),
    )
    across = (
        f"across settings: {reference} at K={k} against {loop} at K={base}, which differ "
        f"in the loop and in K; K measured: {ks}"
    )
    if found is not None and k == base:
        sentence = (
            f"On {heading}, {reference} needs no more steps a call to keep up with {loop}: "
            f"at K={base}, {text} (K measured: {ks})"
        )
    elif found is not None:
        sentence = (
            f"On {heading}, raising {reference}'s steps_per_execution to {k} closes the gap "
            f"to {loop} at {_calls(base)}: from K={k} on, {reference} is at most {band} "
            f"slower than it, or faster. At K={k}, {text} ({across})"
        )
    else:
        claim = verdict(amortized.low, amortized.high, threshold) == FASTER
        what = (
            f"does not close the gap to {loop} at {_calls(base)}"
            if claim
            else f"is not shown to close the gap to {loop} at {_calls(base)} (no claim either way)"
        )
        sentence = (
            f"On {heading}, raising {reference}'s steps_per_execution up to {k} {what}: "
            f"{text} ({across})"
        )
    return Decision("Steps per call", sentence + ".", claim)


def _equal_k(
    rows: Sequence[Mapping[str, Any]],
    heading: str,
    loop: str,
    reference: str,
    threshold: float,
    band: str,
) -> Decision:
    """``loop`` against the reference at the same K (rows in K order): does the gap
    close as K grows?"""
    first = rows[0]
    first_k = int(first[STEPS])
    names = (f"{loop} at K={first_k}", f"{reference} at K={first_k}")
    first_text, _ = in_words(*names, *_pair(first), threshold, _noisy(first, *names))
    found = _closes_from(rows, threshold)
    row = found if found is not None else rows[-1]
    k = int(row[STEPS])
    names = (f"{loop} at K={k}", f"{reference} at K={k}")
    text, claim = in_words(*names, *_pair(row), threshold, _noisy(row, *names))
    where = f"At equal steps per call on {heading} (the loop the one difference)"
    if found is not None and k == first_k:
        sentence = f"{where}, {loop} is not faster than {reference} beyond {band} at any K: {text}"
    elif found is not None:
        sentence = (
            f"{where}, the gap between {reference} and {loop} closes from K={k} on "
            f"({first_text}): {text}"
        )
    else:
        claim = verdict(row["ci_low"], row["ci_high"], threshold) == FASTER
        what = (
            f"{loop} stays ahead of {reference} up to K={k}"
            if claim
            else f"whether {reference} catches up with {loop} by K={k} is not shown (no claim "
            "either way)"
        )
        sentence = f"{where}, {what}: {first_text}; {text}"
    return Decision("Steps per call", sentence + ".", claim)


def _precision_decisions(
    derived: Derived, tables: KnobTables, several_runs: bool
) -> list[Decision]:
    ratios = _ratios(tables, "precision")
    out = []
    fixed = [key for key in RUN_SETTING_KEYS if key != PRECISION]
    ordered = ratios.sort_values([*fixed, PRECISION], kind="stable")
    for row in ordered.to_dict("records"):
        heading = _heading(row, several_runs, PRECISION)
        loop, precision = row["loop"], row[PRECISION]
        names = (f"{loop} in {precision}", f"{loop} in {BASE_PRECISION}")
        text, claim = in_words(*names, *_pair(row), derived.threshold, _noisy(row, *names))
        out.append(Decision("Precision", f"On {heading}, {text}.", claim))
    return out


def _fit_compiler_decisions(
    derived: Derived, tables: KnobTables, several_runs: bool
) -> list[Decision]:
    ladder = tables.ladder
    compiler = compiler_rung(ladder)
    topic = f"{ladder.reference}'s compiler" if ladder is not None else "Compiler"
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
        noisy = _noisy(row, row["loop"], row["against_loop"])
        text, claim = in_words(row["loop"], reference, *_pair(row), derived.threshold, noisy)
        heading = setting_heading(row, several_runs)
        out.append(Decision(topic, f"On {heading} (one change: {change}), {text}.", claim))
    return out


def _pivot(
    ratios: pd.DataFrame, several_runs: bool, shown: Sequence[str], ladder: Ladder | None
) -> pd.DataFrame:
    """Rows: settings (with the ``shown`` knob columns); columns: loops; values: speedup
    [95% CI]."""
    if ratios.empty:
        return pd.DataFrame()
    # the other knob is shown only where it varies
    fixed_knobs = [k for k in (STEPS, PRECISION) if k not in shown and ratios[k].nunique() > 1]
    rows: dict[tuple, dict] = {}
    for row in ratios.to_dict("records"):
        setting = setting_fields(row, several_runs, [*fixed_knobs, *shown])
        record = rows.setdefault(tuple(setting.values()), setting)
        record[row["loop"]] = interval(row["ratio"], row["ci_low"], row["ci_high"])
    frame = pd.DataFrame(list(rows.values()))
    loops = loop_order(ladder, ratios["loop"])
    settings = [c for c in frame.columns if c not in loops]
    return frame[[*settings, *loops]].fillna("").astype(str)


def steps_table(tables: KnobTables, several_runs: bool, kind: str) -> pd.DataFrame:
    """``steps_own``: each loop at K over itself at the smallest K; ``steps_fit_k``: each
    loop at the smallest K over the reference at K (rows: K of the reference)."""
    ratios = tables.of(kind)
    if kind == "steps_fit_k":
        ratios = ratios.copy()
        ratios[STEPS] = ratios[f"against_{STEPS}"]
    ratios = ratios.sort_values(
        [*(k for k in RUN_SETTING_KEYS if k != STEPS), STEPS], kind="stable"
    )
    return _pivot(ratios, several_runs, [STEPS], tables.ladder)


def precision_table(tables: KnobTables, several_runs: bool) -> pd.DataFrame:
    """Each loop in a precision over itself in float32 (rows: settings and precisions)."""
    ratios = tables.of("precision")
    ratios = ratios.sort_values(
        [*(k for k in RUN_SETTING_KEYS if k != PRECISION), PRECISION], kind="stable"
    )
    return _pivot(ratios, several_runs, [PRECISION], tables.ladder)


def sentences(derived: Derived) -> list[Decision]:
    """The sentences across knob settings: steps per call, precision, the reference's compiler (in
    that order; none when the run has no such axis).

    Example::

        for decision in knob_decisions(derive(RunSet.of(load_runs(["results/RUN"])))):
            print(decision.topic, decision.text)
    """
    tables = knob_tables(derived)
    if tables.ratios.empty or tables.ladder is None:
        return []
    several_runs = len(derived.run_set.runs) > 1
    return [
        *_steps_decisions(derived, tables, several_runs),
        *_precision_decisions(derived, tables, several_runs),
        *_fit_compiler_decisions(derived, tables, several_runs),
    ]


# --------------------------------------------------------------------------- tables


def blocks(context: Context) -> list[Block]:
    """The report's section across knob settings (tables; the sentences are among the
    decisions); empty when the run has no knob axis with several values."""
    derived, several_runs = context.derived, context.several_runs
    tables = knob_tables(derived)
    reference = tables.ladder.reference if tables.ladder is not None else None
    out: list[Block] = []
    own = steps_table(tables, several_runs, "steps_own")
    fit_k = steps_table(tables, several_runs, "steps_fit_k")
    precision = precision_table(tables, several_runs)
    if not own.empty or not fit_k.empty:
        out.append(Heading(2, "Steps per call"))
    if not own.empty:
        out += [
            Paragraph(
                "What more steps per call buys each loop: its speedup at K over itself at the "
                "smallest K measured, amortized step, 95% CI across processes in brackets."
            ),
            *table(own),
        ]
    if not fit_k.empty and reference is not None:
        out += [
            Paragraph(
                f"Do you still need a custom loop if you raise {reference}'s "
                f"steps_per_execution? Each loop at the smallest K measured against "
                f"{reference} at K (two settings apart, on purpose): above 1, the loop at "
                f"one step a call is still faster than {reference} at K; within 1 ± "
                f"{derived.threshold:.0%} or below, {reference} at K has caught up."
            ),
            *table(fit_k),
        ]
    if not precision.empty:
        out += [
            Heading(2, "Precision"),
            Paragraph(
                f"Each loop's speedup in a precision over the same loop in {BASE_PRECISION} at "
                "the same setting (above 1: faster in that precision), amortized step, 95% CI "
                "across processes in brackets."
            ),
            *table(precision),
        ]
    return out
