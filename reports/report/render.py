"""Render a report as GitHub-flavoured Markdown (report.md) and self-contained HTML (report.html).

Both come from one document model (headings, paragraphs, bullet lists,
tables, images, collapsible details) built by ``build_document`` from the
derived tables, the decisions and the plots, so the two never disagree.
report.md links the PNGs under ``plots/`` by relative path (fit for a CI job
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

from reports.gate.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE_LEVEL
from reports.report.decisions import Decision, format_rate, format_ratio, format_seconds
from reports.report.derived import BOOTSTRAP_SEED, OVERHEAD_THRESHOLD, Derived
from reports.report.plots import Plot
from reports.rundir import Ladder

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


def _interval(value: float, low: float, high: float, fmt) -> str:
    if not np.isfinite(value):
        return ""
    if np.isfinite(low) and np.isfinite(high):
        return f"{fmt(value)} [{fmt(low)}-{fmt(high)}]"
    return fmt(value)


def _int_or_blank(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.0f}"


def _speedup_fields(row: dict, ladder: Ladder | None) -> dict[str, str]:
    """A cell's speedups against the ladder's reference and against its neighbour."""
    if ladder is None:
        return {}
    against_neighbour = _interval(
        row["speedup_vs_neighbour"],
        row["speedup_vs_neighbour_ci_low"],
        row["speedup_vs_neighbour_ci_high"],
        format_ratio,
    )
    return {
        f"vs {ladder.reference} [95% CI]": _interval(
            row["speedup_vs_reference"],
            row["speedup_vs_reference_ci_low"],
            row["speedup_vs_reference_ci_high"],
            format_ratio,
        ),
        "vs neighbour [95% CI]": (
            f"{row['neighbour']}: {against_neighbour}" if against_neighbour else ""
        ),
    }


def _cells_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    rows = []
    for row in derived.cells.to_dict("records"):
        ok = row["status"] == "ok"
        mfu = row.get("mfu", math.nan)
        record = {
            "run": row["run"],
            "workload": row["workload"],
            "device": row["device"],
            "batch": str(row["batch_size"]),
            "width": str(row["width"]) if row["width"] else "",
            "loop": row["loop"],
            "status": row["status"] + (" (noisy)" if ok and row["noisy"] else ""),
            "step time [95% CI]": _interval(
                row["step_time_median_s"],
                row["step_time_ci_low_s"],
                row["step_time_ci_high_s"],
                format_seconds,
            )
            if ok
            else "",
            "examples/s": f"{row['examples_per_s']:.4g}" if ok else "",
            **_speedup_fields(row, derived.ladder),
            "compile": format_seconds(row["compile_s"]) if ok else "",
            "FLOP/s": format_rate(row["achieved_flops_per_s"]) if ok else "",
            "MFU": f"{mfu * 100:.1f}%" if ok and np.isfinite(mfu) else "",
            "processes": _int_or_blank(row["n_processes"]),
            "error": str(row["error"]) if isinstance(row.get("error"), str) else "",
        }
        if not several_runs:
            record.pop("run")
        rows.append(record)
    return pd.DataFrame(rows)


def _speedup_pivot(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """Rows: settings; columns: loops; values: speedup vs the reference [CI] or the status."""
    cells = derived.cells.copy()
    reference = derived.ladder.reference
    cells["value"] = [
        _interval(
            row["speedup_vs_reference"],
            row["speedup_vs_reference_ci_low"],
            row["speedup_vs_reference_ci_high"],
            format_ratio,
        )
        if row["status"] == "ok" and row["loop"] != reference
        else ("1 (reference)" if row["status"] == "ok" else row["status"])
        for row in cells.to_dict("records")
    ]
    index = (
        ["run", "workload", "device", "batch_size", "width"]
        if several_runs
        else ["workload", "device", "batch_size", "width"]
    )
    loops = list(dict.fromkeys(cells["loop"]))
    pivot = cells.pivot_table(index=index, columns="loop", values="value", aggfunc="first")
    pivot = pivot.reindex(columns=[loop for loop in loops if loop in pivot.columns]).reset_index()
    pivot = pivot.rename(columns={"batch_size": "batch"})
    pivot["width"] = pivot["width"].map(lambda w: str(w) if w else "")
    return pivot.fillna("").astype(str)


def _break_even_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    rows = []
    for row in derived.break_even.to_dict("records"):
        steps = row["break_even_steps"]
        record = {
            "run": row["run"],
            "workload": row["workload"],
            "device": row["device"],
            "batch": str(row["batch_size"]),
            "width": str(row["width"]) if row["width"] else "",
            "loop": row["loop"],
            "against": row["reference"],
            "compile": format_seconds(row["compile_s"]),
            "against's compile": format_seconds(row["reference_compile_s"]),
            "saving per step": format_seconds(row["saving_per_step_s"]),
            "break-even": f"{steps:.0f} steps" if np.isfinite(steps) else row["outcome"],
        }
        if not several_runs:
            record.pop("run")
        rows.append(record)
    return pd.DataFrame(rows)


def _crossover_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    rows = []
    for row in derived.crossovers.to_dict("records"):
        crossover = row["crossover"]
        record = {
            "run": row["run"],
            "workload": row["workload"],
            "device": row["device"],
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
                "matmul peak": ", ".join(f"{d}: {format_rate(v)}" for d, v in peaks.items())
                or "not measured",
            }
        )
    return pd.DataFrame(rows)


METHOD_NOTES = (
    "One statistical sample is one fresh worker process (its timed windows summarised to a median).",
    f"Speedup = median step time of the reference / median step time of the loop (>1: faster). "
    f"Its {CONFIDENCE_LEVEL:.0%} CI is a percentile bootstrap of that ratio of medians over the "
    f"per-process samples ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}, scipy.stats.bootstrap).",
    "Compile break-even: the first step n at which compile_s + n x step time of a rung is below the "
    "same total for the rung it compares with (its neighbour on the ladder), both from the run's "
    "medians.",
    f"Crossovers: the first grid point from which the overhead (loop / reference - 1, medians) stays "
    f"under {OVERHEAD_THRESHOLD:.0%} for every larger grid point. The log-interpolated figure is for "
    "information: where a straight line in log2(batch size) between the two neighbouring grid points "
    "meets the threshold.",
    "Achieved FLOP/s = model FLOPs of one training step / median step time; MFU = achieved / the "
    "matmul peak measured on the machine (metadata soft.peak_matmul_flops).",
    "A sentence marked 'no claim' is one the data cannot carry: its CI includes 1, a cell is noisy, "
    "failed or skipped, or fewer than two processes succeeded.",
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
    for topic in dict.fromkeys(decision.topic for decision in decisions):
        items = tuple(
            (decision.text if decision.claim else f"*(no claim)* {decision.text}")
            for decision in decisions
            if decision.topic == topic
        )
        blocks += [Heading(3, topic), Bullets(items)]

    if derived.ladder is not None:
        reference = derived.ladder.reference
        blocks += [
            Heading(2, f"Speedup against {reference}"),
            Paragraph(
                f"Median speedup against {reference}, 95% CI in brackets "
                f"(>1: faster than {reference})."
            ),
            Table(_speedup_pivot(derived, several_runs)),
        ]
    if not derived.break_even.empty:
        blocks += [
            Heading(2, "Compile break-even"),
            Table(_break_even_table(derived, several_runs)),
        ]
    if not derived.crossovers.empty:
        blocks += [Heading(2, "Crossovers"), Table(_crossover_table(derived, several_runs))]
    if plots:
        blocks.append(Heading(2, "Plots"))
        for plot in plots:
            blocks += [Heading(3, plot.title), Paragraph(plot.caption), Image(plot)]
    blocks.append(Details("All cells", (Table(_cells_table(derived, several_runs)),)))
    blocks += [Heading(2, "Method"), Bullets(METHOD_NOTES)]
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
