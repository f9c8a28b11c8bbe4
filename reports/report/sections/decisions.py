"""The Decisions: what they rest on (the claim rule among it), said once, then every
section's sentences by topic."""

from __future__ import annotations

import pandas as pd
from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Context,
    Heading,
    Paragraph,
    epoch_end_note,
    interval_note,
    optional_bool,
    percent,
)
from tf_loopbench.reports.report.derived import Derived


def reading_notes(derived: Derived) -> list[str]:
    """What the decisions rest on: the figure, the claim rule, what the data lacks."""
    cells = derived.cells
    ok = cells[cells["status"] == "ok"]
    band = percent(derived.threshold)
    notes = []
    if derived.ladder is not None:
        notes.append(
            f"x {derived.ladder.reference} is per step over whole epochs (amortized: the steady "
            "step plus per-epoch costs such as Keras's epoch end, spread over an epoch's steps); "
            "the steady step alone is given beside it where it differs. "
            f"A claim stands when its interval across processes lies wholly outside ±{band} "
            "(no practical difference, the regression gate's threshold), or wholly inside it; "
            "a noisy cell's interval is wider and it is flagged, it does not veto a claim."
        )
        notes.append(interval_note(derived))
        epoch_ends = epoch_end_note(derived)
        if epoch_ends and ok["amortized_recorded"].any():  # (else: a note below says so)
            notes.append(epoch_ends)
    few = ok[~(pd.to_numeric(ok["n_processes"], errors="coerce") >= 2)]
    if len(few) and len(few) == len(ok):
        notes.append(
            "Every cell ran one worker process: there is no interval (intervals come from "
            "processes only), so nothing below is claimed; the figures are point estimates "
            "(run with --processes 5 or more for claims)."
        )
    elif len(few):
        notes.append(
            f"{len(few)} of {len(ok)} cells ran one worker process: they have no interval, so "
            "nothing about them is claimed."
        )
    if len(ok) and not ok["amortized_recorded"].any():
        notes.append(
            "These runs recorded no per-epoch costs (made before tf-loopbench did): the "
            "amortized figures are the steady step."
        )
    if len(ok) and ok["equivalent"].map(optional_bool).isna().all():
        notes.append(
            "These runs recorded no equal-work losses (made before tf-loopbench did): whether "
            "the loops trained alike is not checked here."
        )
    return notes


def blocks(context: Context) -> list[Block]:
    out: list[Block] = [Heading(2, "Decisions")]
    out += [Paragraph(note) for note in reading_notes(context.derived)]
    found = context.sentences
    for topic in dict.fromkeys(decision.topic for decision in found):
        mine = [d for d in found if d.topic == topic]
        items = tuple(d.text if d.claim or d.info else f"*(no claim)* {d.text}" for d in mine)
        out += [Heading(3, topic), Bullets(items)]
    return out
