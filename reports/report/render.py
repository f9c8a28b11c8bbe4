"""Render a report as GitHub-flavoured Markdown (report.md) and self-contained HTML (report.html).

Both come from one document model (headings, paragraphs, bullet lists,
tables, images, collapsible details) built by ``build_document`` from the
derived tables, the decisions and the plots, so the two never disagree.
report.md links the PNGs under ``plots/`` by relative path (suited to a CI job
summary: it stays short, the full cell table is folded in ``<details>``);
report.html embeds every PNG as a base64 ``data:`` URI and needs no network.

Run it::

    loopbench report RUN_DIR        # writes RUN_DIR/report.md, report.html, plots/
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tf_loopbench.reports.gate.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE_LEVEL
from tf_loopbench.reports.report.aggregate import GROUP_KEYS
from tf_loopbench.reports.report.decisions import (
    Decision,
    format_rate,
    format_ratio,
    format_seconds,
    keras_choice,
    optional_bool,
    reading_notes,
)
from tf_loopbench.reports.report.derived import (
    BOOTSTRAP_SEED,
    OVERHEAD_THRESHOLD,
    SETTING_KEYS,
    SPEEDUP_COLUMNS,
    Derived,
)
from tf_loopbench.reports.report.plots import Plot
from tf_loopbench.reports.report.versions import release_blocks
from tf_loopbench.reports.rundir import CELL_KEY_DEFAULTS

# --------------------------------------------------------------------------- document model


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
class Image:
    plot: Plot


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: tuple = field(default_factory=tuple)


Block = Heading | Paragraph | Bullets | Table | Image | Details


# --------------------------------------------------------------------------- formatting

#: What a table shows where a figure has no interval; the reason is said once below it.
NO_INTERVAL = "[—]"


def _interval(value: float, low: float, high: float, fmt) -> str:
    if not np.isfinite(value):
        return ""
    if np.isfinite(low) and np.isfinite(high):
        return f"{fmt(value)} [{fmt(low)}-{fmt(high)}]"
    return f"{fmt(value)} {NO_INTERVAL}"


def _ratio(row: dict, kind: str, figure: str) -> str:
    return _interval(*(row[c] for c in SPEEDUP_COLUMNS[(kind, figure)]), format_ratio)


def _steps(steps: float) -> str:
    return f"{steps:,.0f} step{'' if steps == 1 else 's'}"


def _int_or_blank(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.0f}"


def _keras_column(derived: Derived) -> bool:
    """Does any cell record what Keras chose (a loop such as the reference does)?"""
    return any(keras_choice(row) for row in derived.cells.to_dict("records"))


def _equal_work(row: dict) -> str:
    """A cell's equal-work loss ("0.0256 @6") and whether it matches the equivalence
    reference's; empty for runs made before it was recorded."""
    loss, steps = row.get("equal_work_loss"), row.get("equal_work_steps")
    if row["status"] != "ok" or not isinstance(loss, int | float) or not np.isfinite(loss):
        return ""
    at = f" @{steps:.0f}" if isinstance(steps, int | float) and np.isfinite(steps) else ""
    mark = {True: "equivalent", False: "NOT equivalent", None: "not checked"}[
        optional_bool(row.get("equivalent"))
    ]
    return f"{loss:.6g}{at}, {mark}"


def _not_equivalent(row: dict) -> bool:
    return row["status"] == "ok" and optional_bool(row.get("equivalent")) is False


#: setting keys beyond workload, device, batch and width, and their column names: a
#: table shows one only when the runs vary it (loops/knobs.py, loops/distribute.py)
VARYING_SETTING_COLUMNS = {"steps_per_call": "K", "precision": "precision", "strategy": "strategy"}


def varying_setting_keys(cells: pd.DataFrame) -> tuple[str, ...]:
    """The keys of VARYING_SETTING_COLUMNS that ``cells`` vary, or hold at a value other
    than the default (a run all under mirrored:2 says so)."""
    return tuple(
        key
        for key in VARYING_SETTING_COLUMNS
        if key in cells
        and (cells[key].nunique() > 1 or (cells[key] != CELL_KEY_DEFAULTS[key]).any())
    )


