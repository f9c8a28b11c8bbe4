"""Where the time goes: each profiled cell's breakdown and its top ops, from the
profiler's analysis of the traced steps (benchmarks/profiling.py, docs/profiling.md).
The plot shows the op / input / rest bars; this names the ops behind them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from tf_loopbench.reports.compare import GROUP_KEYS
from tf_loopbench.reports.report.common import (
    Block,
    Context,
    Heading,
    Paragraph,
    Table,
    format_seconds,
    setting_table,
)
from tf_loopbench.reports.report.derived import Derived

#: ops named per cell (the run records benchmarks.profiling.TOP_OPS)
TOP = 3
INTRO = (
    "From the profiled run: a few steady steps per cell traced after its timed windows, "
    "from the first process that has a profile. Op time is kernel execution, input "
    "the wait for data, the rest host overhead (Python, dispatch); the top ops are "
    "ranked by self time a step, with their share of all ops' self time. An XLA "
    "program is listed by its HLO ops, marked (XLA); ops run one at a time from Python by "
    "their kernel time."
)


#: the trailing parts of an op's scope kept in the table (the layer and the op)
SCOPE_PARTS = 3


def short_name(name: str) -> str:
    """An op's name without the outer scopes, which repeat in every row.

    >>> short_name("StatefulPartitionedCall/gradient_tape/model/dense/MatMul/MatMul_1 (MatMul)")
    '…/dense/MatMul/MatMul_1 (MatMul)'
    >>> short_name("fusion.3 (XLA)")
    'fusion.3 (XLA)'
    """
    op, sep, kind = name.partition(" (")
    parts = op.split("/")
    if len(parts) > SCOPE_PARTS:
        op = "…/" + "/".join(parts[-SCOPE_PARTS:])
    return op + sep + kind


def op_text(op: Mapping[str, Any]) -> str:
    """ "…/dense/MatMul (MatMul) 1.2 ms (35%)": one top op, its time a step and share."""
    seconds = format_seconds(float(op["self_time_s"]))
    return f"{short_name(str(op['name']))} {seconds} ({float(op['fraction']):.0%})"


def first_top_ops(processes: pd.DataFrame) -> dict[tuple, list[Mapping[str, Any]]]:
    """Per report cell (GROUP_KEYS), the top ops of its first process that has them."""
    if "profile_top_ops" not in processes:
        return {}
    found: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in processes.sort_values("process").to_dict("records"):
        ops = row.get("profile_top_ops")
        key = tuple(row[k] for k in GROUP_KEYS)
        if isinstance(ops, Sequence) and not isinstance(ops, str) and key not in found:
            readable = [op for op in ops if well_formed(op)]  # a hand-edited file: skip the rest
            if readable:
                found[key] = readable
    return found


def well_formed(op: Any) -> bool:
    """Whether ``op`` is a top-op record as benchmarks.profiling writes it.

    >>> well_formed({"name": "MatMul", "self_time_s": 1e-3, "fraction": 0.5})
    True
    >>> well_formed({"name": 3}), well_formed("MatMul"), well_formed({"name": "x", "fraction": 0.5})
    (False, False, False)
    """
    if not isinstance(op, Mapping) or not isinstance(op.get("name"), str):
        return False
    numbers = (op.get("self_time_s"), op.get("fraction"))
    return all(isinstance(x, int | float) and math.isfinite(x) for x in numbers)


def profile_table(derived: Derived, several_runs: bool) -> pd.DataFrame:
    """One row per profiled cell: the profiler's step, the op / input / rest shares and
    the top ops; empty when no cell has a profile."""
    top = first_top_ops(derived.run_set.processes)
    rows = []
    for row in derived.cells.to_dict("records"):
        ops = top.get(tuple(row[k] for k in GROUP_KEYS))
        step = float(row.get("profile_step_time_s", math.nan))
        if not ops or not math.isfinite(step) or step <= 0:
            continue
        op_s = float(row.get("profile_op_time_s", math.nan))
        wait_s = float(row.get("profile_input_wait_s", math.nan))
        rest = max(0.0, step - op_s - wait_s)
        columns = {
            "loop": row["loop"],
            "profiled step": format_seconds(step),
            "op / input / rest": f"{op_s / step:.0%} / {wait_s / step:.0%} / {rest / step:.0%}",
            f"top {TOP} ops (self time a step, share)": "; ".join(op_text(op) for op in ops[:TOP]),
        }
        rows.append((row, columns))
    if not rows:
        return pd.DataFrame()
    return setting_table(derived.cells, rows, several_runs).drop(
        columns="Keras chose", errors="ignore"
    )


def blocks(context: Context) -> list[Block]:
    frame = profile_table(context.derived, context.several_runs)
    if frame.empty:
        return []
    return [Heading(2, "Where the time goes"), Paragraph(INTRO), Table(frame)]
