"""What the report's sections share, all public: the document model (blocks), figures and
comparisons in words, a setting in words and the plot helpers. Nothing here pairs cells
(``reports.compare`` does)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from tf_loopbench.reports.compare import (  # noqa: E402
    CELL_KEY_DEFAULTS,
    MISSING,
    RATIO_COVERAGE,
    RUN_KEY,
    SAME,
    SETTING_KEYS,
    SLOWER,
    UNCLEAR,
    simulated_coverage,
    verdict,
)
from tf_loopbench.reports.report.derived import SPEEDUP_COLUMNS, Derived, loop_order  # noqa: E402
from tf_loopbench.reports.rundir import (  # noqa: E402
    FIRST_EPOCH_ENDS,
    Ladder,
    Rung,
    optional_bool,
)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # every value already a string


@dataclass(frozen=True)
class Plot:
    title: str
    path: Path
    caption: str


@dataclass(frozen=True)
class Image:
    plot: Plot


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: tuple = field(default_factory=tuple)


Block = Heading | Paragraph | Bullets | Table | Image | Details


@dataclass(frozen=True)
class Decision:
    """One sentence of the Decisions, grouped by ``topic``; ``claim`` is False when the data
    cannot carry one; ``info``: a statement of what happened, neither claim nor missing one."""

    topic: str
    text: str
    claim: bool
    info: bool = False


@dataclass(frozen=True)
class Context:
    """What a section's ``blocks`` reads: the derived tables, every sentence, every plot."""

    derived: Derived
    sentences: tuple[Decision, ...] = ()
    plots: tuple[Plot, ...] = ()

    @property
    def several_runs(self) -> bool:
        return len(self.derived.run_set.runs) > 1


NO_INTERVAL = "[—]"


def format_ratio(value: float) -> str:
    """8.9 -> "8.9x", 1.234 -> "1.23x"."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.1f}x" if value >= 2 else f"{value:.2f}x"


def format_seconds(value: float) -> str:
    """0.0042 -> "4.2 ms", 1.5 -> "1.50 s" (0.9999996 ms -> "1 ms", not "1e+03 µs")."""
    if not np.isfinite(value):
        return "n/a"
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


def percent(value: float, signed: bool = False) -> str:
    """0.054 -> "5%" ("+5%" signed)."""
    rounded = round(value * 100) + 0  # + 0 turns -0 into 0
    return f"{rounded:+d}%" if signed else f"{rounded:d}%"


def count(number: float, noun: str) -> str:
    number = int(round(number))
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def epochs_text(epochs: float) -> str:
    if not np.isfinite(epochs):
        return "n/a"
    text = f"{epochs:.0f}" if epochs >= 10 or float(epochs).is_integer() else f"{epochs:.2g}"
    return f"{text} epoch{'' if text == '1' else 's'}"


def interval(value: float, low: float, high: float, fmt=format_ratio) -> str:
    """ "1.52x [1.40x-1.61x]"; NO_INTERVAL without one."""
    if not np.isfinite(value):
        return ""
    if np.isfinite(low) and np.isfinite(high):
        return f"{fmt(value)} [{fmt(low)}-{fmt(high)}]"
    return f"{fmt(value)} {NO_INTERVAL}"


def int_or_blank(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.0f}"


def table(frame: pd.DataFrame) -> list[Block]:
    """A table block and, when a figure in it has no interval, why (once, below it)."""
    blocks: list[Block] = [Table(frame)]
    if frame.astype(str).apply(lambda c: c.str.contains(NO_INTERVAL, regex=False)).any().any():
        why = "a cell ran fewer than two worker processes (intervals come from processes only)"
        blocks.append(Paragraph(f"{NO_INTERVAL}: no interval, because {why}."))
    return blocks


def keras_choice(row: Mapping[str, Any]) -> str | None:
    """What Keras chose ("jit_compile off, steps_per_execution 1"); None where not recorded."""
    jit = optional_bool(row.get("keras_jit_compile"))
    steps = row.get("keras_steps_per_execution")
    parts = [f"jit_compile {'on' if jit else 'off'}"] if jit is not None else []
    if isinstance(steps, int | float) and np.isfinite(steps):
        parts.append(f"steps_per_execution {steps:.0f}")
    return ", ".join(parts) or None


#: Setting keys beyond workload, device, batch and width, and their column names: shown
#: only when the runs vary them.
VARYING_SETTING_COLUMNS = {"steps_per_call": "K", "precision": "precision", "strategy": "strategy"}


def varying_setting_keys(cells: pd.DataFrame) -> tuple[str, ...]:
    """The keys of VARYING_SETTING_COLUMNS that ``cells`` vary or hold off their default."""
    return tuple(
        key
        for key in VARYING_SETTING_COLUMNS
        if key in cells
        and (cells[key].nunique() > 1 or (cells[key] != CELL_KEY_DEFAULTS[key]).any())
    )


def setting_fields(row: Mapping, several_runs: bool, varying: Sequence[str] = ()) -> dict:
    """A setting's table columns: run (with several), workload, device, batch, width, ``varying``."""
    return {
        **({RUN_KEY: row[RUN_KEY]} if several_runs else {}),
        "workload": row["workload"],
        "device": row["device"],
        "batch": str(row["batch_size"]),
        "width": str(row["width"]) if row["width"] else "",
        **{VARYING_SETTING_COLUMNS[key]: str(row[key]) for key in varying},
    }