def _setting_fields(row: dict, several_runs: bool, varying: Sequence[str] = ()) -> dict[str, str]:
    fields = {
        "run": row["run"],
        "workload": row["workload"],
        "device": row["device"],
        "batch": str(row["batch_size"]),
        "width": str(row["width"]) if row["width"] else "",
        **{VARYING_SETTING_COLUMNS[key]: str(row[key]) for key in varying},
    }
    if not several_runs:
        fields.pop("run")
    return fields


def _cells_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    ladder = derived.ladder
    keras = _keras_column(derived)
    reference = ladder.reference if ladder is not None else None
    varying = varying_setting_keys(derived.cells)
    rows = []
    for row in derived.cells.to_dict("records"):
        ok = row["status"] == "ok"
        mfu = row.get("mfu", math.nan)
        record = {
            **_setting_fields(row, several_runs, varying),
            "loop": row["loop"],
            "status": row["status"] + (" (noisy)" if ok and row["noisy"] else ""),
            "steady step [95% CI]": _interval(
                row["step_time_median_s"],
                row["step_time_ci_low_s"],
                row["step_time_ci_high_s"],
                format_seconds,
            )
            if ok
            else "",
            "amortized step": format_seconds(row["amortized_step_time_s"]) if ok else "",
            "examples/s": f"{row['examples_per_s']:.4g}" if ok else "",
        }
        if ladder is not None:
            record[f"x {reference}, amortized [95% CI]"] = (
                _ratio(row, "reference", "amortized") if ok else ""
            )
            record[f"x {reference}, steady [95% CI]"] = (
                _ratio(row, "reference", "steady") if ok else ""
            )
            against = _ratio(row, "neighbour", "amortized") if ok else ""
            record["x neighbour, amortized [95% CI]"] = (
                f"{row['neighbour']}: {against}" if against else ""
            )
        if keras:
            record["Keras chose"] = keras_choice(row) or ""
        record.update(
            {
                "compile": format_seconds(row["compile_s"]) if ok else "",
                f"train {derived.epochs} epoch{'s' if derived.epochs != 1 else ''}": (
                    format_seconds(row.get("time_to_train_s", math.nan)) if ok else ""
                ),
                "equal work: loss @steps": _equal_work(row),
                "FLOP/s": format_rate(row["achieved_flops_per_s"]) if ok else "",
                "MFU (probe peak)": f"{mfu * 100:.1f}%" if ok and np.isfinite(mfu) else "",
                "processes": _int_or_blank(row["n_processes"]),
                "error": str(row["error"]) if isinstance(row.get("error"), str) else "",
            }
        )
        rows.append(record)
    return pd.DataFrame(rows)


def _speedup_pivot(derived: Derived, several_runs: bool, figure: str) -> pd.DataFrame:
    """Rows: settings; columns: loops; values: speedup against the reference on ``figure``
    [CI], the status, or (the reference's column) what Keras chose for it."""
    cells = derived.cells.copy()
    reference = derived.ladder.reference

    def value(row: dict) -> str:
        if row["status"] != "ok":
            return row["status"]
        if row["loop"] == reference:
            return keras_choice(row) or "1"
        text = _ratio(row, "reference", figure)
        return f"{text} (not equivalent)" if _not_equivalent(row) else text

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


def _break_even_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    rows = []
    trained = derived.cells.set_index(list(GROUP_KEYS))["time_to_train_s"]
    epochs = f"{derived.epochs} epoch{'s' if derived.epochs != 1 else ''}"
    varying = varying_setting_keys(derived.cells)
    for row in derived.break_even.to_dict("records"):
        steps, in_epochs = row["break_even_steps"], row["break_even_epochs"]
        setting = tuple(row[k] for k in GROUP_KEYS if k != "loop")
        mine = trained.get((*setting, row["loop"]), math.nan)
        theirs = trained.get((*setting, row["reference"]), math.nan)
        at_epochs = (
            ("paid back" if mine < theirs else "not paid back")
            if np.isfinite(mine) and np.isfinite(theirs)
            else ""
        )
        rows.append(
            {
                **_setting_fields(row, several_runs, varying),
                "loop": row["loop"],
                "against": row["reference"],
                "compile": format_seconds(row["compile_s"]),
                "against's compile": format_seconds(row["reference_compile_s"]),
                "saving per step (amortized)": format_seconds(row["saving_per_step_s"]),
                "break-even": (_steps(steps) if np.isfinite(steps) else row["outcome"]),
                "in epochs": f"{in_epochs:.3g}" if np.isfinite(in_epochs) else "",
                f"at {epochs}": at_epochs,
            }
        )
    return pd.DataFrame(rows)


