"""The atlas: when a custom loop costs you, across models. Every cell on one chart, x = the
reference loop's steady step of its setting (log), y = the loop's x reference (amortized)
with its interval; per setting the best loop, what the first custom loop costs, whether the
compiler rung pays its compile back within one epoch, and the cells that did not run or
were not equivalent; and the rule, by ranges of the reference's step. Every ratio, interval,
verdict and payback is the comparison core's (``reports.compare``).

It appears in a report whose runs ran two or more models (``--model``);
``tools/atlas_report.py`` writes docs/atlas.md from it (:func:`document`), where several
runs are passes of one matrix (:func:`pooled`) and the per-epoch cost is spread over the
real dataset's epoch (:data:`EPOCH_STEPS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import (
    CELL_KEYS,
    FASTER,
    FIGURES,
    GROUP_KEYS,
    MISSING,
    RUN_KEY,
    RUN_SETTING_KEYS,
    SAME,
    SLOWER,
    EpochSpans,
    Figure,
    compare,
    ladder_reference,
    payback,
    ratio_label,
)
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Context,
    Heading,
    Image,
    Paragraph,
    Plot,
    Ratio,
    Table,
    compiler_rung,
    count,
    excluded,
    format_seconds,
    interval,
    log_scale,
    loop_colors,
    percent,
    save,
)
from tf_loopbench.reports.report.derived import Derived, derive, ok_cells, run_comparison
from tf_loopbench.reports.rundir import Run, optional_bool

#: A process column that, where present, holds the steps of the epoch the atlas spreads
#: per-epoch costs over (the real dataset's); without it, the run's own epoch.
EPOCH_STEPS = "atlas_epoch_steps"
#: The rule's ranges: this many, split at the settings' quantiles of the reference's step.
RULE_RANGES = 3
PLOT_FILE = "atlas.png"
#: How the tables and the plot name the epoch the per-epoch costs are spread over.
EPOCH = "one epoch"
#: The smallest number of models (``--model``) a run needs for the section to appear.
MODELS = 2


def applies_to(metadata: Mapping) -> bool:
    """Whether a run's metadata.json records MODELS or more models (``--model``)."""
    return len(metadata.get("config", {}).get("models") or ()) >= MODELS


def applies(derived: Derived) -> bool:
    """Whether a report shows the atlas: a ladder, and a run of MODELS or more models."""
    runs = derived.run_set.runs
    return derived.ladder is not None and any(applies_to(run.metadata) for run in runs)


def epoch_figure(processes: pd.DataFrame) -> Figure:
    """The core's amortized figure, over the epoch :data:`EPOCH_STEPS` names where the
    processes hold it."""
    amortized = FIGURES["amortized"]
    if EPOCH_STEPS not in processes.columns:
        return amortized
    return replace(amortized, epochs=EpochSpans(steps_column=EPOCH_STEPS))


def loop_rows(derived: Derived) -> pd.DataFrame:
    """The core's rows of every ok loop against the reference, amortized (:func:`epoch_figure`)
    with its interval and verdict, plus ``reference_step_s`` (the reference's steady step,
    the x of its setting), ``equivalent``, ``compile_s`` of both and ``epoch_steps``."""

    def make() -> pd.DataFrame:
        run_set, ladder = derived.run_set, derived.ladder
        cells, processes = ok_cells(run_set.cells), run_set.processes
        rule = ladder_reference(ladder)
        options = {"samples": processes, "keys": GROUP_KEYS, "threshold": derived.threshold}
        rows = compare(cells, "loop", rule, figure=epoch_figure(processes), **options)
        steady = compare(cells, "loop", rule, figure="steady", **options)
        rows["reference_step_s"] = steady["against_value"].reindex(rows.index)
        compiled = derived.cells.set_index(list(GROUP_KEYS))
        compile_s = compiled["process_compile_median_s"].fillna(compiled["compile_s"])
        equivalent = compiled["equivalent"].map(optional_bool)
        mine = pd.MultiIndex.from_frame(rows[list(GROUP_KEYS)])
        theirs = pd.MultiIndex.from_frame(rows[list(GROUP_KEYS)].assign(loop=rows["against_loop"]))
        rows["compile_s"] = compile_s.reindex(mine).to_numpy(float)
        rows["against_compile_s"] = compile_s.reindex(theirs).to_numpy(float)
        rows["equivalent"] = equivalent.reindex(mine).to_numpy(object)
        rows["against_equivalent"] = equivalent.reindex(theirs).to_numpy(object)
        column = EPOCH_STEPS if EPOCH_STEPS in processes.columns else "steps_per_epoch"
        steps = pd.to_numeric(processes.get(column), errors="coerce")
        per_setting = steps.groupby([processes[k] for k in RUN_SETTING_KEYS]).max()
        setting = pd.MultiIndex.from_frame(rows[list(RUN_SETTING_KEYS)])
        rows["epoch_steps"] = per_setting.reindex(setting).to_numpy(float)
        return rows.reset_index(drop=True)

    return derived.once("atlas_rows", make)


