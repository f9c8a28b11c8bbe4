"""The report's PNG plots, each written only when the data has something to show: points with
interval whiskers (no bars on a log axis), loops in ladder order (:func:`write_plots`)."""

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
    epochs_text,
    log_scale,
    loop_colors,
    offsets,
    optional_bool,
    panels,
    points,
    save,
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
    key: key.replace("_", " ") for key in ("batch_size", "width", "steps_per_call", "precision")
}
#: The plots' captions in the report (write_plots)
STEP_TIMES = (
    "Median steady step of each loop style (filled points) with its interval across processes "
    "(whiskers; none where a cell ran one process); hollow points: the amortized step, "
    "per-epoch costs included, where it differs."
)
SPEEDUPS = (
    "Above 1: faster than {reference}. Filled: amortized (what a user pays over whole epochs); "
    "hollow: steady step. Whiskers: bootstrap interval of the ratio of medians across processes "
    "(none without one); gray band: no practical difference."
)
BREAK_EVEN = (
    "Steps after which a rung's total time, compile included, is lower than that of the rung "
    "it compares with (amortized steps, the run's medians; no interval); the dashed line: the "
    "steps of the report's epochs."
)
PROFILE = "Per step, from the profiled run: device/op time, input wait, the rest."
STEPS = (
    "Median steady step per step (not per call) of each loop against steps per call (log-log), "
    "with its interval across processes (whiskers). Read across: a loop at K against another at "
    "one step a call is the question the Steps per call table answers."
)
PRECISION = (
    "Median steady step of each loop in each precision (log scale), with its interval across "
    "processes (whiskers)."
)
STEP_TIME_COLUMNS = ("step_time_median_s", "step_time_ci_low_s", "step_time_ci_high_s")
#: Text written upright at a point (a status, a variant, "never").
UPRIGHT = {"rotation": 90, "ha": "center", "fontsize": 7}
#: A crossover: the first point from which a loop keeps within the overhead threshold.
STAR = {"marker": "*", "markersize": 13, "linestyle": "none", "markeredgecolor": "black"}


def usable(cells: pd.DataFrame) -> pd.DataFrame:
    """Ok cells with a positive step time that are not marked not equivalent."""
    ok = ok_cells(cells)
    return ok[ok["equivalent"].map(lambda value: optional_bool(value) is not False)]


def loop_figure(derived: Derived, cells: pd.DataFrame, draw, ylabel: str, legend: tuple):
    """A panel per workload, loops along x, a setting's variants side by side, each drawn by
    ``draw(axis, part, positions, colors)``; ``legend``: the filled and the hollow points."""
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
        for label, filled in zip(legend, (True, False), strict=False):
            points(axis, [], [], [], [], "gray", filled=filled, label=label)
        axis.legend(fontsize=7)
    return figure


def plot_step_times(derived: Derived, path: Path) -> Path | None:
    """Median steady step per loop style, the amortized step hollow where it differs."""
    cells = derived.cells
    if (cells["status"] != "ok").all():
        return None

    def draw(axis, part, positions, colors):
        ran = part[[*STEP_TIME_COLUMNS, "amortized_step_time_s"]].where(part["status"] == "ok")
        steady, low, high, amortized = ran.to_numpy(dtype=float).T * 1e3
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
    title = "Step time per loop style\n(points: medians; whiskers: intervals across processes)"
    figure.suptitle(title, fontsize=10)
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
        f"Speedup against {reference}\n(whiskers: bootstrap intervals; gray band: within ±{band:.0%})",
        fontsize=10,
    )
    return save(figure, path)