def setting_table(
    cells: pd.DataFrame, rows: Sequence[tuple[Mapping, dict]], several_runs: bool
) -> pd.DataFrame:
    """A table of (cell row, its columns) pairs: the cell's :func:`setting_fields`, then its
    columns, without a "Keras chose" column where no cell of ``cells`` records a choice."""
    varying = varying_setting_keys(cells)
    frame = pd.DataFrame(
        [{**setting_fields(row, several_runs, varying), **columns} for row, columns in rows]
    )
    if any(keras_choice(row) for row in cells.to_dict("records")):
        return frame
    return frame.drop(columns="Keras chose", errors="ignore")


def setting_heading(row: Mapping[str, Any], several_runs: bool) -> str:
    """ "mlp (cpu, batch 128, width 128)": a setting said once."""
    parts = [str(row["device"]), f"batch {int(row['batch_size'])}"]
    if int(row["width"]):
        parts.append(f"width {int(row['width'])}")
    if int(row.get("steps_per_call", 1) or 1) != 1:
        parts.append(f"{int(row['steps_per_call'])} steps a call")
    for key in ("precision", "strategy"):
        if str(row.get(key) or CELL_KEY_DEFAULTS[key]) != CELL_KEY_DEFAULTS[key]:
            parts.append(str(row[key]))
    where = f"{row['run']}: " if several_runs else ""
    return f"{row['workload']} ({where}{', '.join(parts)})"


def compiler_rung(ladder: Ladder | None) -> Rung | None:
    """The rung whose one change is the compiler and that compares with a neighbour (read
    from its text in a ladder written before rungs declared it)."""
    rungs = ladder.rungs if ladder is not None else ()
    declared = any(r.compiler is not None for r in rungs)
    for rung in rungs:
        compiles = rung.compiler if declared else re.search("compil", rung.changes, re.I)
        if rung.compares_with and compiles:
            return rung
    return None


#: Below this many processes a cell's interval is the range of its processes (no narrower
#: order-statistic interval covers 95%: benchmarks/stats.py median_ci).
RANGE_BELOW = 9


def interval_note(derived: Derived) -> str:
    """What the report's intervals are, with their real coverage at the fewest processes
    of its ok cells (docs/decisions/0010): every column and sentence says "interval".

    A cell's: the range of n processes covers the median with 1 - 2^(1-n), exactly."""
    ok = derived.cells[derived.cells["status"] == "ok"]
    counts = pd.to_numeric(ok.get("n_processes"), errors="coerce").dropna()
    n = int(counts.min()) if len(counts) else 0
    if n < 2:
        return "Intervals: none (an interval needs two or more processes a cell)."
    fewest = "" if counts.nunique() == 1 else " (the fewest of a cell here)"
    if ok.get("ci_basis", pd.Series(dtype=object)).eq("processes-bootstrap").any():
        cell = (
            "a percentile bootstrap over its processes (a run made before coverage was stated; "
            "from 5 or fewer it gives their range: 93.75% at 5)"
        )
    elif n < RANGE_BELOW:
        cell = (
            f"the range of its {n} processes{fewest}, which covers its median with probability "
            f"{1 - 2.0 ** (1 - n):.2%} (exact, whatever the distribution)"
        )
    else:
        cell = "order statistics of its processes, covering its median with 95% or more (exact)"
    ratio = simulated_coverage(RATIO_COVERAGE, n)
    return (
        f"Intervals: a cell's step time, {cell}; a speedup, a percentile bootstrap of the "
        f"ratio of medians over both cells' processes (nominal 95%), whose real coverage at "
        f"{n}+{n} processes{fewest} is about {ratio:.0%} (simulated on lognormal, bimodal and "
        "heavy-tailed cells: docs/decisions/0010). An amortized figure's interval resamples "
        "the cell's epoch-end spans with its steady steps."
    )


