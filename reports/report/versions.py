"""Runs of several TensorFlow (or Keras) releases side by side: what each upgrade did.

``nox -s versions`` runs one matrix under each release; ``loopbench report`` on those
runs adds this section. What it computes (``release_comparison(run_set)``):

* The releases: each run's soft metadata keys ``tensorflow`` and ``keras``; runs in the
  order of those versions (not the order given). With several runs of one release the
  newest stands for it (the others are named as left out); a run without a readable
  version is left out too.
* Per cell (every cell key but the run's) and loop, per release step (each release
  against the one before it, consecutive in version order): the change of the
  amortized step time (what a user pays per step over whole epochs: Keras's per-epoch
  costs, where upgrades have hurt, are in it), later over earlier, with a 95%
  percentile-bootstrap interval over the processes (``reports.gate.stats``).
* When the runs come from different machines (their hard metadata keys differ),
  absolute times across them mean nothing: each run's figures become within-run
  ratios (process k of a loop over process k of the ladder's reference loop of the
  same setting, in the same run), and the steps compare those ratios. The
  reference's own cells then have no figure.
* A verdict per step against the gate's band of no practical difference (1 +- 5%):
  "slower" (its interval wholly above 1 + 5%), "faster" (wholly below 1 - 5%), "same"
  (wholly inside), "unclear" (reaching across), "none" (no interval).

``release_decisions(derived)`` says, per release step, which loops the upgrade hurt and
which it helped; ``release_blocks(derived)`` is the report's section. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version
from tf_loopbench.reports.gate.judge import DEFAULT_THRESHOLD
from tf_loopbench.reports.gate.stats import median_ratio, ratio_of_medians_ci
from tf_loopbench.reports.report.aggregate import GROUP_KEYS, RunSet, differing_hard_keys

#: the per-process figure compared (aggregate.process_table's column)
FIGURE = "amortized_step_time_s"
#: a cell across runs: every group key but the run's
CELL_COLUMNS = tuple(key for key in GROUP_KEYS if key != "run")
#: a setting, within which loops are compared: every cell key but the loop's
SETTING_COLUMNS = tuple(key for key in CELL_COLUMNS if key != "loop")
ABSOLUTE = "absolute"
RATIOS = "within-run ratios"


@dataclass(frozen=True)
class Release:
    """One release's run: its label in the report, TensorFlow and Keras versions."""

    run: str  # the run's label in the RunSet
    run_id: str
    tensorflow: str
    keras: str

    @property
    def name(self) -> str:
        """``TF 2.20.0 / Keras 3.11.3``."""
        return f"TF {self.tensorflow} / Keras {self.keras or '?'}"

    def key(self) -> tuple[Version, Version]:
        return (Version(self.tensorflow), _version_or_zero(self.keras))


@dataclass(frozen=True)
class ReleaseComparison:
    """The runs of several releases in version order and the change at each step."""

    releases: tuple[Release, ...]
    mode: str  # ABSOLUTE or RATIOS
    differing: tuple[str, ...]  # hard metadata keys that differ between the releases' runs
    reference: str | None  # the denominator of within-run ratios
    #: per (cell, release): median figure (s, or a ratio) with its 95% interval
    values: pd.DataFrame
    #: per (cell, step): before, after (release names), change (after / before), its
    #: 95% interval, verdict
    steps: pd.DataFrame
    notes: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD

    def step_names(self) -> list[tuple[Release, Release]]:
        return list(zip(self.releases, self.releases[1:], strict=False))

    def label(self, release: Release) -> str:
        """``2.20.0``, or ``2.20.0/3.11.3`` where TensorFlow alone does not tell them apart."""
        tensorflows = [r.tensorflow for r in self.releases]
        if tensorflows.count(release.tensorflow) > 1:
            return f"{release.tensorflow}/{release.keras or '?'}"
        return release.tensorflow


