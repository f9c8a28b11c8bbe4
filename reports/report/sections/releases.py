"""Runs of several TensorFlow (or Keras) releases side by side (``nox -s versions``): each
release against the one before, cell by cell, on the amortized step; runs from different
machines compare within-run ratios to the ladder's reference instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version
from tf_loopbench.reports.compare import (
    DEFAULT_THRESHOLD,
    FASTER,
    GROUP_KEYS,
    PAIR_COLUMNS,
    RUN_KEY,
    SAME,
    SETTING_KEYS,
    SLOWER,
    Figure,
    against,
    against_previous,
    compare,
    pair,
)
from tf_loopbench.reports.gate.judge import machine_speed_notes
from tf_loopbench.reports.report.aggregate import RunSet, differing_hard_keys
from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Context,
    Decision,
    Heading,
    Paragraph,
    Table,
)
from tf_loopbench.reports.report.derived import Derived, loop_order
from tf_loopbench.reports.rundir import CellKey

#: the per-process figure compared (aggregate.process_table's column)
FIGURE = "amortized_step_time_s"
#: a cell across the releases' runs
CELL = (*SETTING_KEYS, "loop")
ABSOLUTE = "absolute"
RATIOS = "within-run ratios"
TOPIC = "TensorFlow upgrades"


@dataclass(frozen=True)
class Release:
    """One release's run: its label in the report, TensorFlow and Keras versions."""

    run: str  # the run's label in the RunSet
    run_id: str
    tensorflow: str
    keras: str

    @property
    def name(self) -> str:
        return f"TF {self.tensorflow} / Keras {self.keras or '?'}"

    def key(self) -> tuple[Version, Version]:
        try:
            keras = Version(self.keras)
        except InvalidVersion:
            keras = Version("0")
        return (Version(self.tensorflow), keras)


@dataclass(frozen=True)
class ReleaseComparison:
    """The releases in version order; ``values`` per (cell, release): the median figure (s, or
    a ratio to ``reference``) and n; ``steps`` per (cell, step): before, after, change (a time
    ratio) with its interval and the core's verdict."""

    releases: tuple[Release, ...]
    mode: str  # ABSOLUTE or RATIOS
    differing: tuple[str, ...]  # hard metadata keys that differ between the releases' runs
    reference: str | None
    values: pd.DataFrame
    steps: pd.DataFrame
    notes: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD
    #: per step "earlier → later": the warnings of runs whose matmul probes differ
    #: (the gate's machine_speed_notes): load, not the release, may explain its verdicts
    load: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def by_step(self) -> list[tuple[Release, Release, pd.DataFrame]]:
        """(earlier, later, the steps between them) for each release and the one after it."""
        step = self.steps["before"].astype(str) + " → " + self.steps["after"].astype(str)
        pairs = zip(self.releases, self.releases[1:], strict=False)
        return [(a, b, self.steps[step == f"{a.name} → {b.name}"]) for a, b in pairs]

    def label(self, release: Release) -> str:
        """``2.20.0``, or ``2.20.0/3.11.3`` where TensorFlow alone does not tell them apart."""
        if [r.tensorflow for r in self.releases].count(release.tensorflow) > 1:
            return f"{release.tensorflow}/{release.keras or '?'}"
        return release.tensorflow


#: a probe that moved by more than this between two releases' runs: their load differed
LOAD_THRESHOLD = 0.10


def _soft(run, key: str) -> str:
    value = run.metadata.get("soft", {}).get(key)
    return value.strip() if isinstance(value, str) else ""


def releases_of(run_set: RunSet) -> tuple[list[Release], list[str]]:
    """(one run per release, in version order; notes on runs left out)."""
    notes, found = [], {}
    for run, label in zip(run_set.runs, run_set.labels, strict=True):
        tensorflow, keras = _soft(run, "tensorflow"), _soft(run, "keras")
        try:
            Version(tensorflow)
        except InvalidVersion:
            what = f"an unreadable TensorFlow version {tensorflow!r}" if tensorflow else "none"
            notes.append(f"{label}: left out, its metadata records {what}.")
            continue
        release = Release(run=label, run_id=run.run_id, tensorflow=tensorflow, keras=keras)
        started = _soft(run, "started_at")
        earlier = found.get((tensorflow, keras))
        if earlier is None or started >= earlier[0]:
            if earlier is not None:
                notes.append(f"{earlier[1].run}: left out, {label} is a newer run of that release.")
            found[(tensorflow, keras)] = (started, release)
        else:
            notes.append(f"{label}: left out, {earlier[1].run} is a newer run of that release.")
    return sorted((release for _, release in found.values()), key=Release.key), notes