def epoch_end_note(derived: Derived) -> str | None:
    """A line when a run's cells with epochs charge their first epoch ends (made before later ones
    were timed), else None."""
    processes = derived.run_set.processes
    basis = processes.get("epoch_end_basis", pd.Series(dtype=object))
    old = processes.loc[basis.eq(FIRST_EPOCH_ENDS), RUN_KEY].unique() if len(basis) else []
    if not len(old):
        return None
    return (
        f"{', '.join(map(str, old))}: made before later epoch ends were timed, so its "
        "per-epoch cost is each process's first epoch ends (which can cost more than later ones), "
        "resampled one a process."
    )


EQUIVALENCE = ("equal_work_steps", "equivalence_rtol")


def excluded(row: Mapping[str, Any]) -> str | None:
    """Why no decision is drawn from this cell (failed, skipped, not equivalent), or None."""
    loop = row["loop"]
    if row["status"] != "ok":
        error = row.get("error")
        reason = f": {error}" if isinstance(error, str) and error else ""
        return f"{loop} {row['status']}{reason}. No decision about it"
    if optional_bool(row.get("equivalent")) is False:
        steps, tolerance = (pd.to_numeric(row.get(k), errors="coerce") for k in EQUIVALENCE)
        after = f"after {steps:.0f} equal steps" if np.isfinite(steps) else "after the equal steps"
        reference = row.get("reference_equal_work_loop") or "the equivalence reference"
        within = f" (relative tolerance {tolerance:g})" if np.isfinite(tolerance) else ""
        return (
            f"{loop} is not equivalent here: its loss {after} is "
            f"{float(row['equal_work_loss']):.6g}, {reference}'s "
            f"{float(row['reference_equal_work_loss']):.6g}{within}; no decision is drawn from it"
        )
    return None


