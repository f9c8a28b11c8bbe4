"""The gate's output: the verdicts as a terminal table and as GitHub Markdown, both
from :func:`summary_lines` and :func:`display_rows`, so the two never disagree.
"""

from __future__ import annotations

import math

import pandas as pd
from tf_loopbench.reports.compare import VERDICTS
from tf_loopbench.reports.gate import stats
from tf_loopbench.reports.gate.judge import (
    COMPILE_FLOOR_S,
    EXIT_BLIND,
    INTERLEAVED_PLAN_MOST,
    Comparison,
)
from tf_loopbench.reports.gate.samples import BLOCK_SUMMARY
from tf_loopbench.reports.rundir import Run


def _commit(run: Run) -> str:
    soft = run.metadata.get("soft", {})
    return str(soft.get("git_commit") or "?")[:10] + ("+dirty" if soft.get("git_dirty") else "")


def _figure(value: float, reference: str | None) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}x {reference}" if reference else f"{value * 1e3:.3g} ms"


def detectable_text(value: float) -> str:
    """A detectable slowdown as the gate writes it: "8.0%", "never" (inf), "-" (nan).

    >>> detectable_text(0.08), detectable_text(float("inf")), detectable_text(float("nan"))
    ('8.0%', 'never', '-')
    """
    if math.isnan(value):
        return "-"
    return "never" if math.isinf(value) else f"{value:.1%}"


def _detectable(value: float, threshold: float) -> str:
    text = detectable_text(value)
    return f"{text} (blind)" if value > threshold else text


def display_rows(result: Comparison) -> list[dict[str, str]]:
    """The table as strings, one dict per cell, regressions first."""
    order = {verdict: rank for rank, verdict in enumerate(VERDICTS)}
    ranked = sorted(result.cells, key=lambda c: (not c.is_regression, order[c.verdict]))
    rows = []
    for cell in ranked:
        ci = "-" if math.isnan(cell.ci_low) else f"{cell.ci_low:.3f}-{cell.ci_high:.3f}"
        rows.append(
            {
                "cell": cell.cell.name,
                "verdict": cell.verdict.upper() if cell.is_regression else cell.verdict,
                "ratio": "-" if math.isnan(cell.ratio) else f"{cell.ratio:.3f}",
                "95% CI": ci,
                "p (Holm)": "-" if math.isnan(cell.p_adjusted) else f"{cell.p_adjusted:.2g}",
                "detectable": _detectable(cell.detectable, result.must_see),
                "n base/cur": f"{cell.n_baseline}/{cell.n_current}",
                "baseline": _figure(cell.baseline_median, result.reference),
                "current": _figure(cell.current_median, result.reference),
                "flags / note": "; ".join([*cell.flags, *([cell.note] if cell.note else [])]),
            }
        )
    return rows


def summary_lines(result: Comparison) -> list[str]:
    """The lines above the table: runs, mode, rule, metadata differences, outcome."""
    baseline, current, threshold = result.baseline, result.current, f"{result.threshold:.0%}"
    if result.reference is not None:
        machines = "; ".join(result.hard_differences) or "none differ"
        mode = f"within-run ratios to {result.reference} (allow different machines; "
        mode += f"hard keys: {machines})"
        compile_rule = ""
    else:
        mode = "absolute step times (same machine: hard metadata keys match)"
        if result.paired:
            mode += ", duet A/B judged in pairs (block k: both sides at once)"
        if result.drift_corrected:
            mode += ", drift-corrected around each pair (interleaved A/B)"
        compile_rule = f", compile time up >{threshold} and >{COMPILE_FLOOR_S:g}s "
        compile_rule += "(same test, Holm over cells)"
    test = (
        "one-sided exact Wilcoxon signed-rank per cell on its blocks' log ratios current/base "
        f"(each block: the {BLOCK_SUMMARY_TEXT[BLOCK_SUMMARY]})"
        if result.paired
        else "one-sided Mann-Whitney U per cell on per-process samples (each process's "
        "fastest timed window)"
    )
    lines = [
        f"baseline {baseline.run_id} ({_commit(baseline)}) "
        f"vs current {current.run_id} ({_commit(current)})",
        f"mode: {mode}",
        *result.notes,
        f"rule: {test}, Holm-corrected over {result.n_tested} cells at "
        f"alpha={result.alpha:g}, and median ratio beyond ±{threshold}; also flagged: "
        f"newly failing cells, more retraces{compile_rule}",
    ]
    if result.n_tested:
        lines.append(
            f"power: a cell's detectable slowdown is the smallest that the whole rule (the "
            f"test at Holm's first-step level alpha/{result.n_tested} = "
            f"{result.alpha / result.n_tested:.2g}, what a cell that alone is slower must meet, "
            f"and the ratio beyond +{threshold}) flags in {stats.DETECTION_POWER:.0%} of "
            "comparisons resampled from the cell's own spread at these sample counts (a "
            f"slowdown of the threshold's size is flagged about half the time); above "
            f"{result.must_see:.0%} the cell is blind to a {result.must_see:.0%} slowdown"
        )
    plan = _plan(result)
    if plan:
        lines.append(plan)
    soft = "; ".join(result.soft_differences)
    lines.append(f"soft metadata differs: {soft}" if soft else "soft metadata: no difference")
    counts = pd.Series([cell.verdict for cell in result.cells]).value_counts()
    cells = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    if result.cells_skipped_in_both:
        cells += f"; {result.cells_skipped_in_both} skipped in both runs"
    named = ", ".join(cell.cell.name for cell in result.regressions)
    outcome = f"{len(result.regressions)} confirmed regression(s): {named}"
    outcome = outcome if named else "no confirmed regression"
    return [*lines, f"cells: {cells}", f"RESULT: {outcome}{_power_outcome(result)}"]