def process_figures(processes: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """Per process: GROUP_KEYS, process and FIGURE; with a ``reference`` loop, FIGURE over
    the reference cell's process of the same number (the core pairs the cells), the
    reference's own cells left out."""
    processes = processes.assign(**{FIGURE: pd.to_numeric(processes[FIGURE], errors="coerce")})
    processes = processes[np.isfinite(processes[FIGURE]) & (processes[FIGURE] > 0)]
    if reference is None:
        return processes
    keys, theirs = list(GROUP_KEYS), [f"against_{key}" for key in GROUP_KEYS]
    cells = processes.drop_duplicates(keys)
    pairs = pair(cells, "loop", against(reference), keys=GROUP_KEYS)
    mine, other = (cells.loc[pairs[c], keys].reset_index(drop=True) for c in PAIR_COLUMNS)
    figures = processes[[*keys, "process", FIGURE]]
    paired = figures.merge(mine.join(other.add_prefix("against_")), on=keys).merge(
        figures.add_prefix("against_"),
        left_on=[*theirs, "process"],
        right_on=[*theirs, "against_process"],
    )
    ratios = paired[FIGURE] / paired[f"against_{FIGURE}"]
    return paired.assign(**{FIGURE: ratios})[[*keys, "process", FIGURE]]


def release_comparison(run_set: RunSet) -> ReleaseComparison | None:
    """The release comparison of a RunSet; None unless its runs hold two releases or more.
    Example: ``release_comparison(RunSet.of(load_runs(dirs))).steps``."""
    releases, notes = releases_of(run_set)
    if len(releases) < 2:
        return None
    chosen = [run for run in run_set.runs if run.run_id in {r.run_id for r in releases}]
    differing = tuple(differing_hard_keys(chosen))
    reference = run_set.ladder.reference if run_set.ladder is not None else None
    processes = run_set.processes[run_set.processes[RUN_KEY].isin({r.run for r in releases})]
    if differing and reference is None:
        notes.append(
            "The runs declare no loop ladder, so there is no reference loop to take "
            "within-run ratios to: nothing compares across these machines."
        )
        processes = processes.iloc[:0]
    samples = process_figures(processes, reference if differing else None)
    cells = samples.groupby(list(GROUP_KEYS), sort=False)[FIGURE].agg(["median", "size"])
    cells = cells.rename(columns={"median": FIGURE, "size": "n"}).reset_index()
    ranks = {loop: i for i, loop in enumerate(loop_order(run_set.ladder, cells["loop"]))}
    cells = cells.assign(rank=cells["loop"].map(ranks))
    cells = cells.sort_values([*SETTING_KEYS, "rank"], kind="stable").drop(columns="rank")
    names = {release.run: release.name for release in releases}
    rule, figure = against_previous(list(names)), Figure("release", FIGURE, FIGURE)
    rows = compare(cells, RUN_KEY, rule, samples=samples, figure=figure, keys=GROUP_KEYS)
    rows = rows.reset_index(drop=True)
    steps = rows[list(CELL)].assign(
        before=rows[f"against_{RUN_KEY}"].map(names),
        after=rows[RUN_KEY].map(names),
        # the change in time, later over earlier: the speedup's inverse
        change=1 / rows["ratio"],
        change_ci_low=1 / rows["ci_high"],
        change_ci_high=1 / rows["ci_low"],
        verdict=rows["verdict"],
    )
    values = cells.assign(release=cells[RUN_KEY].map(names)).rename(columns={FIGURE: "median"})
    values = values[[*CELL, "release", "median", "n"]]
    mode = RATIOS if differing else ABSOLUTE
    load = {}
    if mode == ABSOLUTE:  # ratios within a run are what load leaves alone
        runs = {run.run_id: run for run in chosen}
        for before, after in zip(releases, releases[1:], strict=False):
            warned = machine_speed_notes(runs[before.run_id], runs[after.run_id], LOAD_THRESHOLD)
            if warned:
                load[f"{before.name} → {after.name}"] = tuple(warned)
    comparison = ReleaseComparison(
        tuple(releases), mode, differing, reference, values, steps, (*notes,)
    )
    return replace(comparison, load=load)


def comparison_of(derived: Derived) -> ReleaseComparison | None:
    return derived.once("releases", lambda: release_comparison(derived.run_set))


# --------------------------------------------------------------------------- words


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%" if math.isfinite(ratio) else "—"


def _change_text(row: dict[str, Any]) -> str:
    low, high = row["change_ci_low"], row["change_ci_high"]
    finite = math.isfinite(low) and math.isfinite(high)
    ci = f"interval {_percent(low)} to {_percent(high)}" if finite else "no interval"
    return f"{_percent(row['change'])} ({ci})"


def _loops_text(rows: list[dict[str, Any]]) -> str:
    """``<loop> (mlp/cpu/bs64/w128: +31.0% (interval ...))``, by loop."""
    by_loop: dict[str, list[str]] = {}
    for row in rows:
        said = f"{CellKey.of(row).setting_name}: {_change_text(row)}"
        by_loop.setdefault(row["loop"], []).append(said)
    return "; ".join(f"{loop} ({', '.join(cells)})" for loop, cells in by_loop.items())


def sentences(derived: Derived) -> list[Decision]:
    """Per release step, which loops the upgrade hurt and which it helped (beyond the band)."""
    comparison = comparison_of(derived)
    if comparison is None:
        return []
    band = f"±{comparison.threshold:.0%}"
    out = []
    if comparison.differing:
        text = (
            f"These releases ran on different machines (their {', '.join(comparison.differing)} "
            "differ): absolute times across them mean nothing, so each release is compared on "
            f"within-run ratios (each loop's step time over {comparison.reference}'s in the "
            "same run)."
        )
        out.append(Decision(TOPIC, text, False, info=True))
    figure = "amortized step time"
    if comparison.mode == RATIOS:
        figure += f" / {comparison.reference}'s in the same run"
    for before, after, part in comparison.by_step():
        rows = part.to_dict("records")
        hurt = [row for row in rows if row["verdict"] == SLOWER]
        helped = [row for row in rows if row["verdict"] == FASTER]
        same = sum(row["verdict"] == SAME for row in rows)
        text = f"{before.name} → {after.name}, {figure}: "
        text += f"the upgrade hurt {_loops_text(hurt) if hurt else f'no loop beyond {band}'}"
        if helped:
            text += f"; it helped {_loops_text(helped)}"
        text += (
            f"; {same} of {len(rows)} cells stayed within {band} with their interval, "
            f"{len(rows) - len(hurt) - len(helped) - same} are unclear."
        )
        warned = comparison.load.get(f"{before.name} → {after.name}", ())
        if warned:
            text += (
                f" But the runs' matmul probes differ ({'; '.join(w.removeprefix('warning: ') for w in warned)}):"
                " these verdicts may be the load, not the release; `loopbench ab` with each "
                "release on one side times both at once."
            )
        out.append(Decision(TOPIC, text, bool(hurt or helped) and not warned))
    return out


def release_table(comparison: ReleaseComparison) -> pd.DataFrame:
    """One row per cell: the figure under each release, then the change at each step."""
    values = comparison.values
    if values.empty:
        return pd.DataFrame()
    scale, unit = (1, "") if comparison.mode == RATIOS else (1e3, " ms")
    label = {release.name: comparison.label(release) for release in comparison.releases}
    cells = pd.MultiIndex.from_frame(values[list(CELL)].drop_duplicates())
    medians = values.pivot_table(index=list(CELL), columns="release", values="median")
    medians = medians.reindex(index=cells, columns=list(label)).to_numpy(dtype=float) * scale
    texts = np.where(np.isfinite(medians), np.char.mod("%.3g", medians), "—")
    table = pd.DataFrame(texts, index=cells, columns=[f"{label[n]}{unit}" for n in label])
    for before, after, part in comparison.by_step():
        texts = [f"{_change_text(row)} {row['verdict']}" for row in part.to_dict("records")]
        at = pd.MultiIndex.from_frame(part[list(CELL)])
        table[f"{label[before.name]} → {label[after.name]}"] = pd.Series(texts, at, dtype=object)
    table = table.fillna("—").reset_index()
    settings = [CellKey.of(row).setting_name for row in table.to_dict("records")]
    return table.assign(setting=settings)[["setting", "loop", *table.columns[len(CELL) :]]]


def blocks(context: Context) -> list[Block]:
    """The releases in version order, how they compare, the table."""
    comparison = comparison_of(context.derived)
    if comparison is None:
        return []
    order = ", ".join(f"{r.name} (run {r.run_id})" for r in comparison.releases)
    if comparison.mode == RATIOS:
        how = (
            f"The runs came from different machines ({', '.join(comparison.differing)} "
            "differ), so absolute times do not compare: each figure is a within-run ratio, "
            f"a loop's amortized step time over {comparison.reference}'s (process by process, "
            f"same setting, same run); {comparison.reference}'s own cells have none."
        )
    else:
        how = (
            "One machine (every hard metadata key alike): median amortized step time per "
            "step over whole epochs (per-epoch costs included), in ms."
        )
    out: list[Block] = [
        Heading(2, "TensorFlow releases side by side"),
        Paragraph(
            f"In version order: {order}. {how} Each step is a release against the one "
            "before it: later / earlier with a bootstrap interval over processes (nominal 95%; "
            "its real coverage: the Method); "
            f"*slower* or *faster* when that interval lies wholly outside "
            f"±{comparison.threshold:.0%} (the gate's band), *same* when wholly inside."
        ),
    ]
    warned = [f"{step}: {w}" for step, ws in comparison.load.items() for w in ws]
    if comparison.notes or warned:
        out.append(Bullets((*comparison.notes, *warned)))
    table = release_table(comparison)
    if not table.empty:
        out.append(Table(table))
    return out