def roles(derived: Derived) -> tuple[str, str | None, list[str], str | None]:
    """(the reference, the first custom loop, the loops that compare with a neighbour, the
    compiler rung), as the ladder declares them."""
    ladder = derived.ladder
    first = [r.loop for r in ladder.rungs if not r.reference and not r.compares_with]
    graph = [r.loop for r in ladder.rungs if r.compares_with]
    compiler = compiler_rung(ladder)
    return ladder.reference, (first[0] if first else None), graph, compiler and compiler.loop


def usable(row: Mapping) -> bool:
    """Both sides equivalent (no decision is drawn from a cell that is not)."""
    return row["equivalent"] is not False and row["against_equivalent"] is not False


def settings(derived: Derived) -> pd.DataFrame:
    """One row per setting: its keys, ``reference_step_s``, each loop's core row (a dict, by
    loop, in ``loops``), the best loop and the compiler's payback within one epoch."""
    rows = loop_rows(derived)
    reference, _, _, compiler = roles(derived)
    out = []
    for _, group in rows.groupby(list(RUN_SETTING_KEYS), sort=False, dropna=False):
        by_loop = {row["loop"]: row for row in group.to_dict("records")}
        first = group.iloc[0]
        # the best of the equivalent cells (the reference's own is 1x)
        speeds = {reference: 1.0} if first["against_equivalent"] is not False else {}
        speeds |= {
            loop: row["ratio"]
            for loop, row in by_loop.items()
            if np.isfinite(row["ratio"]) and usable(row)
        }
        best = max(speeds, key=speeds.get, default=None)
        found = {key: first[key] for key in RUN_SETTING_KEYS}
        found |= {"reference_step_s": float(first["reference_step_s"]), "loops": by_loop}
        found |= {"best": best, "best_ratio": speeds.get(best, math.nan), "payback": None}
        if compiler in by_loop:
            row = by_loop[compiler]
            found["payback"] = payback(
                row["compile_s"],
                row["value"],
                row["against_compile_s"],
                row["against_value"],
                within_steps=row["epoch_steps"],
            )
        out.append(found)
    frame = pd.DataFrame(out)
    return frame.sort_values("reference_step_s", kind="stable").reset_index(drop=True)


def interval_name(rows: pd.DataFrame) -> str:
    """The intervals' name at the fewest processes a side (``reports.compare.ratio_label``)."""
    counted = rows[np.isfinite(rows["ci_low"].astype(float))]
    if counted.empty:
        return "no interval"
    return ratio_label(int(counted["n"].min()), int(counted["n_against"].min()))


def ratio_text(row: Mapping, cost: bool = False) -> str:
    """ "1.51x [1.40x-1.61x]" (``cost``: turned round, the loop's time over the reference's),
    "(not equivalent)" after it where a side is not."""
    ratio = Ratio(float(row["ratio"]), float(row["ci_low"]), float(row["ci_high"]))
    ratio = ratio.as_cost() if cost else ratio
    text = interval(ratio.value, ratio.low, ratio.high)
    return text if usable(row) else f"{text} (not equivalent)"


def payback_text(found, reference: str) -> str:
    """The compiler's payback within one epoch in words (``reports.compare.Payback``)."""
    if found is None:
        return "did not run"
    extra = found.extra_compile_s
    compile_text = f"{format_seconds(abs(extra))} {'more' if extra >= 0 else 'less'} compile"
    epoch = f"epoch {found.within_steps:,.0f} steps"
    if found.outcome == "unknown":
        return "unknown: a figure is missing"
    if found.outcome == "never":
        return f"no: slower per step than {reference} ({compile_text})"
    if found.outcome == "immediately":
        return f"yes: ahead from the first step ({compile_text})"
    answer = {True: "yes", False: "no", None: "unknown"}[found.within]
    back = f"back after {found.break_even_steps:,.0f} steps"
    return f"{answer}: {compile_text}, {back} ({epoch})"


