"""The report's PNG plots along the ladder (matplotlib, Agg backend: no display needed),
each written only when the data has something to show; sections add their own
(``plots`` hook of ``reports.report.sections``).

Every figure with an interval is a point with 95% whiskers (no bars on a log axis); a
point without one (one process) has no whisker. Loops are drawn in ladder order, each
in its colour (``common.PALETTE``).

* ``step_times.png``: median steady step per loop style, the amortized step (per-epoch
  costs included) as a hollow point where it differs; a panel per workload.
* ``speedup_vs_<reference>.png``: speedup against the ladder's reference, amortized and
  steady (log scale; the band of no practical difference shaded).
* ``batch_sweep.png`` / ``width_sweep.png``: step time against batch size (width),
  log-log, crossovers (overhead against the reference under 10%) starred.
* ``break_even.png``: steps until a rung's compile pays back against its neighbour.
* ``profile.png``: profiler breakdown per step (op time, input wait, the rest).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tf_loopbench.reports.report.common import (
    Plot,
    log_scale,
    loop_colors,
    offsets,
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
)

#: The shaded band of no practical difference (a patch, not a bar)
BAND_GID = "no-practical-difference"


def plot_step_times(derived: Derived, path: Path) -> Path | None:
    """Median steady step per loop style with 95% interval whiskers, and the amortized
    step (per-epoch costs included) where it differs; a panel per workload."""
    cells = derived.cells
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        return None
    colors = loop_colors(derived)
    workloads = sorted(cells["workload"].unique())
    figure, axes = panels(len(workloads))
    for axis, workload in zip(axes, workloads, strict=True):
        frame = cells[cells["workload"] == workload].copy()
        frame["variant"] = variant_labels(frame)
        loops = loop_order(derived.ladder, frame["loop"])
        variants = list(dict.fromkeys(frame["variant"]))
        shifts = offsets(len(variants))
        amortized_shown = False
        for offset, variant in zip(shifts, variants, strict=True):
            part = frame[frame["variant"] == variant].set_index("loop").reindex(loops)
            positions = np.arange(len(loops)) + offset
            ok_part = (part["status"] == "ok").to_numpy()
            steady = np.where(ok_part, part["step_time_median_s"].to_numpy(dtype=float), np.nan)
            points(
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
                points(
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
        log_scale(axis)
        axis.set_ylabel("step time (ms)")
        axis.set_title(workload)
        if amortized_shown:
            points(axis, [], [], [], [], "gray", label="steady step (median)")
            points(
                axis, [], [], [], [], "gray", filled=False, label="amortized (per-epoch costs in)"
            )
            axis.legend(fontsize=7)
    figure.suptitle(
        "Step time per loop style\n(points: medians; whiskers: 95% CI across processes)",
        fontsize=10,
    )
    return save(figure, path)


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
    figure, axes = panels(len(workloads))
    band = derived.threshold
    for axis, workload in zip(axes, workloads, strict=True):
        frame = cells[cells["workload"] == workload].copy()
        frame["variant"] = variant_labels(frame)
        loops = loop_order(derived.ladder, frame["loop"])
        variants = list(dict.fromkeys(frame["variant"]))
        shifts = offsets(len(variants))
        step = 0.6 / max(1, len(variants)) / 3
        for offset, variant in zip(shifts, variants, strict=True):
            part = frame[frame["variant"] == variant].set_index("loop").reindex(loops)
            positions = np.arange(len(loops)) + offset
            loop_colors_ = [colors.get(loop, "gray") for loop in loops]
            for figure_name, shift, filled in (("amortized", -step, True), ("steady", step, False)):
                value, low, high = SPEEDUP_COLUMNS[("reference", figure_name)]
                points(
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
        log_scale(axis)
        axis.set_xticks(np.arange(len(loops)), loops, rotation=20)
        axis.set_xlim(-0.6, len(loops) - 0.4)
        axis.set_ylabel(f"speedup vs {reference} (>1: faster)")
        axis.set_title(
            workload if not any(variants) else f"{workload} ({', '.join(variants)})", fontsize=10
        )
        points(axis, [], [], [], [], "gray", label="amortized (per-epoch costs in)")
        points(axis, [], [], [], [], "gray", filled=False, label="steady step")
        axis.legend(fontsize=7)
    figure.suptitle(
        f"Speedup against {reference}\n(whiskers: bootstrap 95% CI; gray band: within ±{band:.0%})",
        fontsize=10,
    )
    return save(figure, path)


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
    figure, axes = panels(len(settings))
    for axis, ((run, workload, device, fixed_value), group) in zip(axes, settings, strict=True):
        for loop in loop_order(derived.ladder, group["loop"]):
            line = group[group["loop"] == loop].sort_values(axis_key)
            x = line[axis_key].to_numpy(dtype=float)
            color = colors.get(loop, "gray")
            step_time_line(axis, line, x, color, loop)
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
        log_scale(axis, "x", base=2)
        axis.set_xticks(sorted(group[axis_key].unique()))
        log_scale(axis)
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
    op_ms = cells["profile_op_time_s"].to_numpy(dtype=float) * 1e3
    wait_ms = cells["profile_input_wait_s"].to_numpy(dtype=float) * 1e3
    rest_ms = (cells["step_time_median_s"].to_numpy(dtype=float) * 1e3 - op_ms - wait_ms).clip(
        min=0
    )
    figure, (axis,) = panels(1, width=max(6.0, 0.55 * len(labels)), height=4.2)
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
    return save(figure, path)


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
    return written
