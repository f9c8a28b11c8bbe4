"""The Plots: every plot written (``reports.report.plots``, then the sections' own)."""

from __future__ import annotations

from tf_loopbench.reports.report.common import Block, Context, Heading, Image, Paragraph


def blocks(context: Context) -> list[Block]:
    if not context.plots:
        return []
    out: list[Block] = [Heading(2, "Plots")]
    for plot in context.plots:
        out += [Heading(3, plot.title), Paragraph(plot.caption), Image(plot)]
    return out