def _time_to_train_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """Per ok cell: set-up, first step, the other steps and the total, and the total
    against the reference's."""
    keras = _keras_column(derived)
    trained = derived.time_to_train.set_index(list(GROUP_KEYS))
    reference = derived.ladder.reference if derived.ladder is not None else None
    totals = derived.cells.set_index(list(GROUP_KEYS))["time_to_train_s"]
    varying = varying_setting_keys(derived.cells)
    rows = []
    for row in derived.cells[derived.cells["status"] == "ok"].to_dict("records"):
        key = tuple(row[k] for k in GROUP_KEYS)
        if key not in trained.index:
            continue
        parts = trained.loc[key]
        total = float(parts["time_to_train_s"])
        ref_total = (
            totals.get((*key[:-1], reference), math.nan) if reference is not None else math.nan
        )
        known = np.isfinite(total)
        record = {
            **_setting_fields(row, several_runs, varying),
            "loop": row["loop"],
            "set-up": format_seconds(parts["setup_s"]),
            "first step (trace, compile)": format_seconds(parts["first_step_s"]),
            "steps": f"{parts['steps']:,.0f}" if known else "—",
            "the other steps, epoch ends included": (
                format_seconds(parts["steps_s"]) if known else "—"
            ),
            "total": format_seconds(total) if known else "—",
        }
        if reference is not None:
            record[f"x {reference}"] = (
                format_ratio(ref_total / total)
                if np.isfinite(total) and np.isfinite(ref_total)
                else ""
            )
        if keras:
            record["Keras chose"] = keras_choice(row) or ""
        rows.append(record)
    return pd.DataFrame(rows)


def _throughput_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """The fastest loop (steady step) of each setting: model FLOPs, FLOP/s, MFU."""
    keras = _keras_column(derived)
    cells = derived.cells[derived.cells["status"] == "ok"].dropna(subset=["achieved_flops_per_s"])
    varying = varying_setting_keys(derived.cells)
    rows = []
    for _, group in cells.groupby(list(SETTING_KEYS), sort=True):
        best = group.loc[group["step_time_median_s"].idxmin()].to_dict()
        flops = best["model_flops_per_step"]
        mfu = best["mfu"]
        rows.append(
            {
                **_setting_fields(best, several_runs, varying),
                "fastest loop (steady step)": best["loop"],
                "model FLOPs per step": f"{flops:.4g}",
                "achieved [95% CI]": _interval(
                    best["achieved_flops_per_s"],
                    flops / best["step_time_ci_high_s"],
                    flops / best["step_time_ci_low_s"],
                    format_rate,
                ),
                "matmul probe peak": format_rate(best["peak_matmul_flops"]),
                "MFU (of the probe peak)": f"{mfu * 100:.1f}%" if np.isfinite(mfu) else "",
            }
        )
        if keras:
            rows[-1]["Keras chose"] = keras_choice(best) or ""
    return pd.DataFrame(rows)