def setting_table(
    derived: Derived,
    names: Mapping[str, str] = {},  # noqa: B006
    epoch: str = EPOCH,
) -> pd.DataFrame:
    """The per-setting table, fastest reference step first (``epoch``: its name)."""
    reference, first, _, compiler = roles(derived)
    table = settings(derived)
    several = {key: table[key].nunique() > 1 for key in (RUN_KEY, "device")}
    label = interval_name(loop_rows(derived))
    best_column = f"best (x {reference}) [{label}]"
    cost_column = f"{first} costs (x {reference}'s step) [{label}]"
    rows = []
    for row in table.to_dict("records"):
        loops = row["loops"]
        best = loops.get(row["best"]) if isinstance(row["best"], str) else None
        name = names.get(row["workload"])
        line = {RUN_KEY: row[RUN_KEY]} if several[RUN_KEY] else {}
        line["model"] = f"{row['workload']} ({name})" if name else row["workload"]
        line |= {"device": row["device"]} if several["device"] else {}
        line["batch"] = str(row["batch_size"])
        line[f"{reference} step"] = format_seconds(row["reference_step_s"])
        if not isinstance(row["best"], str):
            line[best_column] = "no equivalent cell"
        else:
            line[best_column] = f"{row['best']} ({ratio_text(best) if best else '1x'})"
        if first is not None:
            cost = ratio_text(loops[first], cost=True) if first in loops else "did not run"
            line[cost_column] = cost
        if compiler is not None:
            said = payback_text(row["payback"], reference)
            if compiler in loops and not usable(loops[compiler]):
                said += " (not equivalent)"
            line[f"{compiler} pays back within {epoch}?"] = said
        rows.append(line)
    return pd.DataFrame(rows).astype(str)


def problems(derived: Derived) -> list[str]:
    """One line per cell that did not run or was not equivalent, with its reason (the
    report's words: ``common.excluded``)."""
    several = derived.cells[RUN_KEY].nunique() > 1
    lines = []
    for cell in derived.cells.to_dict("records"):
        why = excluded(cell)
        if why is not None:
            where = f"{cell['workload']} ({cell['device']}, batch {cell['batch_size']})"
            lines.append(f"{cell[RUN_KEY] + ': ' if several else ''}{where}: {why}")
    return lines