def plot_against(derived: Derived, path: Path, key: str) -> Path | None:
    """Median steady step against ``key`` (log2 axis; precision as categories), a line per
    loop, a panel per setting without it, crossovers starred; None without two values."""
    cells = usable(derived.cells)
    fixed = [k for k in RUN_SETTING_KEYS if k != key]
    settings = [g for _, g in cells.groupby(fixed, sort=True, dropna=False) if g[key].nunique() > 1]
    if not settings:
        return None
    colors = loop_colors(derived)
    reference = derived.ladder.reference if derived.ladder is not None else None
    stars = derived.crossovers
    stars = stars[(stars["axis"] == key) & (stars["reference"] == reference)]
    stars = stars[stars["outcome"] != "never"]
    if len(stars):  # the sweep's other key is held at fixed_value
        stars = stars.assign(**{stars["fixed_key"].iloc[0]: stars["fixed_value"]})
    hide_run = set() if cells["run"].nunique() > 1 else {RUN_KEY}
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
            median, low, high = (line[c].to_numpy(dtype=float) * 1e3 for c in STEP_TIME_COLUMNS)
            axis.plot(line["x"], median, marker="o", markersize=3, color=colors[loop], label=loop)
            points(axis, line["x"], median, low, high, colors[loop])
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
        # the setting without ``key`` nor the keys at their defaults: "mlp (cpu, width 256)"
        row = group.iloc[0]
        defaults = {k for k in VARIANT_NAMES if row[k] == CELL_KEY_DEFAULTS.get(k)}
        hidden = defaults | hide_run | {key, "workload"}
        shown = [n.format(row[k]) for k, n in VARIANT_NAMES.items() if k not in hidden]
        axis.set_title(f"{row['workload']} ({', '.join(shown)})", fontsize=9)
        axis.legend(fontsize=7)
    star = f"; star: within {OVERHEAD_THRESHOLD:.0%} of {reference} from here on"
    title = f"Step time against {AGAINST[key]}\n(points: medians; whiskers: intervals"
    figure.suptitle(f"{title}{star if len(stars) else ''})", fontsize=10)
    return save(figure, path)


def plot_break_even(derived: Derived, path: Path) -> Path | None:
    """Steps until each rung's compile time pays back against the rung it compares with, on a
    log axis ("never" written where it does not); dashes: the steps of the report's epochs."""
    table = derived.break_even
    if table.empty:
        return None
    per_epoch = table["break_even_steps"] / table["break_even_epochs"]
    table = table.assign(epoch_steps=per_epoch.where(np.isfinite(per_epoch)) * derived.epochs)

    def draw(axis, part, positions, colors):
        steps = part["break_even_steps"].to_numpy(dtype=float)
        points(axis, positions, steps, steps * np.nan, steps * np.nan, colors)
        axis.hlines(part["epoch_steps"], positions - 0.1, positions + 0.1, color="gray", ls="--")
        for position, value, outcome in zip(positions, steps, part["outcome"], strict=True):
            if outcome in ("never", "unknown"):
                at = axis.get_xaxis_transform()
                axis.text(position, 0.02, outcome, va="bottom", transform=at, **UPRIGHT)
            elif np.isfinite(value):
                axis.text(position, value * 1.25, f"{value:,.0f}", ha="center", fontsize=6)

    ylabel = f"steps to break even (dashed: {epochs_text(derived.epochs)})"
    figure = loop_figure(derived, table, draw, ylabel, ("break-even step",))
    ceiling = np.nanmax([*table["break_even_steps"], *table["epoch_steps"], 1.0]) * 3
    against = dict(zip(table["loop"], table["reference"], strict=False))
    for axis in figure.axes[: table["workload"].nunique()]:
        axis.set_ylim(0.7, max(ceiling, 10))  # a break-even of 1 step shows whole
        labels = [f"{t.get_text()}\nvs {against[t.get_text()]}" for t in axis.get_xticklabels()]
        axis.set_xticks(axis.get_xticks(), labels, rotation=0, fontsize=8)
    title = "Compile break-even:\nsteps after which total time (incl. compile) is lower"
    figure.suptitle(title, fontsize=10)
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
    cells = cells.assign(variant=variant_labels)
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
    speedups = SPEEDUPS.format(reference=reference)
    sweep = {
        k: (f"Step time against {v}", partial(plot_against, key=k)) for k, v in AGAINST.items()
    }
    makers = {  # file: (title, maker, caption)
        "step_times.png": ("Step time per loop style", plot_step_times, STEP_TIMES),
        f"speedup_vs_{reference}.png": (f"Speedup against {reference}", plot_speedups, speedups),
        "batch_sweep.png": (*sweep["batch_size"], star.format("batch size")),
        "width_sweep.png": (*sweep["width"], star.format("width")),
        "break_even.png": ("Compile break-even", plot_break_even, BREAK_EVEN),
        "profile.png": ("Profiler breakdown", plot_profile, PROFILE),
        "steps_per_call.png": (*sweep["steps_per_call"], STEPS),
        "precision.png": (*sweep["precision"], PRECISION),
    }
    written = []
    for name, (title, maker, caption) in makers.items():
        path = maker(derived, Path(plots_dir) / name)
        if path is not None:
            written.append(Plot(title=title, path=path, caption=caption))
    return written