def _crossover_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    varying = varying_setting_keys(derived.cells)
    rows = []
    for row in derived.crossovers.to_dict("records"):
        crossover = row["crossover"]
        record = {
            "run": row["run"],
            "workload": row["workload"],
            "device": row["device"],
            **{VARYING_SETTING_COLUMNS[key]: str(row[key]) for key in varying},
            "sweep": "batch size" if row["axis"] == "batch_size" else "width",
            "at": f"{'width' if row['fixed_key'] == 'width' else 'batch'} {row['fixed_value']}",
            "loop": f"{row['loop']} vs {row['reference']}",
            f"under {OVERHEAD_THRESHOLD:.0%} from": (
                f"{crossover:.0f}" if np.isfinite(crossover) else "never (in the grid)"
            )
            + (" (smallest measured)" if row["outcome"] == "always" else ""),
            "log-interpolated": _int_or_blank(row["crossover_log_interpolated"]),
            "overheads along the grid": ", ".join(
                f"{g}: {o:+.0%}" for g, o in zip(row["grid"], row["overheads"], strict=True)
            ),
        }
        if not several_runs:
            record.pop("run")
        rows.append(record)
    return pd.DataFrame(rows)


def _runs_table(derived: Derived) -> pd.DataFrame:
    rows = []
    for run, label in zip(derived.run_set.runs, derived.run_set.labels, strict=True):
        hard, soft, config = (run.metadata.get(k, {}) for k in ("hard", "soft", "config"))
        commit = str(soft.get("git_commit") or "")[:10] + (
            " (dirty)" if soft.get("git_dirty") else ""
        )
        peaks = soft.get("peak_matmul_flops") or {}
        rows.append(
            {
                "run": label,
                "run id": run.run_id,
                "devices": ", ".join(config.get("devices", [])),
                "tensorflow": str(soft.get("tensorflow", "")),
                "host": str(soft.get("hostname", "")),
                "cpu": f"{hard.get('cpu_model', '')} ({hard.get('visible_cores', '?')} cores)",
                "gpus": ", ".join(str(g) for g in hard.get("gpus") or []) or "none",
                "commit": commit,
                "started": str(soft.get("started_at", "")),
                "matmul peak (probe)": ", ".join(f"{d}: {format_rate(v)}" for d, v in peaks.items())
                or "not measured",
            }
        )
    return pd.DataFrame(rows)


def _method_notes(derived: Derived) -> tuple[str, ...]:
    band = f"{derived.threshold:.0%}"
    return (
        "One statistical sample is one fresh worker process (its timed windows summarised to "
        "a median); every interval comes from processes, never from windows.",
        "Two step times: the steady step (the timed step alone) and the amortized step (the "
        "steady step plus per-epoch costs, such as Keras's epoch end, spread over an epoch's "
        "steps: what a user pays training whole epochs). Speedups lead with the amortized one.",
        f"Speedup = median step time of the reference / median step time of the loop (>1: "
        f"faster). Its {CONFIDENCE_LEVEL:.0%} CI is a percentile bootstrap of that ratio of "
        f"medians over the per-process samples ({BOOTSTRAP_RESAMPLES} resamples, seed "
        f"{BOOTSTRAP_SEED}, scipy.stats.bootstrap). A cell's own step-time interval is an "
        "order-statistic interval with 6 or more processes, a bootstrap with 2 to 5 "
        "(coverage then unknown), none with one.",
        f"A claim stands when its 95% interval lies wholly outside ±{band} (the band of no "
        "practical difference: the regression gate's threshold) or wholly inside it. A noisy "
        "cell (processes' IQR over 10% of their median) is flagged beside the claim; its noise "
        "has widened the interval, it does not veto the claim. A cell that is not equivalent "
        "(its loss after the same first steps differs from the equivalence reference's beyond "
        "its loop style's tolerance) is marked and no decision is drawn from it.",
        "Compile break-even: the first step n at which compile_s + n x amortized step of a "
        "rung is below the same total for the rung it compares with (its neighbour on the "
        "ladder), both from the run's medians.",
        f"Time to train E epochs (E = {derived.epochs}; loopbench report --epochs E): build + "
        "the loop's own set-up call (Keras's, where it has one) + the first step (trace, compile) + "
        "(E x steps per epoch - 1) steady steps + E x the per-epoch cost (where the loop has "
        "one), from the run's medians; no interval.",
        f"Crossovers: the first grid point from which the overhead (loop / reference - 1, "
        f"steady step medians) stays under {OVERHEAD_THRESHOLD:.0%} for every larger grid "
        "point. The log-interpolated figure is for information: where a straight line in "
        "log2(batch size) between the two neighbouring grid points meets the threshold.",
        "Achieved FLOP/s = model FLOPs of one training step (the workload's formula) / median "
        "steady step; MFU = achieved / the run's matmul probe peak (measured on the machine, "
        "metadata soft.peak_matmul_flops; not the vendor's figure). MFU is for information: no "
        "decision rests on it.",
    )


