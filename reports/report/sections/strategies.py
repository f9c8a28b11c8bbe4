"""The report across tf.distribute strategies (docs/distribute.md): each loop under a
strategy against itself without one at the same global batch, its scaling efficiency, and
its speed against the reference under the strategy and on one device (steady step).
"""

from __future__ import annotations

import pandas as pd
from tf_loopbench.reports.compare import (
    FASTER,
    GROUP_KEYS,
    SAME,
    SLOWER,
    against,
    compare,
    ratio_label,
)
from tf_loopbench.reports.report.aggregate import strategy_replicas
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
#: the recorded facts a scaling row carries to say whether its replicas share cores
SHARE_COLUMNS = ("replicas_share", "replica_shared_cores")
#: said beside an efficiency whose replicas share the same cores
CAVEAT = "the strategy's overhead on the same cores, not a speed-up separate devices would give"
#: the figure every ratio here is on: the steady step (per-epoch costs aside)
FIGURE = "steady"


def scaling(derived: Derived) -> pd.DataFrame:
    """The core's rows of each cell under a strategy against the same loop's cell without
    one, with ``replicas`` and both sides' speedups against the reference carried along."""
    cells = derived.cells
    ok = cells[(cells["status"] == "ok") & (cells["equivalent"].map(lambda e: e is not False))]
    if (cells["strategy"] == NONE).all():
        ok = ok.iloc[:0]
    options = {"samples": derived.run_set.processes, "figure": FIGURE, "keys": GROUP_KEYS}
    carry = [*SPEEDUP_COLUMNS[("reference", FIGURE)], *SHARE_COLUMNS]
    rows = compare(
        ok, "strategy", against(NONE), threshold=derived.threshold, carry=carry, **options
    )
    return rows.assign(replicas=rows["strategy"].map(strategy_replicas))


def shared_cores(row: dict) -> str | None:
    """When a row's replicas share the same cores (logical CPU devices, or worker
    processes on one CPU; recorded by the run, aggregate.replica_facts), the caveat that
    goes beside its efficiency, e.g. "2 logical devices of one CPU sharing its 2 cores";
    None when each replica has a device of its own."""
    share, cores = row.get("replicas_share"), row.get("replica_shared_cores")
    if not isinstance(share, str):
        return None
    where = "its" if share == "logical devices" else "the same"
    cores_text = f"{where} {cores:.0f} cores" if pd.notna(cores) else f"{where} cores"
    return f"{row['replicas']} {share} of one CPU sharing {cores_text}"


def _text(ratio: Ratio, fmt=format_ratio) -> str:
    return interval(ratio.value, ratio.low, ratio.high, fmt) or "n/a"


def _ratios(row: dict) -> dict[str, str]:
    """A row's figures in words: x one device, efficiency, x reference under it and alone."""
    speedup, n = Ratio.row(row), row["replicas"]
    columns = SPEEDUP_COLUMNS[("reference", FIGURE)]
    efficiency = Ratio(speedup.value / n, speedup.low / n, speedup.high / n)
    return {
        "speedup": _text(speedup),
        "efficiency": _text(efficiency, "{:.0%}".format),
        "under": _text(Ratio(*(float(row[c]) for c in columns))),
        "single": _text(Ratio(*(float(row[f"against_{c}"]) for c in columns))),
    }


def scaling_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """Per loop and strategy: its figures (:func:`_ratios`) as a table."""
    reference = derived.ladder.reference if derived.ladder is not None else "reference"
    rows = scaling(derived).reset_index(drop=True)
    said = pd.DataFrame([_ratios(row) for row in rows.to_dict("records")], index=rows.index)
    keys = [*(["run"] if several_runs else []), "workload", "device", "batch_size"]
    keys += [key for key in ("width", "precision") if rows[key].nunique() > 1]
    # the interval's real coverage, from the fewest processes a side in the table
    label = ratio_label(int(rows["n"].min()), int(rows["n_against"].min())) if len(rows) else ""
    names = {
        "batch_size": "batch",
        "speedup": f"x one device [{label}]",
        "efficiency": f"scaling efficiency [{label}]",
        "under": f"x {reference} under it",
        "single": f"x {reference} on one device",
    }
    for index, row in zip(rows.index, rows.to_dict("records"), strict=True):
        caveat = shared_cores(row)
        if caveat:
            said.loc[index, "efficiency"] += f" ({caveat})"
    table = rows[[*keys, "loop", "strategy"]].astype(str).join(said)
    return table.rename(columns=names)


def strategy_sentences(derived: Derived) -> list[str]:
    """One sentence per loop and strategy: its figures (:func:`_ratios`) in words."""
    reference = derived.ladder.reference if derived.ladder is not None else None
    gains = {FASTER: "is faster than", SLOWER: "is slower than", SAME: "is as fast as"}
    sentences = []
    for row in scaling(derived).to_dict("records"):
        said = _ratios(row)
        gain = gains.get(row["verdict"], "is not shown faster or slower than")
        precision = f", {row['precision']}" if row["precision"] != "float32" else ""
        text = f"{row['workload']} ({row['device']}, batch {row['batch_size']}{precision}): "
        text += f"under {row['strategy']}, {row['loop']} "
        if reference is not None and row["loop"] != reference:
            if said["under"] != "n/a":
                text += f"runs at {said['under']} {reference} ({said['single']} on one device) and "
            else:
                text += f"has no {reference} beside it ({said['single']} {reference} on one device) and "
        efficiency = f"scaling efficiency {said['efficiency']} over {row['replicas']} replicas"
        caveat = shared_cores(row)
        if caveat:
            efficiency += f", which are {caveat}: {CAVEAT}"
        sentences.append(f"{text}{gain} on one device: {efficiency}.")
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
            "(strategy none) at the same global batch, steady step, a bootstrap interval over "
            "processes in brackets (its real coverage in the header: docs/decisions/0010). Scaling efficiency: that speedup over the replicas (100%: perfect "
            "strong scaling), said beside it when the replicas are logical devices or "
            "worker processes sharing the same cores. Cells skipped under a strategy say "
            "why in All cells."
        ),
        *table(frame),
        Bullets(tuple(strategy_sentences(context.derived))),
    ]