def summary_text(values: Sequence[float], unit: str, digits: int) -> str:
    """ "1.35x the reference (median of 4, 0.60x to 1.66x)"."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return "no setting"
    median, low, high = np.median(values), values.min(), values.max()
    return (
        f"{median:.{digits}f}x {unit} (median of {values.size}, "
        f"{low:.{digits}f}x to {high:.{digits}f}x)"
    )


def verdict_counts(verdicts: Sequence[str], reference: str, threshold: float) -> str:
    """ "faster than the reference in 2 and unclear in 2": the core's verdicts counted, most common
    first ("in all 4" where one holds every setting)."""
    words = {
        FASTER: f"faster than {reference}",
        SLOWER: f"slower than {reference}",
        SAME: f"within ±{percent(threshold)} of {reference}",
        MISSING: "without an interval",
    }
    counts = pd.Series(list(verdicts), dtype=object).value_counts(sort=False)
    counts = counts.sort_values(ascending=False, kind="stable")
    if len(counts) == 1:
        kind, n = counts.index[0], counts.iloc[0]
        return words.get(kind, kind) + (f" in all {n}" if n > 1 else "")
    parts = [f"{words.get(kind, kind)} in {n}" for kind, n in counts.items()]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}"


def names_text(names: Sequence[str], conjunction: str = "and") -> str:
    """ "a, b and c"."""
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {conjunction} {names[-1]}"


def rule_splits(steps: Sequence[float], ranges: int = RULE_RANGES) -> list[float]:
    """Where the rule splits the reference's step (s): the settings' quantiles that cut them
    into ``ranges`` groups of about equal size (on a log scale), each rounded to the nearest
    1-2-5 value; splits that round alike are one; none under ``ranges`` settings.

    >>> ms = [0.81, 0.97, 1.0, 2.5, 5.2, 5.7, 7.9, 8.0, 16, 46, 62, 95, 107, 197, 270, 578]
    >>> rule_splits([t / 1e3 for t in ms])   # the terciles, 5.7 ms and 62 ms, rounded
    [0.005, 0.05]
    """
    steps = np.asarray(steps, dtype=float)
    logs = np.log10(steps[np.isfinite(steps) & (steps > 0)])
    if logs.size < ranges:
        return []
    cuts = np.quantile(logs, [i / ranges for i in range(1, ranges)])
    decades = np.arange(np.floor(logs.min()) - 1, np.ceil(logs.max()) + 1)
    grid = np.log10(np.outer(10.0**decades, [1, 2, 5]).ravel())
    rounded = {float(grid[np.argmin(np.abs(grid - cut))]) for cut in cuts}
    return [float(f"{10**value:.3g}") for value in sorted(rounded)]


def rule(derived: Derived) -> str:
    """The rule in sentences with their numbers, by ranges of the reference's step: the best
    compiled loop's and the first custom loop's x reference (the core's rows, equivalent
    cells only) and the core's verdicts on their intervals, counted over the settings; the
    ranges from the settings' steps (:func:`rule_splits`)."""
    reference, first, graph, _ = roles(derived)
    table = settings(derived)
    label = interval_name(loop_rows(derived))
    steps = table["reference_step_s"]
    splits = rule_splits(steps)
    ranges = [(f"Over every setting, whatever {reference}'s step", steps.notna())]
    if splits:
        ranges = [
            (f"Below about {format_seconds(splits[0])} a {reference} step", steps < splits[0])
        ]
        ranges += [
            (
                f"From {format_seconds(low)} to {format_seconds(high)}",
                (steps >= low) & (steps < high),
            )
            for low, high in zip(splits[:-1], splits[1:], strict=True)
        ]
        ranges.append((f"Above about {format_seconds(splits[-1])}", steps >= splits[-1]))
    band = f"judged by its {label} against ±{percent(derived.threshold)}"
    sentences = []
    for where, mask in ranges:
        best, costs = [], []
        for loops in table.loc[mask, "loops"]:
            compiled = [loops[g] for g in graph if g in loops and usable(loops[g])]
            compiled = [row for row in compiled if np.isfinite(row["ratio"])]
            if compiled:
                best.append(max(compiled, key=lambda row: row["ratio"]))
            if first in loops and usable(loops[first]):
                costs.append(loops[first])
        if not best and not costs:
            continue
        left = int(mask.sum()) - len(best)
        said = f"{where} ({count(int(mask.sum()), 'setting')}"
        said += f", {left} without an equivalent compiled loop)" if left else ")"
        counted = {"reference": reference, "threshold": derived.threshold}
        if best:
            kinds = verdict_counts([row["verdict"] for row in best], **counted)
            ratios = [row["ratio"] for row in best]
            said += (
                f", the best compiled custom loop (of {names_text(graph, 'or')}) runs at "
                f"{summary_text(ratios, reference, 2)}: {kinds}"
                f"{f', {band}' if not sentences else ''}"
            )
        if costs:
            cost = [1 / row["ratio"] for row in costs]
            kinds = verdict_counts([row["verdict"] for row in costs], **counted)
            unit = f"{reference}'s step"
            said += f"; {first} costs {summary_text(cost, unit, 0)}, {kinds}"
        sentences.append(said + ".")
    return " ".join(sentences)


def write_plot(derived: Derived, path: Path, epoch: str = EPOCH) -> Plot:
    """Every cell on one chart: x the reference's steady step, y x reference amortized with
    its interval, hollow where a side is not equivalent."""
    reference = derived.ladder.reference
    rows = loop_rows(derived)
    colors = loop_colors(derived)
    label = interval_name(rows)
    figure, axis = plt.subplots(figsize=(8, 5))
    for loop, part in rows.groupby("loop", sort=False):
        x = part["reference_step_s"].to_numpy(float) * 1e3
        y = part["ratio"].to_numpy(float)
        low = np.nan_to_num(y - part["ci_low"].to_numpy(float), nan=0.0).clip(min=0)
        high = np.nan_to_num(part["ci_high"].to_numpy(float) - y, nan=0.0).clip(min=0)
        solid = np.array([usable(row) for row in part.to_dict("records")])
        color = colors.get(loop, "gray")
        for filled in (True, False):
            pick = solid == filled
            if not pick.any():
                continue
            axis.errorbar(
                x[pick],
                y[pick],
                yerr=[low[pick], high[pick]],
                fmt="o",
                color=color,
                markerfacecolor=color if filled else "white",
                markersize=6,
                capsize=2,
                elinewidth=0.8,
                label=loop if filled or not solid.any() else None,
            )
    axis.axhline(1.0, color="black", lw=0.8, label=reference)
    band = derived.threshold
    axis.axhspan(1 - band, 1 + band, color="grey", alpha=0.15)
    log_scale(axis, "x")
    log_scale(axis, "y")
    axis.set_xlabel(f"{reference}'s steady step (ms, log)")
    axis.set_ylabel(f"x {reference}, amortized ({label})")
    axis.set_title("When a custom loop costs you: every cell (hollow: not equivalent)")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    caption = (
        f"x: {reference}'s steady step of the cell's setting; y: {reference}'s amortized step "
        f"over the loop's (per-epoch costs spread over the steps of {epoch}; above 1: faster than "
        f"{reference}), whiskers its {label}; the grey band ±{percent(band)}, the threshold "
        "of a practical difference."
    )
    return Plot("Atlas: every cell against the reference's step", save(figure, path), caption)