def _ladder_blocks(run_set) -> list[Block]:
    """The loop ladder the report follows (from metadata.json), or why there is none."""
    blocks: list[Block] = [Heading(2, "Loop ladder")]
    ladder = run_set.ladder
    if ladder is not None:
        blocks.append(
            Paragraph(
                f"Every loop is compared with {ladder.reference}, the reference; each rung also "
                "with the one it compares with, which differs from it in one thing."
            )
        )
        items = []
        for rung in ladder.rungs:
            against = (
                "the reference"
                if rung.reference
                else f"against {rung.compares_with or ladder.reference}"
            )
            items.append(f"{rung.loop} ({against}): {rung.changes}")
        blocks.append(Bullets(tuple(items)))
    if run_set.ladder_note:
        blocks.append(Paragraph(run_set.ladder_note))
    return blocks


def _table(frame: pd.DataFrame) -> list[Block]:
    """A table and, when a figure in it has no interval, why (once, below it)."""
    blocks: list[Block] = [Table(frame)]
    if (
        frame.astype(str)
        .apply(lambda column: column.str.contains(NO_INTERVAL, regex=False))
        .any()
        .any()
    ):
        blocks.append(
            Paragraph(
                f"{NO_INTERVAL}: no interval, because a cell ran fewer than two worker "
                "processes (intervals come from processes only)."
            )
        )
    return blocks


def build_document(
    derived: Derived, decisions: Sequence[Decision], plots: Sequence[Plot]
) -> list[Block]:
    """The report, as blocks both renderers understand."""
    run_set = derived.run_set
    several_runs = len(run_set.runs) > 1
    title = f"tf-loopbench report: {run_set.title}"
    blocks: list[Block] = [Heading(1, title)]
    cells = derived.cells
    counts = cells["status"].value_counts()
    blocks.append(
        Paragraph(
            f"{len(cells)} cells ({counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
            f"{counts.get('skipped', 0)} skipped) over {cells['workload'].nunique()} workloads and "
            f"{cells['loop'].nunique()} loop styles"
            + (f", from {len(run_set.runs)} runs." if several_runs else ".")
        )
    )
    blocks += [Heading(2, "Runs"), Table(_runs_table(derived))]
    if run_set.differing_hard_keys:
        blocks.append(
            Paragraph(
                "These runs differ in machine keys ("
                + ", ".join(run_set.differing_hard_keys)
                + "): compare them side by side, not as a regression."
            )
        )

    blocks += _ladder_blocks(run_set)

    blocks.append(Heading(2, "Decisions"))
    blocks += [Paragraph(note) for note in reading_notes(derived)]
    for topic in dict.fromkeys(decision.topic for decision in decisions):
        items = tuple(
            (decision.text if decision.claim or decision.info else f"*(no claim)* {decision.text}")
            for decision in decisions
            if decision.topic == topic
        )
        blocks += [Heading(3, topic), Bullets(items)]
    blocks += release_blocks(derived)

    if derived.ladder is not None:
        reference = derived.ladder.reference
        blocks += [
            Heading(2, f"Speedup against {reference}"),
            Paragraph(
                f"Amortized: per step over whole epochs, per-epoch costs included (what a user "
                f"pays); median speedup against {reference} with its 95% CI across processes in "
                f"brackets (>1: faster than {reference}). The {reference} column says how it ran."
            ),
            *_table(_speedup_pivot(derived, several_runs, "amortized")),
            Paragraph(f"Steady step alone (per-epoch costs left out), against {reference}:"),
            *_table(_speedup_pivot(derived, several_runs, "steady")),
        ]
    epochs = f"{derived.epochs} epoch{'s' if derived.epochs != 1 else ''}"
    if not derived.break_even.empty:
        blocks += [
            Heading(2, "Compile break-even"),
            Paragraph(
                "Each rung against the one it compares with, on the amortized step; the last "
                f"column: whether the time to train {epochs} (below) is lower with the rung."
            ),
            Table(_break_even_table(derived, several_runs)),
        ]
    trained = _time_to_train_table(derived, several_runs)
    if not trained.empty:
        blocks += [
            Heading(2, f"Time to train {epochs}"),
            Paragraph(
                f"From a cold start: set-up (build, and the loop's own set-up call where it "
                f"has one) + the first step (trace, compile) + the other steps of {epochs} with "
                "their per-epoch costs; medians of the run, no interval."
            ),
            Table(trained),
        ]
        if (trained["total"] == "—").any():
            blocks.append(
                Paragraph(
                    "—: a figure the total needs was not recorded (steps per epoch or a phase "
                    "time; runs made before tf-loopbench recorded them)."
                )
            )
    if not derived.crossovers.empty:
        blocks += [Heading(2, "Crossovers"), Table(_crossover_table(derived, several_runs))]
    from tf_loopbench.reports.report.strategies import (
        strategy_blocks,  # scaling under tf.distribute
    )

    blocks += strategy_blocks(derived)
    from tf_loopbench.reports.report.knobs import (
        knob_blocks,  # steps per call, precision; it reads this module
    )

    blocks += knob_blocks(derived)
    throughput = _throughput_table(derived, several_runs)
    if not throughput.empty:
        blocks += [
            Heading(2, "Throughput"),
            Paragraph(
                "The fastest loop of each setting (steady step). FLOPs per step from the "
                "workload's formula; MFU against the run's matmul probe (a peak measured on "
                "this machine, not the vendor's): for information, no decision rests on it."
            ),
            *_table(throughput),
        ]
    if plots:
        blocks.append(Heading(2, "Plots"))
        for plot in plots:
            blocks += [Heading(3, plot.title), Paragraph(plot.caption), Image(plot)]
    blocks.append(Details("All cells", tuple(_table(_cells_table(derived, several_runs)))))
    blocks += [Heading(2, "Method"), Bullets(_method_notes(derived))]
    return blocks


