"""PNG plots of a report (matplotlib, Agg backend: no display needed).

Plots (each written only when the data has something to show):

Every figure with an interval is a point with 95% whiskers (no bars on a log axis); a
point without an interval (one process) has no whisker.

* ``step_times.png``: median steady step per loop style with whiskers, the amortized
  step (per-epoch costs included) as a hollow point where it differs; a panel per workload.
* ``speedup_vs_<reference>.png``: speedup against the ladder's reference loop, amortized
  and steady, with bootstrap 95% whiskers (log scale; the band of no practical
  difference shaded).
* ``batch_sweep.png`` / ``width_sweep.png``: step time against batch size (width),
  log-log, one line per loop style, crossovers (overhead against the reference under
  10%) marked with a star; only when a setting has two or more grid points.
* ``break_even.png``: steps until a rung's compile time pays back against the rung it
  compares with, as points ("never" where it does not), the report's epochs dashed.

Loops are drawn in ladder order, each in its colour of ``PALETTE`` by its place there.
* ``profile.png``: profiler breakdown per step (op time, input wait, the rest)
  as stacked bars, when the run was profiled.

Run it::

    python -c "from reports.rundir import load_runs; from reports.report.aggregate import RunSet; \
from tf_loopbench.reports.report.derived import derive; from reports.report.plots import write_plots; \
print(write_plots(derive(RunSet.of(load_runs(['RUN']))), 'RUN/plots'))"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from tf_loopbench.reports.report.derived import (  # noqa: E402
    OVERHEAD_THRESHOLD,
    SPEEDUP_COLUMNS,
    Derived,
    loop_order,
)

#: Colours of the loops in ladder order (the reference first); loops not on it are gray.
PALETTE = (
    "#444444",
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)
DPI = 96
#: The shaded band of no practical difference (a patch, not a bar)
BAND_GID = "no-practical-difference"
VARIANT_KEYS = ("run", "device", "batch_size", "width", "steps_per_call", "precision", "strategy")


@dataclass(frozen=True)
class Plot:
    """One written plot: its file and what it shows."""

    title: str
    path: Path
    caption: str


def loop_colors(derived: Derived) -> dict[str, str]:
    """A colour per loop, by its place on the ladder (by first appearance without one)."""
    loops = loop_order(derived.ladder, derived.cells["loop"])
    return {loop: PALETTE[i % len(PALETTE)] for i, loop in enumerate(loops)}


def _loops_in(derived: Derived, frame: pd.DataFrame) -> list[str]:
    return loop_order(derived.ladder, frame["loop"])


def _variant_labels(frame: pd.DataFrame) -> pd.Series:
    """Label each row by the setting keys that vary in ``frame`` ("batch 128, width 256")."""
    varying = [key for key in VARIANT_KEYS if key in frame and frame[key].nunique() > 1]
    if not varying:
        return pd.Series("", index=frame.index)
    names = {
        "run": "{}",
        "device": "{}",
        "batch_size": "batch {}",
        "width": "width {}",
        "steps_per_call": "{} steps/call",
        "precision": "{}",
        "strategy": "{}",
    }
    return frame.apply(
        lambda row: ", ".join(names[key].format(row[key]) for key in varying), axis=1
    )


def _panels(count: int, columns: int = 3, width: float = 5.0, height: float = 3.6):
    columns = max(1, min(columns, count))
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False
    )
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return figure, list(axes.flat[:count])


def _log_scale(axis, which: str = "y", base: float = 10) -> None:
    """Log scale with plain tick labels at 1-2-5 steps (faster and easier to read than 2x10^1)."""
    target = axis.yaxis if which == "y" else axis.xaxis
    (axis.set_yscale if which == "y" else axis.set_xscale)("log", base=base)
    if base == 10:
        target.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_minor_locator(ticker.NullLocator())
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")
    plt.close(figure)
    return path


def _step_time_line(axis, line: pd.DataFrame, x, color, label: str) -> None:
    """One loop's median step time (ms) along ``x``, joined, with interval whiskers."""
    median = line["step_time_median_s"].to_numpy(dtype=float) * 1e3
    axis.plot(x, median, marker="o", markersize=3, color=color, label=label)
    _points(
        axis,
        x,
        median,
        line["step_time_ci_low_s"].to_numpy(dtype=float) * 1e3,
        line["step_time_ci_high_s"].to_numpy(dtype=float) * 1e3,
        color,
    )