def plots(derived: Derived, plots_dir: Path) -> list[Plot]:
    return [write_plot(derived, plots_dir / PLOT_FILE)] if applies(derived) else []


def atlas_blocks(
    derived: Derived,
    names: Mapping[str, str] = {},  # noqa: B006
    notes: Mapping[str, str] = {},  # noqa: B006
    level: int = 3,
    epoch: str = EPOCH,
    plot: Plot | None = None,
    stands: str | None = None,
) -> list[Block]:
    """The rule (``stands``: how far it stands, after it), the ``plot``, the per-setting
    table (``names``: a workload's longer name) and the cells that did not run or were not
    equivalent (``notes``: a line per workload said after them)."""
    found = problems(derived)
    failing = derived.cells[
        [excluded(cell) is not None for cell in derived.cells.to_dict("records")]
    ]
    named = sorted(set(failing["workload"]) & set(notes))
    shown = [Image(plot), Paragraph(plot.caption)] if plot is not None else []
    return [
        Heading(level, "The rule"),
        Paragraph(rule(derived)),
        *([Paragraph(stands)] if stands else []),
        *shown,
        Heading(level, "Per model"),
        Table(setting_table(derived, names, epoch)),
        Heading(level, "Cells that did not run or were not equivalent"),
        Bullets(tuple(found)) if found else Paragraph("None: every cell ran and was equivalent."),
        *(Paragraph(f"{name}: {notes[name]}.") for name in named),
    ]


def blocks(context: Context) -> list[Block]:
    derived = context.derived
    if not applies(derived):
        return []
    return [
        Heading(2, "Atlas"),
        Paragraph(
            f"Every model and batch size: each loop's x {derived.ladder.reference} amortized "
            "over the run's epoch, with its interval in brackets (named by its real coverage), "
            "as in the speedup tables; the plot (Plots, below) puts every cell against "
            f"{derived.ladder.reference}'s step."
        ),
        *atlas_blocks(derived),
    ]


def pooled(run_set: RunSet, label: str = "passes") -> RunSet:
    """Passes of one matrix as one run: each cell's processes pooled (a pass is one more
    sample of every cell); a cell ok only if every pass ran it, equivalent only if every
    pass found it so; its summary figures the first pass's (the core reads processes)."""
    cells = run_set.cells.assign(**{RUN_KEY: label})
    keys = [k for k in CELL_KEYS if k in cells.columns]
    rows = []
    for _, group in cells.groupby(keys, sort=False, dropna=False):
        first = group.iloc[0].copy()
        bad = group[group["status"] != "ok"]
        if len(bad):
            first["status"], first["error"] = bad.iloc[0]["status"], bad.iloc[0].get("error")
        elif any(optional_bool(v) is False for v in group["equivalent"]):
            first["equivalent"] = False
        rows.append(first)
    processes = run_set.processes.assign(**{RUN_KEY: label})
    return replace(
        run_set,
        labels=(label,),
        title=label,
        cells=pd.DataFrame(rows).reset_index(drop=True),
        processes=processes,
    )


def pass_spreads(run_set: RunSet) -> pd.Series:
    """Per cell, its slowest pass's steady step over its fastest, from the core's rows of
    each later pass against the first (``derived.run_comparison``)."""
    rows = run_comparison(run_set.cells, run_set.processes)
    if rows.empty:
        return pd.Series(dtype=float)
    keys = [k for k in GROUP_KEYS if k != RUN_KEY and k in rows.columns]
    ratios = rows.groupby(keys, dropna=False)["speedup"]
    return ratios.max().clip(lower=1.0) / ratios.min().clip(upper=1.0)