# --------------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(_md_escape(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(_md_escape(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def render_markdown(blocks: Sequence[Block], base_dir: str | os.PathLike[str]) -> str:
    """GitHub-flavoured Markdown; images by path relative to ``base_dir``."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(_md_table(block.frame))
        elif isinstance(block, Image):
            relative = Path(os.path.relpath(block.plot.path, base_dir)).as_posix()
            parts.append(f"![{block.plot.title}]({relative})")
        elif isinstance(block, Details):
            inner = render_markdown(block.blocks, base_dir)
            parts.append(
                f"<details><summary>{html.escape(block.summary)}</summary>\n\n{inner}\n</details>"
            )
    return "\n\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- html

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
li { margin: .2rem 0; }
em { color: #9a6700; }
details { margin: 1rem 0; }
summary { cursor: pointer; font-weight: 600; }
"""


def _inline(text: str) -> str:
    """Escape text; turn the one Markdown mark decisions use (*...*) into <em>."""
    escaped = html.escape(str(text))
    if escaped.startswith("*(no claim)*"):
        escaped = "<em>(no claim)</em>" + escaped[len("*(no claim)*") :]
    return escaped


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_blocks(blocks: Sequence[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_html_table(block.frame))
        elif isinstance(block, Image):
            parts.append(
                f'<img alt="{html.escape(block.plot.title)}" src="{_data_uri(block.plot.path)}">'
            )
        elif isinstance(block, Details):
            parts.append(
                f"<details><summary>{html.escape(block.summary)}</summary>"
                f"{_html_blocks(block.blocks)}</details>"
            )
    return "\n".join(parts)


def render_html(blocks: Sequence[Block]) -> str:
    """One self-contained HTML page: inline CSS, PNGs as data: URIs, no script, no network."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "tf-loopbench report")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>\n'
        f"{_html_blocks(blocks)}\n</body></html>\n"
    )


__all__ = ["Block", "build_document", "render_html", "render_markdown"]