def _version_or_zero(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


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
    releases = sorted((release for _, release in found.values()), key=Release.key)
    return releases, notes


def _samples(
    run_set: RunSet, releases: list[Release], mode: str, reference: str | None
) -> dict[tuple, np.ndarray]:
    """Per (release run label, *CELL_COLUMNS): the per-process figures (step times, or
    within-run ratios to the reference's process of the same number)."""
    runs = {release.run for release in releases}
    processes = run_set.processes
    processes = processes[processes["run"].isin(runs)].copy()
    processes[FIGURE] = pd.to_numeric(processes[FIGURE], errors="coerce")
    processes = processes[np.isfinite(processes[FIGURE]) & (processes[FIGURE] > 0)]
    keys = ["run", *CELL_COLUMNS]
    if mode == RATIOS:
        references = processes[processes["loop"] == reference][
            ["run", *SETTING_COLUMNS, "process", FIGURE]
        ].rename(columns={FIGURE: "reference_figure"})
        paired = processes[processes["loop"] != reference].merge(
            references, on=["run", *SETTING_COLUMNS, "process"], how="inner"
        )
        paired[FIGURE] = paired[FIGURE] / paired["reference_figure"]
        processes = paired
    return {
        tuple(key): group[FIGURE].to_numpy(dtype=float)
        for key, group in processes.groupby(keys, sort=False)
    }


def _loop_order(run_set: RunSet) -> list[str]:
    loops = list(dict.fromkeys(run_set.cells["loop"]))
    return run_set.ladder.order(loops) if run_set.ladder is not None else loops


def verdict_of_change(low: float, high: float, threshold: float) -> str:
    """A change's (later / earlier time) 95% interval against 1 +- threshold: the
    report's verdict on a speedup, read the other way round (a time ratio above 1 is
    slower).

    >>> [verdict_of_change(*ci, 0.05) for ci in ((1.1, 1.3), (0.5, 0.9), (0.97, 1.02), (0.9, 1.2))]
    ['slower', 'faster', 'same', 'unclear']
    """
    from tf_loopbench.reports.report.decisions import verdict

    as_speedup = verdict(low, high, threshold)
    return {"faster": "slower", "slower": "faster"}.get(as_speedup, as_speedup)


def release_comparison(
    run_set: RunSet, threshold: float = DEFAULT_THRESHOLD
) -> ReleaseComparison | None:
    """The release comparison of a RunSet; None unless its runs hold two releases or more.

    Example::

        comparison = release_comparison(RunSet.of(load_runs(dirs)))
        comparison.steps[comparison.steps["verdict"] == "slower"]
    """
    releases, notes = releases_of(run_set)
    if len(releases) < 2:
        return None
    chosen = [run for run in run_set.runs if run.run_id in {r.run_id for r in releases}]
    differing = tuple(differing_hard_keys(chosen))
    reference = run_set.ladder.reference if run_set.ladder is not None else None
    mode = RATIOS if differing else ABSOLUTE
    if differing and reference is None:
        notes.append(
            "The runs declare no loop ladder, so there is no reference loop to take "
            "within-run ratios to: nothing compares across these machines."
        )
        samples: dict[tuple, np.ndarray] = {}
    else:
        samples = _samples(run_set, releases, mode, reference)
    loops = {loop: i for i, loop in enumerate(_loop_order(run_set))}
    loop_at = CELL_COLUMNS.index("loop")
    cells = sorted(
        {key[1:] for key in samples},
        key=lambda cell: (
            tuple(str(v) for i, v in enumerate(cell) if i != loop_at),
            loops.get(cell[loop_at], len(loops)),
            str(cell[loop_at]),
        ),
    )
    value_rows, step_rows = [], []
    for cell in cells:
        base = dict(zip(CELL_COLUMNS, cell, strict=True))
        for release in releases:
            times = samples.get((release.run, *cell), np.empty(0))
            median = float(np.median(times)) if times.size else math.nan
            value_rows.append({**base, "release": release.name, "median": median, "n": times.size})
        for before, after in zip(releases, releases[1:], strict=False):
            earlier = samples.get((before.run, *cell), np.empty(0))
            later = samples.get((after.run, *cell), np.empty(0))
            if not (earlier.size and later.size):
                continue
            change = float(median_ratio(earlier, later))
            low, high = ratio_of_medians_ci(earlier, later)
            step_rows.append(
                {
                    **base,
                    "before": before.name,
                    "after": after.name,
                    "change": change,
                    "change_ci_low": low,
                    "change_ci_high": high,
                    "verdict": verdict_of_change(low, high, threshold),
                }
            )
    value_columns = [*CELL_COLUMNS, "release", "median", "n"]
    step_columns = [
        *CELL_COLUMNS,
        "before",
        "after",
        "change",
        "change_ci_low",
        "change_ci_high",
        "verdict",
    ]
    return ReleaseComparison(
        releases=tuple(releases),
        mode=mode,
        differing=differing,
        reference=reference,
        values=pd.DataFrame(value_rows, columns=value_columns),
        steps=pd.DataFrame(step_rows, columns=step_columns),
        notes=tuple(notes),
        threshold=threshold,
    )


# --------------------------------------------------------------------------- words


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%" if math.isfinite(ratio) else "—"


def _change_text(row: dict[str, Any]) -> str:
    """``+31.0% (95% CI +25.2% to +37.1%)``."""
    if not (math.isfinite(row["change_ci_low"]) and math.isfinite(row["change_ci_high"])):
        return f"{_percent(row['change'])} (no interval)"
    return (
        f"{_percent(row['change'])} (95% CI {_percent(row['change_ci_low'])} to "
        f"{_percent(row['change_ci_high'])})"
    )


def _setting_name(row: dict[str, Any]) -> str:
    """``mlp/cpu/bs64/w128`` and the knobs that are not their defaults."""
    parts = [str(row["workload"]), str(row["device"]), f"bs{int(row['batch_size'])}"]
    if row.get("width"):
        parts.append(f"w{int(row['width'])}")
    if int(row.get("steps_per_call", 1) or 1) != 1:
        parts.append(f"k{int(row['steps_per_call'])}")
    if row.get("precision", "float32") not in ("float32", None):
        parts.append(str(row["precision"]))
    if row.get("strategy", "none") not in ("none", None):
        parts.append(str(row["strategy"]))
    return "/".join(parts)


def _figure_name(comparison: ReleaseComparison) -> str:
    if comparison.mode == RATIOS:
        return f"amortized step time / {comparison.reference}'s in the same run"
    return "amortized step time"


def _loops_text(rows: list[dict[str, Any]]) -> str:
    """``<loop> (mlp/cpu/bs64/w128: +31.0% (95% CI ...))``, by loop."""
    by_loop: dict[str, list[str]] = {}
    for row in rows:
        by_loop.setdefault(row["loop"], []).append(f"{_setting_name(row)}: {_change_text(row)}")
    return "; ".join(f"{loop} ({', '.join(cells)})" for loop, cells in by_loop.items())


def release_decisions(derived) -> list:
    """Per release step, which loops the upgrade hurt (their figure rose beyond the
    band, the interval wholly above it) and which it helped."""
    from tf_loopbench.reports.report.decisions import Decision

    comparison = getattr(derived, "releases", None)
    if comparison is None:
        return []
    topic = "TensorFlow upgrades"
    band = f"±{comparison.threshold:.0%}"
    out = []
    if comparison.differing:
        out.append(
            Decision(
                topic,
                "These releases ran on different machines (their "
                f"{', '.join(comparison.differing)} differ): absolute times across them mean "
                "nothing, so each release is compared on within-run ratios "
                f"(each loop's step time over {comparison.reference}'s in the same run).",
                False,
                info=True,
            )
        )
    for before, after in comparison.step_names():
        rows = comparison.steps[
            (comparison.steps["before"] == before.name) & (comparison.steps["after"] == after.name)
        ].to_dict("records")
        hurt = [row for row in rows if row["verdict"] == "slower"]
        helped = [row for row in rows if row["verdict"] == "faster"]
        same = sum(row["verdict"] == "same" for row in rows)
        text = f"{before.name} → {after.name}, {_figure_name(comparison)}: "
        if hurt:
            text += f"the upgrade hurt {_loops_text(hurt)}"
        else:
            text += f"the upgrade hurt no loop beyond {band}"
        if helped:
            text += f"; it helped {_loops_text(helped)}"
        text += (
            f"; {same} of {len(rows)} cells stayed within {band} with their 95% interval, "
            f"{len(rows) - len(hurt) - len(helped) - same} are unclear."
        )
        out.append(Decision(topic, text, bool(hurt or helped)))
    return out


def _value_text(value: float, mode: str) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:.3g}" if mode == RATIOS else f"{value * 1e3:.3g}"