@dataclass(frozen=True)
class Ratio:
    """A speedup (the other's time / this one's) with its interval (``interval_note``)."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, row: Mapping[str, Any], kind: str, figure: str) -> Ratio:
        return cls(*(float(row[c]) for c in SPEEDUP_COLUMNS[(kind, figure)]))

    @classmethod
    def row(cls, row: Mapping[str, Any], prefix: str = "") -> Ratio:
        return cls(*(float(row[prefix + c]) for c in ("ratio", "ci_low", "ci_high")))

    def as_cost(self) -> Ratio:
        return Ratio(1 / self.value, 1 / self.high, 1 / self.low)

    def text(self, lead: str = "") -> str:
        """``lead`` (else the ratio), then its interval where it has one."""
        lead = lead or format_ratio(self.value)
        if np.isfinite(self.low) and np.isfinite(self.high):
            return f"{lead}, interval {format_ratio(self.low)}-{format_ratio(self.high)}"
        return lead


def figures_text(amortized: Ratio, steady: Ratio, cost: bool, noisy: Sequence[str]) -> str:
    """ "(amortized, interval a-b; steady step s, interval c-d; noisy: x)", as costs when
    ``cost``; the steady step only where it differs."""
    shown = amortized.as_cost() if cost else amortized
    parts = [shown.text("amortized")]
    if format_ratio(steady.value) != format_ratio(amortized.value):
        parts.append(f"steady step {(steady.as_cost() if cost else steady).text()}")
    if noisy:
        parts.append(f"noisy: {', '.join(noisy)}")
    return "(" + "; ".join(parts) + ")"


def in_words(
    loop: str, against: str, amortized: Ratio, steady: Ratio, threshold: float, noisy=()
) -> tuple[str, bool]:
    """``loop`` against ``against`` in words, its figures in brackets, and whether that is
    a claim (the core's verdict on the amortized interval: faster, slower or same)."""
    kind = verdict(amortized.low, amortized.high, threshold)
    band = percent(threshold)
    slower = amortized.value < 1
    # the figures the way the words put it: "costs 4.8x" or "runs at 0.95x the speed"
    figures = figures_text(amortized, steady, slower and kind in (SLOWER, MISSING), noisy)
    if kind == SAME:
        return f"{loop} is within ±{band} of {against} {figures}", True
    if kind == UNCLEAR:
        speed = f"{loop} runs at {format_ratio(amortized.value)} the speed of {against} {figures}"
        return f"{speed}, an interval that does not clear ±{band}", False
    # from 1.5 on a factor ("costs 4.8x", "2.1x faster"), below it a percentage
    factor = 1 / amortized.value if slower else amortized.value
    said = format_ratio(factor) if factor >= 1.5 else percent(factor - 1)
    if slower and factor >= 1.5:
        what = f"{loop} costs {said} {against}"
    else:
        what = f"{loop} is {said} {'slower' if slower else 'faster'} than {against}"
    return f"{what} {figures}", kind != MISSING


#: Colours of the loops in ladder order (the reference first).
PALETTE = (
    *("#444444", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"),
    *("#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"),
)
DPI = 96
#: The keys a plot labels a cell's variant by (every setting key but the workload).
VARIANT_NAMES = {
    RUN_KEY: "{}",
    **{key: "{}" for key in SETTING_KEYS if key != "workload"},
    "batch_size": "batch {}",
    "width": "width {}",
    "steps_per_call": "{} steps/call",
}


def loop_colors(derived: Derived) -> dict[str, str]:
    loops = loop_order(derived.ladder, derived.cells["loop"])
    return {loop: PALETTE[i % len(PALETTE)] for i, loop in enumerate(loops)}


def variant_labels(frame: pd.DataFrame) -> pd.Series:
    """Label each row by the setting keys that vary in ``frame`` ("batch 128, width 256")."""
    varying = [key for key in VARIANT_NAMES if key in frame and frame[key].nunique() > 1]
    if not varying:
        return pd.Series("", index=frame.index)
    return frame.apply(
        lambda row: ", ".join(VARIANT_NAMES[key].format(row[key]) for key in varying), axis=1
    )


def panels(count: int, columns: int = 3, width: float = 5.0, height: float = 3.6):
    """(figure, axes) of ``count`` panels, ``columns`` a row."""
    columns = max(1, min(columns, count))
    rows = int(np.ceil(count / columns))
    size = (width * columns, height * rows)
    figure, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return figure, list(axes.flat[:count])


def log_scale(axis, which: str = "y", base: float = 10) -> None:
    """Log scale with plain tick labels at 1-2-5 steps (easier to read than 2x10^1)."""
    target = axis.yaxis if which == "y" else axis.xaxis
    (axis.set_yscale if which == "y" else axis.set_xscale)("log", base=base)
    if base == 10:
        target.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_minor_locator(ticker.NullLocator())
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))


def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")
    plt.close(figure)
    return path


def offsets(count: int, spread: float = 0.6) -> np.ndarray:
    return np.linspace(-spread / 2, spread / 2, count) if count > 1 else np.zeros(1)


def points(axis, x, y, low, high, color, *, filled: bool = True, label=None) -> None:
    """Point estimates with interval whiskers (none with NaN bounds)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    colors = color if isinstance(color, list) else [color] * len(x)
    marker, size, edge_width = ("o", 6, 0.6) if filled else ("D", 5, 1.4)
    for xi, yi, lo, hi, c in zip(x, y, low, high, colors, strict=True):
        if not (np.isfinite(yi) and yi > 0):
            continue
        if np.isfinite(lo) and np.isfinite(hi):
            yerr = [[max(0.0, yi - lo)], [max(0.0, hi - yi)]]
            axis.errorbar([xi], [yi], yerr=yerr, fmt="none", ecolor=c, elinewidth=1.2, capsize=3)
        face, edge = (c, "black") if filled else ("white", c)
        style = {"markerfacecolor": face, "markeredgecolor": edge, "markeredgewidth": edge_width}
        axis.plot([xi], [yi], marker=marker, markersize=size, color=c, linestyle="none", **style)
    if label is not None:  # one legend entry, however many points
        edge, face = ("black", "gray") if filled else ("gray", "white")
        style = {"markerfacecolor": face, "markeredgecolor": edge, "linestyle": "none"}
        axis.plot([], [], marker=marker, color="gray", label=label, **style)
