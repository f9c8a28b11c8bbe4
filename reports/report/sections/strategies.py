"""The report across tf.distribute strategies: scaling, and each loop against the reference.

A cell's ``strategy`` (loops/distribute.py: ``none``, ``mirrored:N``, ``multiworker:W``) is
part of its setting, so the rest of the report already compares loops within one
strategy. This section compares each loop under a strategy with the SAME loop without
one at the same global batch (the core's rows, the strategy varying, against ``none``):
its speedup over one device and its **scaling efficiency**, that speedup over the
replicas (1 is perfect strong scaling, 1/N no gain); and its speed against the ladder's
reference under that strategy beside the same on one device. Every ratio is on the
steady step; cells that did not run, or ran not equivalent, take no part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import FASTER, GROUP_KEYS, SAME, SLOWER, against, compare
from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Context,
    Heading,
    Paragraph,
    Ratio,
    format_ratio,
    interval,
    table,
)
from tf_loopbench.reports.report.derived import SPEEDUP_COLUMNS, Derived

NONE = "none"
#: the figure every ratio here is on: the steady step (per-epoch costs aside)
FIGURE = "steady"


def replicas(strategy: str) -> int:
    """Replicas of a strategy key: N of ``mirrored:N``, W of ``multiworker:W``, 1 else.

    >>> replicas("mirrored:2"), replicas("multiworker:3"), replicas("none")
    (2, 3, 1)
    """
    _, _, count = str(strategy).partition(":")
    return int(count) if count.isdigit() else 1


def scaling(derived: Derived) -> pd.DataFrame:
    """The core's rows of each cell under a strategy against the same loop's cell without
    one, with ``replicas`` and the x-reference speedup of each side carried along
    (``steady_speedup_vs_reference*`` and ``against_steady_speedup_vs_reference*``)."""
    cells = derived.cells
    ok = cells[(cells["status"] == "ok") & (cells["equivalent"].map(lambda e: e is not False))]
    if (cells["strategy"] == NONE).all():
        ok = ok.iloc[:0]
    rows = compare(
        ok,
        "strategy",
        against(NONE),
        samples=derived.run_set.processes,
        figure=FIGURE,
        threshold=derived.threshold,
        keys=GROUP_KEYS,
        carry=SPEEDUP_COLUMNS[("reference", FIGURE)],
    )
    return rows.assign(replicas=rows["strategy"].map(replicas))


def _text(ratio: Ratio, fmt=format_ratio) -> str:
    return interval(ratio.value, ratio.low, ratio.high, fmt) or "n/a"


def _share(value: float) -> str:
    return f"{value:.0%}"


def _ratios(row: dict) -> tuple[Ratio, Ratio, Ratio, Ratio]:
    """Over one device, its efficiency, x reference under the strategy and on one device."""
    speedup = Ratio.row(row)
    n = row["replicas"]
    efficiency = Ratio(speedup.value / n, speedup.low / n, speedup.high / n)
    columns = SPEEDUP_COLUMNS[("reference", FIGURE)]
    under = Ratio(*(float(row[c]) for c in columns))
    single = Ratio(*(float(row[f"against_{c}"]) for c in columns))
    return speedup, efficiency, under, single


def scaling_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """The loop under the strategy against itself on one device and against the reference
    under both."""
    reference = derived.ladder.reference if derived.ladder is not None else "reference"
    rows = []
    for row in scaling(derived).to_dict("records"):
        speedup, efficiency, under, single = _ratios(row)
        record = {"run": row["run"]} if several_runs else {}
        record.update(
            {
                "workload": row["workload"],
                "device": row["device"],
                "batch": str(row["batch_size"]),
                "loop": row["loop"],
                "strategy": row["strategy"],
                "x one device [95% CI]": _text(speedup),
                "scaling efficiency [95% CI]": _text(efficiency, _share),
                f"x {reference} under it": _text(under),
                f"x {reference} on one device": _text(single),
            }
        )
        rows.append(record)
    return pd.DataFrame(rows)


def strategy_sentences(derived: Derived) -> list[str]:
    """One sentence per loop and strategy: its speed against the reference under the
    strategy, beside the same on one device, and its scaling efficiency."""
    reference = derived.ladder.reference if derived.ladder is not None else None
    gains = {
        FASTER: "is faster than on one device",
        SLOWER: "is slower than on one device",
        SAME: "is as fast as on one device",
    }
    sentences = []
    for row in scaling(derived).to_dict("records"):
        speedup, efficiency, under, single = _ratios(row)
        where = f"{row['workload']} ({row['device']}, batch {row['batch_size']})"
        gain = gains.get(row["verdict"], "is not shown faster or slower than on one device")
        text = f"{where}: under {row['strategy']}, {row['loop']} "
        if reference is not None and row["loop"] != reference:
            if np.isfinite(under.value):
                text += f"runs at {_text(under)} {reference} ({_text(single)} on one device) and "
            else:
                text += (
                    f"has no {reference} beside it ({_text(single)} {reference} on one device) and "
                )
        text += f"{gain}: scaling efficiency {_text(efficiency, _share)} over {row['replicas']} replicas."
        sentences.append(text)
    return sentences


def blocks(context: Context) -> list[Block]:
    """The section on strategies; empty when every cell ran without one."""
    frame = scaling_table(context.derived, context.several_runs)
    if frame.empty:
        return []
    return [
        Heading(2, "Strategies"),
        Paragraph(
            "Each loop under a tf.distribute strategy against the same loop on one device "
            "(strategy none) at the same global batch, steady step, 95% CI across processes "
            "in brackets. Scaling efficiency: that speedup over the replicas (100%: perfect "
            "strong scaling). Cells skipped under a strategy say why in All cells."
        ),
        *table(frame),
        Bullets(tuple(strategy_sentences(context.derived))),
    ]