def release_table(comparison: ReleaseComparison) -> pd.DataFrame:
    """One row per cell: the figure under each release, then the change at each step."""
    unit = "" if comparison.mode == RATIOS else " ms"
    steps = {
        (tuple(row[k] for k in CELL_COLUMNS), row["before"], row["after"]): row
        for row in comparison.steps.to_dict("records")
    }
    values = {
        (tuple(row[k] for k in CELL_COLUMNS), row["release"]): row["median"]
        for row in comparison.values.to_dict("records")
    }
    cells = list(
        dict.fromkeys(
            tuple(row[k] for k in CELL_COLUMNS) for row in comparison.values.to_dict("records")
        )
    )
    rows = []
    for cell in cells:
        row = dict(zip(CELL_COLUMNS, cell, strict=True))
        out = {"setting": _setting_name(row), "loop": row["loop"]}
        for release in comparison.releases:
            out[f"{comparison.label(release)}{unit}"] = _value_text(
                values.get((cell, release.name), math.nan), comparison.mode
            )
        for before, after in comparison.step_names():
            step = steps.get((cell, before.name, after.name))
            out[f"{comparison.label(before)} → {comparison.label(after)}"] = (
                f"{_change_text(step)} {step['verdict']}" if step else "—"
            )
        rows.append(out)
    return pd.DataFrame(rows)


def release_blocks(derived) -> list:
    """The report's section: the releases in version order, how they compare, the table."""
    from tf_loopbench.reports.report.render import Bullets, Heading, Paragraph, Table

    comparison = getattr(derived, "releases", None)
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
    blocks = [
        Heading(2, "TensorFlow releases side by side"),
        Paragraph(
            f"In version order: {order}. {how} Each step is a release against the one "
            "before it: later / earlier with a 95% bootstrap interval over processes; "
            f"*slower* or *faster* when that interval lies wholly outside "
            f"±{comparison.threshold:.0%} (the gate's band), *same* when wholly inside."
        ),
    ]
    if comparison.notes:
        blocks.append(Bullets(comparison.notes))
    table = release_table(comparison)
    if not table.empty:
        blocks.append(Table(table))
    return blocks


__all__ = [
    "ABSOLUTE",
    "RATIOS",
    "Release",
    "ReleaseComparison",
    "release_blocks",
    "release_comparison",
    "release_decisions",
    "release_table",
    "releases_of",
    "verdict_of_change",
]