#: how the rule line names a duet block's number (samples.BLOCK_SUMMARIES)
BLOCK_SUMMARY_TEXT = {
    "median": "median over its matched windows of log(current / base)",
    "fastest": "log of the fastest current window over the fastest base window",
}


def _plan(result: Comparison) -> str:
    """The plan line of an A/B: blocks (and minutes) each blind cell needs to see a
    slowdown of twice the threshold at the spread measured so far."""
    planned = [cell for cell in result.cells if not math.isnan(cell.blocks_to_see)]
    if not planned:
        return ""
    parts = []
    for cell in sorted(planned, key=lambda c: c.blocks_to_see):
        if math.isinf(cell.blocks_to_see):
            most = stats.PLAN_MOST_BLOCKS if result.paired else INTERLEAVED_PLAN_MOST
            parts.append(f"{cell.cell.name} over {most} blocks")
            continue
        minutes = cell.blocks_to_see * result.block_s / 60
        when = f" (~{minutes:.0f} min)" if math.isfinite(minutes) else ""
        parts.append(f"{cell.cell.name} {cell.blocks_to_see:.0f} blocks{when}")
    return (
        f"plan: blocks a blind cell needs to see a {result.must_see:.0%} slowdown at its spread "
        f"so far (this A/B ran {result.cells[0].n_current if result.cells else 0} blocks"
        + (f", {result.block_s:.0f} s each" if math.isfinite(result.block_s) else "")
        + "): "
        + "; ".join(parts)
    )


def _power_outcome(result: Comparison) -> str:
    """The RESULT line's second half: how many judged cells were blind."""
    judged = [cell.detectable for cell in result.cells if not math.isnan(cell.detectable)]
    if not judged:
        return ""
    blind = len(result.blind)
    median = _detectable(float(pd.Series(judged).median()), math.inf)  # never "(blind)"
    size = f"{result.must_see:.0%} slowdown"
    text = f"; {blind} of {len(judged)} cells blind: could not have seen a {size}"
    if not blind:
        text = f"; every cell could have seen a {size}"
    text += f" (median detectable slowdown {median})"
    if blind and result.exit_status == EXIT_BLIND:
        text += " (--fail-if-blind: exit 3)"
    return text


def render_text(result: Comparison) -> str:
    """Summary lines and a fixed-width table, for a terminal."""
    table = pd.DataFrame(display_rows(result))
    body = table.to_string(index=False) if not table.empty else "(no cells)"
    return "\n".join(summary_lines(result)) + "\n\n" + body + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: Comparison) -> str:
    """GitHub-flavoured Markdown fit for a CI job summary."""
    lines = ["## Regression gate", ""]
    lines += [f"- {_markdown_cell(line)}" for line in summary_lines(result)]
    rows = display_rows(result)
    if rows:
        header = list(rows[0])
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [_markdown_cell(row[name]) for name in header]
            cells[1] = f"**{cells[1]}**" if cells[1].isupper() else cells[1]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_note(message: str) -> str:
    """The Markdown of a gate that could not judge: its heading and why."""
    return f"## Regression gate\n\n{_markdown_cell(message)}\n"
