"""The report's PNG plots (matplotlib, Agg backend: no display needed), each written only
when the data has something to show. Every figure with an interval is a point with 95%
whiskers (no bars on a log axis); loops are drawn in ladder order, each in its colour
(``common.PALETTE``). :func:`write_plots` lists them with their captions.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import CELL_KEY_DEFAULTS, RUN_KEY, RUN_SETTING_KEYS
from tf_loopbench.reports.report.common import (
    VARIANT_NAMES,
    Plot,
    log_scale,
    loop_colors,
    offsets,
    optional_bool,
    panels,
    points,
    save,
    step_time_line,
    variant_labels,
)
from tf_loopbench.reports.report.derived import (
    OVERHEAD_THRESHOLD,
    SPEEDUP_COLUMNS,
    Derived,
    loop_order,
    ok_cells,
)

#: The shaded band of no practical difference (a patch, not a bar)
BAND_GID = "no-practical-difference"
#: The x keys of :func:`plot_against`: their name; a log2 axis, or categories (precision).
AGAINST = {
    "batch_size": "batch size",
    "width": "width",
    "steps_per_call": "steps per call",
    "precision": "precision",
}
#: Text written upright at a point (a status, a variant, "never").
UPRIGHT = {"rotation": 90, "ha": "center", "fontsize": 7}
#: A crossover: the first point from which a loop keeps within the overhead threshold.
STAR = {"marker": "*", "markersize": 13, "linestyle": "none", "markeredgecolor": "black"}


def usable(cells: pd.DataFrame) -> pd.DataFrame:
    """Ok cells with a positive step time that are not marked not equivalent."""
    ok = ok_cells(cells)
    if "equivalent" not in ok:
        return ok
    return ok[ok["equivalent"].map(lambda value: optional_bool(value) is not False)]


def loop_figure(derived: Derived, cells: pd.DataFrame, draw, ylabel: str, legend: tuple):
    """A panel per workload, loops along x in ladder order, a setting's variants side by
    side; ``draw(axis, part, positions, colors)`` draws one variant (``part``: its cells by
    loop, every loop of the panel a row); ``legend``: the filled and the hollow points."""
    colors = loop_colors(derived)
    workloads = sorted(cells["workload"].unique())
    figure, axes = panels(len(workloads))
    for axis, workload in zip(axes, workloads, strict=True):
        frame = cells[cells["workload"] == workload].assign(variant=variant_labels)
        loops = loop_order(derived.ladder, frame["loop"])
        variants = list(dict.fromkeys(frame["variant"]))
        for offset, variant in zip(offsets(len(variants)), variants, strict=True):
            part = frame[frame["variant"] == variant].set_index("loop").reindex(loops)
            positions = np.arange(len(loops)) + offset
            draw(axis, part, positions, [colors.get(loop, "gray") for loop in loops])
            for position in positions if variant else ():
                where = {"xycoords": ("data", "axes fraction"), "va": "top", "color": "gray"}
                axis.annotate(variant, (position, 0.98), **where, **{**UPRIGHT, "fontsize": 5})
        axis.set_xticks(np.arange(len(loops)), loops, rotation=20)
        axis.set_xlim(-0.6, len(loops) - 0.4)
        log_scale(axis)
        axis.set_ylabel(ylabel)
        axis.set_title(workload)
        points(axis, [], [], [], [], "gray", label=legend[0])
        points(axis, [], [], [], [], "gray", filled=False, label=legend[1])
        axis.legend(fontsize=7)
    return figure


def plot_step_times(derived: Derived, path: Path) -> Path | None:
    """Median steady step per loop style, the amortized step hollow where it differs."""
    cells = derived.cells
    if (cells["status"] != "ok").all():
        return None

    def draw(axis, part, positions, colors):
        ok = (part["status"] == "ok").to_numpy()
        columns = ("step_time_median_s", "step_time_ci_low_s", "step_time_ci_high_s")
        columns += ("amortized_step_time_s",)
        steady, low, high, amortized = (part[c].to_numpy(dtype=float) * 1e3 for c in columns)
        steady, amortized = np.where(ok, steady, np.nan), np.where(ok, amortized, np.nan)
        points(axis, positions, steady, low, high, colors)
        differs = np.isfinite(amortized) & (np.abs(amortized / steady - 1) > 0.01)
        none = np.full(differs.sum(), np.nan)
        shown = [color for color, d in zip(colors, differs, strict=True) if d]
        points(axis, positions[differs], amortized[differs], none, none, shown, filled=False)
        for position, status in zip(positions, part["status"], strict=True):
            if status in ("failed", "skipped"):
                at = axis.get_xaxis_transform()
                axis.text(position, 0.02, status, va="bottom", transform=at, **UPRIGHT)

    legend = ("steady step (median)", "amortized (per-epoch costs in)")
    figure = loop_figure(derived, cells, draw, "step time (ms)", legend)
    figure.suptitle(
        "Step time per loop style\n(points: medians; whiskers: 95% CI across processes)",
        fontsize=10,
    )
    return save(figure, path)


def plot_speedups(derived: Derived, path: Path) -> Path | None:
    """Speedup against the reference per loop style, amortized (filled) and steady (hollow)."""
    cells = derived.cells.dropna(subset=["speedup_vs_reference"])
    if derived.ladder is None or cells.empty:
        return None
    reference, band = derived.ladder.reference, derived.threshold
    step = 0.2 / cells.assign(variant=variant_labels)["variant"].nunique()

    def draw(axis, part, positions, colors):
        for figure_name, shift in (("amortized", -step), ("steady", step)):
            value, low, high = (part[c] for c in SPEEDUP_COLUMNS[("reference", figure_name)])
            filled = figure_name == "amortized"
            points(axis, positions + shift, value, low, high, colors, filled=filled)

    legend = ("amortized (per-epoch costs in)", "steady step")
    figure = loop_figure(derived, cells, draw, f"speedup vs {reference} (>1: faster)", legend)
    for axis in figure.axes[: cells["workload"].nunique()]:
        axis.axhspan(1 - band, 1 + band, color="#dddddd", zorder=0, gid=BAND_GID)
        axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    figure.suptitle(
        f"Speedup against {reference}\n(whiskers: bootstrap 95% CI; gray band: within ±{band:.0%})",
        fontsize=10,
    )
    return save(figure, path)


def panel_title(row: dict, key: str, several_runs: bool) -> str:
    """A setting without ``key`` nor the keys at their defaults: "mlp (cpu, width 256)"."""
    hidden = {key, "workload", *(() if several_runs else (RUN_KEY,))}
    shown = [
        name.format(row[k])
        for k, name in VARIANT_NAMES.items()
        if k not in hidden and row[k] != CELL_KEY_DEFAULTS.get(k)
    ]
    return f"{row['workload']} ({', '.join(shown)})"


def plot_against(derived: Derived, path: Path, key: str) -> Path | None:
    """Median steady step (95% CI whiskers) against ``key`` (batch size, width or steps
    per call on a log2 axis, precision as categories), a line per loop, a panel per
    setting without it, crossovers starred; None when no setting has two values of it."""
    cells = usable(derived.cells)
    fixed = [k for k in RUN_SETTING_KEYS if k != key]
    settings = [
        group
        for _, group in cells.groupby(fixed, sort=True, dropna=False)
        if group[key].nunique() >= 2
    ]
    if not settings:
        return None
    colors = loop_colors(derived)
    reference = derived.ladder.reference if derived.ladder is not None else None
    stars = derived.crossovers
    stars = stars[(stars["axis"] == key) & (stars["reference"] == reference)]
    stars = stars[stars["outcome"] != "never"]
    if len(stars):  # the sweep's other key is held at fixed_value
        stars = stars.assign(**{stars["fixed_key"].iloc[0]: stars["fixed_value"]})
    figure, axes = panels(len(settings))
    for axis, group in zip(axes, settings, strict=True):
        values = sorted(group[key].unique(), key=lambda v: (v != CELL_KEY_DEFAULTS.get(key), v))
        # categories (precision) at 0, 1, ...; loops side by side so whiskers do not overlap
        log2 = key != "precision"
        where = {v: float(v) if log2 else float(i) for i, v in enumerate(values)}
        loops = loop_order(derived.ladder, group["loop"])
        for loop, shift in zip(loops, offsets(len(loops), spread=0.25), strict=True):
            line = group[group["loop"] == loop]
            x = line[key].map(where)
            line = line.assign(x=x * 2**shift if log2 else x + shift).sort_values("x")
            step_time_line(axis, line, line["x"].to_numpy(dtype=float), colors[loop], loop)
            crossed = line.merge(stars, on=[*fixed, "loop"]) if len(stars) else line.iloc[:0]
            crossed = crossed[crossed[key] == crossed.get("crossover")]
            axis.plot(crossed["x"], crossed["step_time_median_s"] * 1e3, color=colors[loop], **STAR)
        if log2:
            log_scale(axis, "x", base=2)
        else:
            axis.set_xlim(-0.5, len(values) - 0.5)
        axis.set_xticks(list(where.values()), [str(v) for v in values])
        log_scale(axis)
        axis.set_xlabel(AGAINST[key])
        axis.set_ylabel("median step time (ms)")
        several_runs = cells["run"].nunique() > 1
        axis.set_title(panel_title(group.iloc[0].to_dict(), key, several_runs), fontsize=9)
        axis.legend(fontsize=7)
    star = f"; star: within {OVERHEAD_THRESHOLD:.0%} of {reference} from here on"
    figure.suptitle(
        f"Step time against {AGAINST[key]}\n(points: medians; whiskers: 95% CI{star if len(stars) else ''})",
        fontsize=10,
    )
    return save(figure, path)


def plot_break_even(derived: Derived, path: Path) -> Path | None:
    """Steps until each rung's compile time pays back against the rung it compares with:
    points on a log axis ("never" written where it does not), the steps of the report's
    epochs as a dashed line."""
    table = derived.break_even
    if table.empty:
        return None
    colors = loop_colors(derived)
    workloads = sorted(table["workload"].unique())
    figure, axes = panels(len(workloads), columns=2, width=5.5, height=3.4)
    for axis, workload in zip(axes, workloads, strict=True):
        frame = table[table["workload"] == workload].copy()
        frame["variant"] = variant_labels(frame)
        variants = list(dict.fromkeys(frame["variant"]))
        pairs = list(dict.fromkeys(zip(frame["loop"], frame["reference"], strict=True)))
        shifts = offsets(len(pairs))
        finite = frame["break_even_steps"].to_numpy(dtype=float)
        ceiling = np.nanmax(finite, initial=1.0) * 3
        for offset, (loop, reference) in zip(shifts, pairs, strict=True):
            part = frame[(frame["loop"] == loop) & (frame["reference"] == reference)]
            part = part.set_index("variant").reindex(variants)
            positions = np.arange(len(variants)) + offset
            steps = part["break_even_steps"].to_numpy(dtype=float)
            color = colors.get(loop, "gray")
            axis.plot(
                positions[np.isfinite(steps)],
                steps[np.isfinite(steps)],
                marker="o",
                markersize=7,
                linestyle="none",
                color=color,
                markeredgecolor="black",
                label=f"{loop} vs {reference}",
            )
            for position, value, outcome in zip(positions, steps, part["outcome"], strict=True):
                if outcome in ("never", "unknown"):
                    axis.text(position, 1.2, outcome, va="bottom", color=color, **UPRIGHT)
                elif np.isfinite(value):
                    axis.text(
                        position,
                        value * 1.25,
                        f"{value:,.0f}",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
        per_epoch = frame["break_even_steps"] / frame["break_even_epochs"]
        epoch_steps = per_epoch[np.isfinite(per_epoch)].median() if len(variants) == 1 else np.nan
        if np.isfinite(epoch_steps):
            at = epoch_steps * derived.epochs
            axis.axhline(at, color="gray", linewidth=0.8, linestyle="--")
            epochs = f" {derived.epochs} epoch{'s' if derived.epochs != 1 else ''}"
            axis.text(
                len(variants) - 0.5, at, epochs, fontsize=7, color="gray", ha="right", va="bottom"
            )
            ceiling = max(ceiling, at * 3)
        axis.set_ylim(0.7, max(ceiling, 10))  # a break-even of 1 step shows whole
        log_scale(axis)
        axis.set_xticks(
            np.arange(len(variants)), [v or workload for v in variants], rotation=15, fontsize=8
        )
        axis.set_xlim(-0.6, len(variants) - 0.4)
        axis.set_ylabel("steps to break even")
        axis.set_title(f"{workload}: each rung vs the one it compares with", fontsize=10)
        axis.legend(fontsize=7)
    figure.suptitle(
        "Compile break-even:\nsteps after which total time (incl. compile) is lower", fontsize=10
    )
    return save(figure, path)


PROFILE_COLUMNS = ("profile_op_time_s", "profile_input_wait_s")


def plot_profile(derived: Derived, path: Path) -> Path | None:
    """Profiler breakdown per step: op time, input wait, the rest of the step; stacked bars."""
    cells = derived.cells
    if not all(column in cells for column in PROFILE_COLUMNS):
        return None
    cells = cells.dropna(subset=list(PROFILE_COLUMNS))
    cells = cells[cells["status"] == "ok"]
    if cells.empty:
        return None
    cells = cells.copy()
    cells["variant"] = variant_labels(cells)
    labels = [
        f"{row.workload}/{row.loop}" + (f"\n{row.variant}" if row.variant else "")
        for row in cells.itertuples()
    ]
    op_ms, wait_ms, step_ms = (
        cells[c].to_numpy(dtype=float) * 1e3 for c in (*PROFILE_COLUMNS, "step_time_median_s")
    )
    stack = {
        "op time": (op_ms, "#1f77b4"),
        "input wait": (wait_ms, "#ff7f0e"),
        "rest of the step (host overhead)": ((step_ms - op_ms - wait_ms).clip(min=0), "#bbbbbb"),
    }
    figure, (axis,) = panels(1, width=max(6.0, 0.55 * len(labels)), height=4.2)
    positions, bottom = np.arange(len(labels)), np.zeros(len(labels))
    for label, (ms, color) in stack.items():
        axis.bar(positions, ms, bottom=bottom, label=label, color=color)
        bottom = bottom + ms
    axis.set_xticks(positions, labels, rotation=60, fontsize=7, ha="right")
    axis.set_ylabel("ms per step")
    axis.legend(fontsize=8)
    axis.set_title("Profiler breakdown per step")
    return save(figure, path)


def write_plots(derived: Derived, plots_dir: str | os.PathLike[str]) -> list[Plot]:
    """Write every plot the data supports into ``plots_dir``; return them in report order."""
    reference = derived.ladder.reference if derived.ladder is not None else "the reference"
    star = "Log-log. A star marks the first {} from which the loop stays within "
    star += f"{OVERHEAD_THRESHOLD:.0%} of {reference}."
    makers = (
        (
            "Step time per loop style",
            "step_times.png",
            plot_step_times,
            "Median steady step of each loop style (filled points) with its 95% CI across "
            "processes (whiskers; none where a cell ran one process); hollow points: the "
            "amortized step, per-epoch costs included, where it differs.",
        ),
        (
            f"Speedup against {reference}",
            f"speedup_vs_{reference}.png",
            plot_speedups,
            f"Above 1: faster than {reference}. Filled: amortized (what a user pays over whole "
            "epochs); hollow: steady step. Whiskers: bootstrap 95% CI of the ratio of medians "
            "across processes (none without one); gray band: no practical difference.",
        ),
        *(
            (f"Step time against {AGAINST[key]}", name, partial(plot_against, key=key), caption)
            for key, name, caption in (
                ("batch_size", "batch_sweep.png", star.format("batch size")),
                ("width", "width_sweep.png", star.format("width")),
            )
        ),
        (
            "Compile break-even",
            "break_even.png",
            plot_break_even,
            "Steps after which a rung's total time, compile included, is lower than that of "
            "the rung it compares with (amortized steps, the run's medians; no interval); the "
            "dashed line: the steps of the report's epochs.",
        ),
        (
            "Profiler breakdown",
            "profile.png",
            plot_profile,
            "Per step, from the profiled run: device/op time, input wait, the rest.",
        ),
        (
            "Step time against steps per call",
            "steps_per_call.png",
            partial(plot_against, key="steps_per_call"),
            "Median steady step per step (not per call) of each loop against steps per call "
            "(log-log), with its 95% CI across processes (whiskers). Read across: a loop at "
            "K against another at one step a call is the question the Steps per call table "
            "answers.",
        ),
        (
            "Step time against precision",
            "precision.png",
            partial(plot_against, key="precision"),
            "Median steady step of each loop in each precision (log scale), with its 95% CI "
            "across processes (whiskers).",
        ),
    )
    written = []
    for title, name, maker, caption in makers:
        path = maker(derived, Path(plots_dir) / name)
        if path is not None:
            written.append(Plot(title=title, path=path, caption=caption))
    return written