def header(runs: Sequence[Run], derived: Derived, spreads: pd.Series) -> list[str]:
    """The runs, the machine, the command and the span of the reference's step."""
    soft, hard = runs[0].metadata.get("soft", {}), runs[0].metadata.get("hard", {})
    table = settings(derived)
    fastest, slowest = table["reference_step_s"].min(), table["reference_step_s"].max()
    reference = derived.ladder.reference
    lines = [
        f"Run{f' (pass {i + 1})' if len(runs) > 1 else ''}: `{run.run_id}`, "
        f"{run.metadata.get('soft', {}).get('started_at')} to "
        f"{run.metadata.get('soft', {}).get('ended_at')}, "
        f"{run.metadata.get('config', {}).get('processes', '?')} process(es) a cell"
        for i, run in enumerate(runs)
    ]
    commit = str(soft.get("git_commit"))[:7] + (
        " (uncommitted changes)" if soft.get("git_dirty") else ""
    )
    lines += [
        f"Machine: {hard.get('cpu_model')}, {hard.get('visible_cores')} cores, GPUs: "
        f"{len(soft.get('gpus') or [])}; TensorFlow {soft.get('tensorflow')}, Keras "
        f"{soft.get('keras')}; commit {commit}",
        f"Command: `{soft.get('command')}`",
        f"{reference.capitalize()}'s step spans {format_seconds(fastest)} to {format_seconds(slowest)} "
        f"({math.log10(slowest / fastest):.1f} decades) over {len(table)} settings",
    ]
    if len(runs) > 1 and len(spreads):
        lines.append(
            f"{len(runs)} passes, each cell's processes pooled over them; a cell's slowest "
            f"pass over its fastest: median {spreads.median():.2f}x, 90th percentile "
            f"{spreads.quantile(0.9):.2f}x, largest {spreads.max():.2f}x (how far one pass "
            "can be trusted on this machine)"
        )
    return lines


def how_far_it_stands(spreads: pd.Series, threshold: float) -> str | None:
    """A line when the passes disagree by more than the band a claim must clear."""
    if not len(spreads) or spreads.median() <= 1 + threshold:
        return None
    return (
        f"How much of it stands: the passes disagree by a median {spreads.median():.2f}x per "
        f"cell, more than the ±{percent(threshold)} a claim needs. A figure larger than that "
        "spread stands here (the first custom loop's cost, and how it falls as the "
        "reference's step grows); the compiled loops' ratios, mostly within that spread of 1, "
        "need a quiet machine and 2 or more processes a cell before they are believed."
    )


def document(
    runs: Sequence[Run],
    plot_path: Path,
    *,
    epoch_examples: Mapping[str, int] = {},  # noqa: B006
    names: Mapping[str, str] = {},  # noqa: B006
    notes: Mapping[str, str] = {},  # noqa: B006
    header_notes: Sequence[str] = (),
    epoch: str = EPOCH,
) -> tuple[Derived, list[Block]]:
    """The atlas of ``runs`` (passes of one matrix, :func:`pooled`) as blocks: the header
    (runs, machine, command, the reference's step span, the passes' spread,
    ``header_notes``), then :func:`atlas_blocks` with the plot written to ``plot_path``.
    ``epoch_examples``: per workload, the examples of the epoch to spread per-epoch costs
    over (its real dataset's; others: the run's epoch), ``epoch`` its name; ``names``,
    ``notes``: as :func:`atlas_blocks`. Also the derived tables it was drawn from."""
    run_set = RunSet.of(runs)
    spreads = pass_spreads(run_set) if len(runs) > 1 else pd.Series(dtype=float)
    one = pooled(run_set) if len(runs) > 1 else run_set
    if epoch_examples:
        processes = one.processes
        examples = pd.to_numeric(processes["workload"].map(epoch_examples), errors="coerce")
        steps = (examples // processes["batch_size"]).clip(lower=1)
        steps = steps.fillna(pd.to_numeric(processes["steps_per_epoch"], errors="coerce"))
        one = replace(one, processes=processes.assign(**{EPOCH_STEPS: steps}))
    derived = derive(one)
    plot = write_plot(derived, plot_path, epoch)
    lines = [*header(runs, derived, spreads), *header_notes]
    stands = how_far_it_stands(spreads, derived.threshold)
    body = atlas_blocks(derived, names, notes, level=2, plot=plot, stands=stands, epoch=epoch)
    return derived, [Bullets(tuple(lines)), *body]