def _points(axis, x, y, low, high, color, *, filled: bool = True, label=None) -> None:
    """Point estimates with 95% interval whiskers; no whisker where there is no interval
    (NaN bounds: fewer than two processes)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    colors = color if isinstance(color, list) else [color] * len(x)
    shown = np.isfinite(y) & (y > 0)
    for xi, yi, lo, hi, c, show in zip(x, y, low, high, colors, shown, strict=True):
        if not show:
            continue
        if np.isfinite(lo) and np.isfinite(hi):
            axis.errorbar(
                [xi],
                [yi],
                yerr=[[max(0.0, yi - lo)], [max(0.0, hi - yi)]],
                fmt="none",
                ecolor=c,
                elinewidth=1.2,
                capsize=3,
            )
        axis.plot(
            [xi],
            [yi],
            marker="o" if filled else "D",
            markersize=6 if filled else 5,
            color=c,
            markerfacecolor=c if filled else "white",
            markeredgecolor="black" if filled else c,
            markeredgewidth=0.6 if filled else 1.4,
            linestyle="none",
        )
    if label is not None:  # one legend entry, however many points
        axis.plot(
            [],
            [],
            marker="o" if filled else "D",
            color="gray",
            markerfacecolor="gray" if filled else "white",
            markeredgecolor="black" if filled else "gray",
            linestyle="none",
            label=label,
        )


def _offsets(count: int, spread: float = 0.6) -> np.ndarray:
    if count <= 1:
        return np.zeros(1)
    return np.linspace(-spread / 2, spread / 2, count)


def plot_step_times(derived: Derived, path: Path) -> Path | None:
    """Median steady step per loop style with 95% interval whiskers, and the amortized
    step (per-epoch costs included) where it differs; a panel per workload."""
    cells = derived.cells
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        return None
    colors = loop_colors(derived)
    workloads = sorted(cells["workload"].unique())
    figure, axes = _panels(len(workloads))
    for axis, workload in zip(axes, workloads, strict=True):
        frame = cells[cells["workload"] == workload].copy()
        frame["variant"] = _variant_labels(frame)
        loops = _loops_in(derived, frame)
        variants = list(dict.fromkeys(frame["variant"]))
        offsets = _offsets(len(variants))
        amortized_shown = False
        for offset, variant in zip(offsets, variants, strict=True):
            part = frame[frame["variant"] == variant].set_index("loop").reindex(loops)
            positions = np.arange(len(loops)) + offset
            ok_part = (part["status"] == "ok").to_numpy()
            steady = np.where(ok_part, part["step_time_median_s"].to_numpy(dtype=float), np.nan)
            _points(
                axis,
                positions,
                steady * 1e3,
                part["step_time_ci_low_s"].to_numpy(dtype=float) * 1e3,
                part["step_time_ci_high_s"].to_numpy(dtype=float) * 1e3,
                [colors.get(loop, "gray") for loop in loops],
            )
            amortized = np.where(
                ok_part, part["amortized_step_time_s"].to_numpy(dtype=float), np.nan
            )
            differs = np.isfinite(amortized) & (np.abs(amortized / steady - 1) > 0.01)
            if differs.any():
                amortized_shown = True
                _points(
                    axis,
                    positions[differs],
                    amortized[differs] * 1e3,
                    np.full(differs.sum(), np.nan),
                    np.full(differs.sum(), np.nan),
                    [colors.get(loop, "gray") for loop, d in zip(loops, differs, strict=True) if d],
                    filled=False,
                )
            for position, loop in zip(positions, loops, strict=True):
                status = part["status"].get(loop)
                if status in ("failed", "skipped"):
                    axis.text(
                        position,
                        0.02,
                        status,
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        transform=axis.get_xaxis_transform(),
                    )
            if variant:
                for position in positions:
                    axis.annotate(
                        variant,
                        (position, 0.98),
                        xycoords=("data", "axes fraction"),
                        fontsize=5,
                        rotation=90,
                        ha="center",
                        va="top",
                        color="gray",
                    )
        axis.set_xticks(np.arange(len(loops)), loops, rotation=20)
        axis.set_xlim(-0.6, len(loops) - 0.4)
        _log_scale(axis)
        axis.set_ylabel("step time (ms)")
        axis.set_title(workload)
        if amortized_shown:
            _points(axis, [], [], [], [], "gray", label="steady step (median)")
            _points(
                axis, [], [], [], [], "gray", filled=False, label="amortized (per-epoch costs in)"
            )
            axis.legend(fontsize=7)
    figure.suptitle(
        "Step time per loop style\n(points: medians; whiskers: 95% CI across processes)",
        fontsize=10,
    )
    return _save(figure, path)


def plot_speedups(derived: Derived, path: Path) -> Path | None:
    """Speedup against the reference per loop style, amortized (filled) and steady
    (hollow), with bootstrap 95% interval whiskers; log scale, the band of no practical
    difference shaded."""
    if derived.ladder is None:
        return None
    reference = derived.ladder.reference
    cells = derived.cells.dropna(subset=["speedup_vs_reference"])
    if cells.empty:
        return None
    colors = loop_colors(derived)
    workloads = sorted(cells["workload"].unique())
    figure, axes = _panels(len(workloads))
    band = derived.threshold
    for axis, workload in zip(axes, workloads, strict=True):
        frame = cells[cells["workload"] == workload].copy()
        frame["variant"] = _variant_labels(frame)
        loops = _loops_in(derived, frame)
        variants = list(dict.fromkeys(frame["variant"]))
        offsets = _offsets(len(variants))
        step = 0.6 / max(1, len(variants)) / 3
        for offset, variant in zip(offsets, variants, strict=True):
            part = frame[frame["variant"] == variant].set_index("loop").reindex(loops)
            positions = np.arange(len(loops)) + offset
            loop_colors_ = [colors.get(loop, "gray") for loop in loops]
            for figure_name, shift, filled in (("amortized", -step, True), ("steady", step, False)):
                value, low, high = SPEEDUP_COLUMNS[("reference", figure_name)]
                _points(
                    axis,
                    positions + shift,
                    part[value].to_numpy(dtype=float),
                    part[low].to_numpy(dtype=float),
                    part[high].to_numpy(dtype=float),
                    loop_colors_,
                    filled=filled,
                )
        axis.axhspan(1 - band, 1 + band, color="#dddddd", zorder=0, gid=BAND_GID)
        axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        _log_scale(axis)
        axis.set_xticks(np.arange(len(loops)), loops, rotation=20)
        axis.set_xlim(-0.6, len(loops) - 0.4)
        axis.set_ylabel(f"speedup vs {reference} (>1: faster)")
        axis.set_title(
            workload if not any(variants) else f"{workload} ({', '.join(variants)})", fontsize=10
        )
        _points(axis, [], [], [], [], "gray", label="amortized (per-epoch costs in)")
        _points(axis, [], [], [], [], "gray", filled=False, label="steady step")
        axis.legend(fontsize=7)
    figure.suptitle(
        f"Speedup against {reference}\n(whiskers: bootstrap 95% CI; gray band: within ±{band:.0%})",
        fontsize=10,
    )
    return _save(figure, path)


def plot_sweep(derived: Derived, path: Path, axis_key: str = "batch_size") -> Path | None:
    """Step time against batch size (or width), log-log, per loop style; crossovers starred."""
    fixed_key = "width" if axis_key == "batch_size" else "batch_size"
    cells = derived.cells[derived.cells["status"] == "ok"]
    settings = [
        (setting, group)
        for setting, group in cells.groupby(["run", "workload", "device", fixed_key], sort=True)
        if group[axis_key].nunique() >= 2
    ]
    if not settings:
        return None
    colors = loop_colors(derived)
    reference = derived.ladder.reference if derived.ladder is not None else None
    crossovers = derived.crossovers
    crossovers = crossovers[
        (crossovers["axis"] == axis_key) & (crossovers["reference"] == reference)
    ]
    several_runs = cells["run"].nunique() > 1
    figure, axes = _panels(len(settings))
    for axis, ((run, workload, device, fixed_value), group) in zip(axes, settings, strict=True):
        for loop in _loops_in(derived, group):
            line = group[group["loop"] == loop].sort_values(axis_key)
            x = line[axis_key].to_numpy(dtype=float)
            color = colors.get(loop, "gray")
            _step_time_line(axis, line, x, color, loop)
            marks = crossovers[
                (crossovers["run"] == run)
                & (crossovers["workload"] == workload)
                & (crossovers["device"] == device)
                & (crossovers["fixed_value"] == fixed_value)
                & (crossovers["loop"] == loop)
                & (crossovers["outcome"] != "never")
            ]
            for crossover in marks["crossover"]:
                at = line.loc[line[axis_key] == crossover, "step_time_median_s"]
                if not at.empty:
                    axis.plot(
                        [crossover],
                        [float(at.iloc[0]) * 1e3],
                        marker="*",
                        markersize=13,
                        color=colors.get(loop, "gray"),
                        markeredgecolor="black",
                    )
        _log_scale(axis, "x", base=2)
        axis.set_xticks(sorted(group[axis_key].unique()))
        _log_scale(axis)
        axis.set_xlabel(axis_key.replace("_", " "))
        axis.set_ylabel("median step time (ms)")
        fixed_name = "width" if fixed_key == "width" else "batch"
        title = f"{workload} on {device}, {fixed_name} {fixed_value}"
        axis.set_title(f"{run}: {title}" if several_runs else title, fontsize=10)
        axis.legend(fontsize=7)
    what = "batch size" if axis_key == "batch_size" else "width"
    stars = (
        f"\n(star: within {OVERHEAD_THRESHOLD:.0%} of {reference} from here on)"
        if reference
        else ""
    )
    figure.suptitle(f"Step time against {what}{stars}", fontsize=10)
    return _save(figure, path)


def plot_break_even(derived: Derived, path: Path) -> Path | None:
    """Steps until each rung's compile time pays back against the rung it compares with:
    points on a log axis ("never" written where it does not), the steps of the report's
    epochs as a dashed line."""
    table = derived.break_even
    if table.empty:
        return None
    colors = loop_colors(derived)
    workloads = sorted(table["workload"].unique())
    figure, axes = _panels(len(workloads), columns=2, width=5.5, height=3.4)
    for axis, workload in zip(axes, workloads, strict=True):
        frame = table[table["workload"] == workload].copy()
        frame["variant"] = _variant_labels(frame)
        variants = list(dict.fromkeys(frame["variant"]))
        pairs = list(dict.fromkeys(zip(frame["loop"], frame["reference"], strict=True)))
        offsets = _offsets(len(pairs))
        finite = frame["break_even_steps"].to_numpy(dtype=float)
        ceiling = np.nanmax(finite, initial=1.0) * 3
        for offset, (loop, reference) in zip(offsets, pairs, strict=True):
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
                    axis.text(
                        position,
                        1.2,
                        outcome,
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        color=color,
                    )
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
            axis.text(
                len(variants) - 0.5,
                at,
                f" {derived.epochs} epoch{'s' if derived.epochs != 1 else ''}",
                fontsize=7,
                color="gray",
                va="bottom",
                ha="right",
            )
            ceiling = max(ceiling, at * 3)
        axis.set_ylim(0.7, max(ceiling, 10))  # a break-even of 1 step shows whole
        _log_scale(axis)
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
    return _save(figure, path)


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
    cells["variant"] = _variant_labels(cells)
    labels = [
        f"{row.workload}/{row.loop}" + (f"\n{row.variant}" if row.variant else "")
        for row in cells.itertuples()
    ]
    op_ms = cells["profile_op_time_s"].to_numpy(dtype=float) * 1e3
    wait_ms = cells["profile_input_wait_s"].to_numpy(dtype=float) * 1e3
    rest_ms = (cells["step_time_median_s"].to_numpy(dtype=float) * 1e3 - op_ms - wait_ms).clip(
        min=0
    )
    figure, axis = plt.subplots(figsize=(max(6.0, 0.55 * len(labels)), 4.2))
    positions = np.arange(len(labels))
    axis.bar(positions, op_ms, label="op time", color="#1f77b4")
    axis.bar(positions, wait_ms, bottom=op_ms, label="input wait", color="#ff7f0e")
    axis.bar(
        positions,
        rest_ms,
        bottom=op_ms + wait_ms,
        label="rest of the step (host overhead)",
        color="#bbbbbb",
    )
    axis.set_xticks(positions, labels, rotation=60, fontsize=7, ha="right")
    axis.set_ylabel("ms per step")
    axis.legend(fontsize=8)
    axis.set_title("Profiler breakdown per step")
    return _save(figure, path)


def write_plots(derived: Derived, plots_dir: str | os.PathLike[str]) -> list[Plot]:
    """Write every plot the data supports into ``plots_dir``; return them in report order."""
    plots_dir = Path(plots_dir)
    reference = derived.ladder.reference if derived.ladder is not None else "the reference"
    within = f"stays within {OVERHEAD_THRESHOLD:.0%} of {reference}"
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
        (
            "Step time against batch size",
            "batch_sweep.png",
            lambda d, p: plot_sweep(d, p, "batch_size"),
            f"Log-log. A star marks the first batch size from which the loop {within}.",
        ),
        (
            "Step time against width",
            "width_sweep.png",
            lambda d, p: plot_sweep(d, p, "width"),
            f"Log-log. A star marks the first width from which the loop {within}.",
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
    )
    written = []
    for title, name, maker, caption in makers:
        path = maker(derived, plots_dir / name)
        if path is not None:
            written.append(Plot(title=title, path=path, caption=caption))
    from tf_loopbench.reports.report.knobs import knob_plots  # per knob axis; it reads this module

    return written + knob_plots(derived, plots_dir)


__all__ = [
    "PALETTE",
    "Plot",
    "loop_colors",
    "plot_break_even",
    "plot_profile",
    "plot_speedups",
    "plot_step_times",
    "plot_sweep",
    "write_plots",
]
