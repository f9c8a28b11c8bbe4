"""The loop ladder the report follows (from metadata.json), or why there is none."""

from __future__ import annotations

from tf_loopbench.reports.report.common import Block, Bullets, Context, Heading, Paragraph


def blocks(context: Context) -> list[Block]:
    run_set = context.derived.run_set
    ladder = run_set.ladder
    out: list[Block] = [Heading(2, "Loop ladder")]
    if ladder is not None:
        out.append(
            Paragraph(
                f"Every loop is compared with {ladder.reference}, the reference; each rung also "
                "with the one it compares with, which differs from it in one thing."
            )
        )
        items = []
        for rung in ladder.rungs:
            against = f"against {rung.compares_with or ladder.reference}"
            items.append(
                f"{rung.loop} ({'the reference' if rung.reference else against}): {rung.changes}"
            )
        out.append(Bullets(tuple(items)))
    if run_set.ladder_note:
        out.append(Paragraph(run_set.ladder_note))
    return out
