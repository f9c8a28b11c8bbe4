"""History: one machine's stored runs in commit order, with change points and trends in each
cell's step time and in its ratio to the reference loop (docs/scaling.md, "History"). Run it::

    loopbench history --store .loopbench/baselines --out results/history
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tf_loopbench.reports.compare import CELL_KEYS, DEFAULT_THRESHOLD, Figure, against, compare
from tf_loopbench.reports.gate.samples import IncomparableRunsError, process_samples
from tf_loopbench.reports.rundir import (
    CellKey,
    Run,
    RunDirError,
    atomic_write_text,
    load_run,
    reference_loop,
)

#: smallest step that counts (the gate's threshold: a smaller one has no practical meaning)
DEFAULT_MIN_CHANGE = DEFAULT_THRESHOLD
CONFIDENCE = 0.95
MIN_SEGMENT = 2  # the fewest runs on each side of a change point
#: the fewest runs a trend is fitted over, and flagged over (Theil-Sen over 4 or 5 is too narrow)
MIN_TREND_RUNS = 4
MIN_CREEP_RUNS = 6
MIN_SIGMA = 0.002  # the smallest run-to-run scatter assumed (log scale): a quiet series is luck
DEFAULT_OUT = Path("results") / "history"
HISTORY_MD = "history.md"
STEP_TIME, RATIO = "step time", "ratio"
SERIES = (STEP_TIME, RATIO)


class HistoryError(Exception):
    """A history that cannot be made (no store, no runs); the message is one line."""


@dataclass(frozen=True, eq=False)
class Entry:
    """One stored run, placed in the history."""

    name: str  # the baseline's name in the store
    run: Run
    commit: str | None
    dirty: bool
    started_at: str

    @property
    def label(self) -> str:
        """``abc1234 11-21`` (commit and start date), for axes and tables."""
        commit = (self.commit or "no-commit")[:7] + ("+" if self.dirty else "")
        return f"{commit} {self.started_at[5:10]}"


@dataclass(frozen=True)
class Step:
    """The size of a step in one series: geometric mean after / before, 95% interval."""

    ratio: float
    low: float
    high: float
    runs_before: int
    runs_after: int

    @property
    def size(self) -> str:
        return f"{self.ratio - 1:+.1%} (95% CI {self.low - 1:+.1%} to {self.high - 1:+.1%})"


@dataclass(frozen=True, eq=False)
class Change:
    """A step in one cell between consecutive runs, by the series that found it (in order)."""

    cell: CellKey
    before: Entry
    after: Entry
    steps: dict[str, Step]

    @property
    def found_in(self) -> tuple[str, ...]:
        return tuple(self.steps)

    @property
    def main(self) -> Step:
        """The step time's step where it found one, else the ratio's."""
        return next(iter(self.steps.values()))

    def describe(self, reference: str | None) -> str:
        """``step time +30.1% (95% CI ...); ratio to fit +29.8% (95% CI ...)``."""
        inverted = self.cell.loop == reference  # a step every loop's ratio took
        ratio = "every loop's ratio to it (inverted)" if inverted else f"ratio to {reference}"
        names = {STEP_TIME: STEP_TIME, RATIO: ratio}
        return "; ".join(f"{names[name]} {step.size}" for name, step in self.steps.items())


@dataclass(frozen=True)
class Trend:
    cell: CellKey
    series: str  # STEP_TIME or RATIO
    per_run: float  # relative change per run (Theil-Sen on the log series)
    low: float
    high: float
    runs: int
    confirmed: bool = True  # False: a step time that crept alone (load on the machine)
    with_setting: bool = False  # a step time that crept with its whole setting, not its ratio
    #: the significant steps the creep was preferred to: (position after, Step), each
    instead_of: tuple[tuple[int, Step], ...] = ()

    @property
    def total(self) -> float:
        return math.expm1(math.log1p(self.per_run) * (self.runs - 1))

    def significant(self, min_change: float) -> bool:
        """Over MIN_CREEP_RUNS runs or more, excludes no trend, adds up to ``min_change``."""
        excludes_none = self.low > 0 or self.high < 0
        return self.runs >= MIN_CREEP_RUNS and excludes_none and abs(self.total) >= min_change

    def flagged(self, min_change: float) -> bool:
        """Significant, and in a step time, confirmed (see :func:`trends_of`)."""
        return self.confirmed and self.significant(min_change)


@dataclass(frozen=True)
class History:
    entries: tuple[Entry, ...]  # in commit order
    order_basis: str
    #: per (run, cell, series): position, cell keys, cell, series, value (s, or a ratio), ci
    series: pd.DataFrame
    changes: tuple[Change, ...]
    trends: tuple[Trend, ...]
    min_change: float
    reference: str | None  # the ladder's reference loop, the ratios' denominator
    other_machines: int = 0  # readable runs left out: another machine
    unreadable: tuple[str, ...] = ()  # store entries that did not load


def commit_order(entries: Sequence[Entry], repo: str | os.PathLike[str] | None = "."):
    """(entries in commit order, how it was decided): by ``git rev-list --date-order`` where
    the work tree ``repo`` knows every run's commit, else by each commit's first run."""
    commits = sorted({e.commit for e in entries if e.commit})
    ranks: dict[str, int] = {}
    if repo is not None and commits and all(e.commit for e in entries):
        git = ["git", "-C", str(repo), "rev-list", "--date-order", "--reverse", *commits, "--"]
        try:
            result = subprocess.run(git, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            result = None
        shas = result.stdout.split() if result is not None and result.returncode == 0 else []
        found = {c: [i for i, sha in enumerate(shas) if sha.startswith(c)] for c in commits}
        ranks = {c: m[0] for c, m in found.items() if len(m) == 1}
    same_commit = "runs of one commit by start time"
    if commits and len(ranks) == len(commits):
        basis = (
            "by git ancestry (git rev-list --date-order: a commit after its ancestors, "
            f"commits on separate branches by commit date); {same_commit}"
        )
        return sorted(entries, key=lambda e: (ranks[e.commit], e.started_at)), basis
    tags = {entry: entry.commit or f"run:{entry.name}" for entry in entries}
    first_seen = {t: min(e.started_at for e in entries if tags[e] == t) for t in tags.values()}
    why = "no git work tree knows every commit" if commits else "the runs record no commit"
    basis = f"by the start time of each commit's first run ({why}); {same_commit}"
    return sorted(entries, key=lambda e: (first_seen[tags[e]], tags[e], e.started_at)), basis


def ratios_to_reference(run: Run, reference: str) -> dict[CellKey, float]:
    """Per cell but the reference's: its least disturbed step time (fastest timed window of all
    its processes) over that of its setting's ``reference`` cell, as the core pairs them."""
    try:
        samples = process_samples(run)
    except IncomparableRunsError:
        return {}
    fastest = samples.groupby("cell", sort=False)["step_time_s"].min()
    if fastest.empty:
        return {}
    keys = [CellKey(*cell) for cell in fastest.index]
    cells = pd.DataFrame(keys).assign(least_disturbed_s=fastest.to_numpy())
    figure = Figure("least disturbed", "least_disturbed_s", "least_disturbed_s")
    rows = compare(cells, "loop", against(reference), figure=figure, keys=CELL_KEYS)
    return {keys[label]: row.value / row.against_value for label, row in rows.iterrows()}


def series_of(entries: Sequence[Entry], reference: str | None = None) -> pd.DataFrame:
    """One row per (run, ok cell, series): the median step time (s) with its 95% interval and,
    given the ``reference`` loop, the ratio to it (no interval: run-to-run scatter is its noise)."""
    rows = []
    for position, entry in enumerate(entries):
        summary = entry.run.summary
        ratios = ratios_to_reference(entry.run, reference) if reference else {}
        for record in summary[summary["status"] == "ok"].to_dict("records"):
            cell, median = CellKey.of(record), record["step_time_median_s"]
            if not (isinstance(median, float | int) and median > 0):
                continue
            row = {"position": position, **cell._asdict(), "cell": cell, "value": median}
            low, high = (record.get(f"step_time_ci_{s}_s", math.nan) for s in ("low", "high"))
            rows.append({**row, "series": STEP_TIME, "ci_low": low, "ci_high": high})
            if cell in ratios:
                rows.append({**row, "series": RATIO, "value": ratios[cell]})
    columns = ["position", *CELL_KEYS, "cell", "series", "value", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


def noise_sigma(log_values: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray) -> float:
    """Scatter of one run's log figure: the larger of the runs' own uncertainty (95%
    intervals as +-1.96 sigma) and the run-to-run scatter (median absolute deviation of
    successive differences / sqrt 2, which neither a step nor a steady creep moves much)."""
    widths = np.log(ci_high) - np.log(ci_low)
    widths = widths[np.isfinite(widths)]
    within = float(np.median(widths)) / (2 * stats.norm.ppf(0.975)) if widths.size else 0.0
    differences = np.diff(log_values)
    spread = np.abs(differences - np.median(differences)) if differences.size > 1 else [0.0]
    between = float(np.median(spread)) * 1.4826 / math.sqrt(2)
    return max(within, between, MIN_SIGMA)


def segment_ratio(before: np.ndarray, after: np.ndarray, sigma: float):
    """(ratio, low, high): geometric means after / before, Welch 95% interval, scatter >= sigma."""
    difference = float(np.mean(after) - np.mean(before))
    a, b = (
        max(np.var(s, ddof=1) if s.size > 1 else 0.0, sigma**2) / s.size for s in (before, after)
    )
    dof = (a + b) ** 2 / (a**2 / max(before.size - 1, 1) + b**2 / max(after.size - 1, 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * math.sqrt(a + b)
    return math.exp(difference), math.exp(difference - half), math.exp(difference + half)


def change_points(
    log_values: np.ndarray, sigma: float, min_change: float = DEFAULT_MIN_CHANGE
) -> list[tuple[int, float, float, float]]:
    """[(index of the first run after the step, ratio, low, high)] for one series: PELT's
    steps, the weakest too small or not significant dropped until none is; none where a
    steady creep explains the series better (:func:`creep_explains`).

    >>> steps = np.log([1.0, 1.01, 0.99, 1.0, 1.3, 1.31, 1.29, 1.3])
    >>> [(i, round(r, 2)) for i, r, _, _ in change_points(steps, 0.01)]
    [(4, 1.3)]
    """
    sized = significant_steps(log_values, sigma, min_change)
    return [] if creep_explains(log_values, sized, sigma) else sized


def significant_steps(
    log_values: np.ndarray, sigma: float, min_change: float = DEFAULT_MIN_CHANGE
) -> list[tuple[int, float, float, float]]:
    """PELT's steps of one series, the weakest too small or not significant dropped until
    none is, before any creep is considered."""
    import ruptures

    n = log_values.size
    if n < 2 * MIN_SEGMENT:
        return []
    penalty = 2 * sigma**2 * math.log(n)
    found = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(log_values).predict(penalty)
    breaks = [b for b in found if b < n]
    while breaks:
        bounds = [0, *breaks, n]
        segments = [log_values[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        sized = [
            (index, *segment_ratio(segments[k], segments[k + 1], sigma))
            for k, index in enumerate(breaks)
        ]
        failing = [s for s in sized if abs(s[1] - 1) < min_change or s[2] <= 1 <= s[3]]
        if not failing:
            return sized
        breaks.remove(min(failing, key=lambda s: abs(math.log(s[1])))[0])
    return []


def creep_explains(log_values: np.ndarray, sized: list, sigma: float) -> bool:
    """A steady creep, which the search cuts into a staircase: True where a significant
    straight line explains the series better than the ``sized`` steps (BIC, sigma known)."""
    if not sized:
        return False
    n = log_values.size
    bounds = [0, *(step[0] for step in sized), n]
    segments = [log_values[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    x = np.arange(n)
    rss_steps = sum(float(np.sum((segment - segment.mean()) ** 2)) for segment in segments)
    rss_line = float(np.sum((log_values - np.polyval(np.polyfit(x, log_values, 1), x)) ** 2))
    line = trend_of(log_values)
    creeps = line is not None and (line[1] > 0 or line[2] < 0)
    bic_line = rss_line / sigma**2 + 2 * math.log(n)
    bic_steps = rss_steps / sigma**2 + (2 * len(sized) + 1) * math.log(n)
    return creeps and bic_line < bic_steps


def trend_of(log_values: np.ndarray) -> tuple[float, float, float] | None:
    """(per run, low, high) relative change per run by Theil-Sen; None below four runs."""
    if log_values.size < MIN_TREND_RUNS:
        return None
    slope, _, low, high = stats.theilslopes(log_values, np.arange(log_values.size), CONFIDENCE)
    return math.expm1(slope), math.expm1(low), math.expm1(high)


def _roles(fitted: dict, reference: str | None) -> dict[CellKey, tuple[set, set, set]]:
    """Per cell: (the other cells of its setting, its loops with a ratio, its reference cells)."""
    cells = {cell for _, cell in fitted}
    with_ratio = {cell for name, cell in fitted if name == RATIO}
    settings = {cell: {c for c in cells if c.setting == cell.setting} for cell in cells}
    return {
        cell: (same - {cell}, same & with_ratio, {c for c in same if c.loop == reference})
        for cell, same in settings.items()
    }


def confirmed(
    found: dict[tuple[CellKey, int], dict[str, Step]], fitted: dict, reference: str | None
) -> dict[tuple[CellKey, int], dict[str, Step]]:
    """The steps that say who moved, a setting's cells read together (steps at most one run
    apart): load moves every step time and no ratio, a slower loop its own ratio, a slower
    reference every ratio (named on its cell). Case by case: docs/scaling.md, "Who moved"."""
    roles = _roles(fitted, reference)

    def went(cell: CellKey, position: int, name: str) -> bool | None:
        """True up, False down, None: no step of ``name`` at ``position`` or one run away."""
        for q in (position, position - 1, position + 1):
            if name in found.get((cell, q), {}):
                return found[(cell, q)][name].ratio > 1
        return None

    def all_went(cells: set[CellKey], position: int, name: str, up: bool) -> bool:
        return bool(cells) and all(went(c, position, name) == up for c in cells)

    def moved(name: str, cell: CellKey, position: int, step: Step) -> bool | None:
        """Over ``step``'s runs: moved its way (True), held (False), neither or unknown (None)."""
        log_values, positions, sigma = fitted.get((name, cell), (np.empty(0), np.empty(0), 1.0))
        before = log_values[(positions >= position - step.runs_before) & (positions < position)]
        after = log_values[(positions >= position) & (positions < position + step.runs_after)]
        if before.size < MIN_SEGMENT or after.size < MIN_SEGMENT:
            return None
        _, low, high = segment_ratio(before, after, sigma)
        if (low > 1) if step.ratio > 1 else (high < 1):
            return True
        return False if low <= 1 <= high else None

    def stayed(cells: set[CellKey], position: int, step: Step) -> bool:
        return all(moved(STEP_TIME, c, position, step) is False for c in cells)

    out: dict[tuple[CellKey, int], dict[str, Step]] = {}
    for (cell, position), steps in found.items():
        others, loops, references = roles[cell]
        main, ratio = next(iter(steps.values())), steps.get(RATIO)
        up = main.ratio > 1
        if not loops or not references:
            keep = True
        elif cell.loop == reference:
            decisive = len(loops) >= 2 or stayed(loops, position, main)
            against_all = all_went(loops, position, RATIO, not up) and decisive
            keep = all_went(others, position, STEP_TIME, up) or against_all
        elif ratio and len(loops) >= 2 and all_went(loops, position, RATIO, ratio.ratio > 1):
            keep = False  # every loop's ratio stepped: the reference's change, on its cell
            inverse = replace(ratio, ratio=1 / ratio.ratio, low=1 / ratio.high, high=1 / ratio.low)
            for r in references:
                if (r, position) not in out and (r, position) not in found:
                    out[(r, position)] = {RATIO: inverse}
        elif ratio:
            # the one loop's ratio against a step of the reference's step time, its own step
            # time still: the reference moved, and its own step time names it
            opposed = any(went(r, position, STEP_TIME) == (ratio.ratio <= 1) for r in references)
            alone = len(loops) == 1 and STEP_TIME not in steps
            keep = not (alone and opposed and stayed({cell}, position, ratio))
        else:
            keep = all_went(others, position, STEP_TIME, up) or moved(RATIO, cell, position, main)
        if keep:
            out[(cell, position)] = steps
    return out


def trends_of(
    fitted: dict, found: dict, reference: str | None, min_change: float, swallowed: dict
) -> list:
    """Each series' Theil-Sen trend since its cell's last change point in ``found``; a step
    time's unconfirmed unless, as in :func:`confirmed`, a loop's ratio or the whole setting
    creeps with it, or, for the reference, the whole setting or every loop's ratio (two+).
    ``swallowed`` per (series, cell): the steps its creep was preferred to, kept on the trend."""
    last_change = {cell: after for cell, after in sorted(found, key=lambda key: key[1])}
    trends = []
    for (name, cell), (log_values, positions, _) in fitted.items():
        start = int(np.searchsorted(positions, last_change.get(cell, 0)))
        trend = trend_of(log_values[start:])
        if trend is not None:
            since = tuple(s for s in swallowed.get((name, cell), ()) if s[0] >= positions[start])
            trends.append(Trend(cell, name, *trend, runs=log_values.size - start, instead_of=since))
    roles = _roles(fitted, reference)
    by_key = {(t.series, t.cell): t for t in trends}

    def creeps(name: str, cell: CellKey, up: bool) -> bool:
        trend = by_key.get((name, cell))
        return trend is not None and trend.significant(min_change) and (trend.per_run > 0) == up

    def judged(trend: Trend) -> Trend:
        others, loops, references = roles[trend.cell]
        if trend.series == RATIO or not loops or not references:
            return trend
        up = trend.per_run > 0
        together = all(creeps(STEP_TIME, c, up) for c in others)
        if trend.cell.loop == reference:
            own = len(loops) >= 2 and all(creeps(RATIO, c, not up) for c in loops)
        else:
            own = creeps(RATIO, trend.cell, up)
        return replace(trend, confirmed=own or together, with_setting=together and not own)

    return [judged(trend) for trend in trends]


def build_history(
    entries: Sequence[Entry], repo: str | os.PathLike[str] | None, min_change: float
) -> History:
    """Order one machine's entries; find each cell's change points and trends in both series."""
    ordered, basis = commit_order(entries, repo)
    reference = reference_loop(*(entry.run for entry in ordered))
    series = series_of(ordered, reference)
    fitted = {}  # (series, cell): its log values, the positions of their runs, its sigma
    found: dict[tuple[CellKey, int], dict[str, Step]] = {}  # (cell, position after): steps
    swallowed: dict[tuple[str, CellKey], tuple] = {}  # (series, cell): steps a creep beat
    for (name, cell), rows in series.groupby(["series", "cell"], sort=False):
        log_values, positions = np.log(rows["value"].to_numpy()), rows["position"].to_numpy()
        sigma = noise_sigma(log_values, rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy())
        fitted[(name, cell)] = (log_values, positions, sigma)
        steps = significant_steps(log_values, sigma, min_change)
        if creep_explains(log_values, steps, sigma):  # a creep, but say which steps it beat
            bounds = [0, *(s[0] for s in steps), len(positions)]
            swallowed[(name, cell)] = tuple(
                (
                    int(positions[index]),
                    Step(ratio, low, high, index - bounds[k], bounds[k + 2] - index),
                )
                for k, (index, ratio, low, high) in enumerate(steps)
            )
            steps = []
        bounds = [0, *(s[0] for s in steps), len(positions)]
        for k, (index, ratio, low, high) in enumerate(steps):
            step = Step(ratio, low, high, index - bounds[k], bounds[k + 2] - index)
            found.setdefault((cell, int(positions[index])), {})[name] = step
    # a step-time step one run from a same-way ratio step is that change, where the ratio puts it
    for (cell, after), steps in list(found.items()):
        for neighbour in (after - 1, after + 1) if set(steps) == {STEP_TIME} else ():
            other = found.get((cell, neighbour), {})
            if set(other) == {RATIO} and (other[RATIO].ratio > 1) == (steps[STEP_TIME].ratio > 1):
                found[(cell, neighbour)] = {STEP_TIME: steps[STEP_TIME], RATIO: other[RATIO]}
                del found[(cell, after)]
                break
    found = confirmed(found, fitted, reference)
    cell_order = {cell: i for i, cell in enumerate(dict.fromkeys(series["cell"]))}
    changes = []
    for cell, after in sorted(found, key=lambda key: (cell_order[key[0]], key[1])):
        positions = fitted[(STEP_TIME, cell)][1]  # every run of the cell
        before = ordered[int(positions[positions < after].max())]
        changes.append(Change(cell, before, ordered[after], found[(cell, after)]))
    trends = trends_of(fitted, found, reference, min_change, swallowed)
    trends = tuple(sorted(trends, key=lambda t: (cell_order[t.cell], SERIES.index(t.series))))
    return History(tuple(ordered), basis, series, tuple(changes), trends, min_change, reference)


def load_history(
    store: str | os.PathLike[str],
    pattern: str | None = None,
    repo: str | os.PathLike[str] | None = ".",
    min_change: float = DEFAULT_MIN_CHANGE,
) -> History:
    """The history of the most recent run's machine (its hard metadata keys) among the runs
    stored in ``store`` whose names match ``pattern``::

        history = load_history(".loopbench/baselines")
        [(c.cell.name, c.before.commit, c.after.commit, c.found_in) for c in history.changes]
    """
    root = Path(store)
    if not root.is_dir():
        raise HistoryError(f"no baseline store at {root} (save with `loopbench baseline save`)")
    entries, unreadable = [], []
    for path in sorted(root.iterdir()):
        skip = pattern and not fnmatch.fnmatchcase(path.name, pattern)
        if path.name.startswith(".") or not path.is_dir() or skip:
            continue
        try:
            run = load_run(path)
        except RunDirError:
            unreadable.append(path.name)
            continue
        soft = run.metadata.get("soft", {})
        commit, started = soft.get("git_commit") or None, str(soft.get("started_at") or "")
        entries.append(Entry(path.name, run, commit, bool(soft.get("git_dirty")), started))
    if not entries:
        which = f" matching {pattern!r}" if pattern else ""
        raise HistoryError(f"no readable stored runs{which} in {store}")
    machines = {e: json.dumps(e.run.metadata.get("hard", {}), sort_keys=True) for e in entries}
    newest = machines[max(entries, key=lambda e: e.started_at)]
    kept = [e for e in entries if machines[e] == newest]
    history = build_history(kept, repo, min_change)
    return replace(history, other_machines=len(entries) - len(kept), unreadable=tuple(unreadable))


def write_plots(history: History, out_dir: Path) -> list:
    """One PNG per setting: each loop's median step time with 95% whiskers, below it its ratio
    to the reference, change points dashed with their size in the panel that found them."""
    from tf_loopbench.reports.report.common import PALETTE, Plot, log_scale, panels, points, save

    labels, plots = [entry.label for entry in history.entries], []
    ratio_label = f"least disturbed step / {history.reference}'s, same run"
    ylabels = {STEP_TIME: "median step time (ms), 95% interval", RATIO: ratio_label}
    settings = history.series["cell"].map(lambda cell: cell.setting)
    for _, rows in history.series.groupby(settings, sort=False):
        cells = list(dict.fromkeys(rows["cell"]))
        group = cells[0].setting_name
        names = [name for name in SERIES if (rows["series"] == name).any()]
        width = max(6.0, 0.7 * len(labels) + 2)
        figure, axes_list = panels(len(names), columns=1, width=width, height=3.4)
        for name, axes in zip(names, axes_list, strict=True):
            scale = 1e3 if name == STEP_TIME else 1.0
            for cell, line in rows[rows["series"] == name].groupby("cell", sort=False):
                color = PALETTE[cells.index(cell) % len(PALETTE)]
                loop = cell.loop + (f" jit={cell.fit_jit}" if cell.fit_jit in ("off", "on") else "")
                x, y = line["position"].to_numpy(), line["value"].to_numpy() * scale
                axes.plot(x, y, color=color, lw=1.2, label=loop)
                points(axes, x, y, line["ci_low"] * scale, line["ci_high"] * scale, color)
                for change in (c for c in history.changes if c.cell == cell and name in c.steps):
                    boundary = history.entries.index(change.after) - 0.5
                    axes.axvline(boundary, color=color, ls="--", lw=1)
                    text = f"{loop} {change.steps[name].ratio - 1:+.1%}"
                    style = {"textcoords": "offset points", "xytext": (4, 4), "fontsize": 8}
                    axes.annotate(text, (boundary, y.max()), color=color, **style)
            log_scale(axes)
            axes.set_ylabel(ylabels[name])
            axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
            axes.tick_params(labelbottom=axes is axes_list[-1])
            axes.grid(True, which="both", alpha=0.3)
            axes.legend(fontsize=8)
        axes_list[0].set_title(f"{group}: step time by commit")
        path = save(figure, out_dir / f"history-{group.replace('/', '-')}.png")
        plots.append(Plot(f"{group} step time by commit", path, caption=""))
    return plots


def _creeping(trend: Trend, min_change: float, entries: Sequence[Entry] = ()) -> str:
    """The trend table's *creeping* column; the steps a creep was preferred to, after it."""
    if not trend.significant(min_change):
        return ""
    if not trend.confirmed:
        text = "not in its ratio nor its setting (load?)"
    elif trend.with_setting:
        text = "yes, with its whole setting (the machine, or a change all share)"
    else:
        text = "yes"
    steps = "; ".join(
        f"{step.size} from {(entries[after].commit or '—')[:10]} ({entries[after].name})"
        for after, step in trend.instead_of
        if after < len(entries)
    )
    return f"{text}; or a step: {steps}" if steps else text


def document(history: History, plots: Sequence) -> list:
    """The history's blocks (``reports.report.common``'s document model)."""
    from tf_loopbench.reports.report import common

    entries, reference = history.entries, history.reference or "the reference loop"
    hard = entries[0].run.metadata.get("hard", {})
    gpus = "".join(f", {gpu}" for gpu in hard.get("gpus") or [])
    notes = []
    if history.other_machines:
        notes.append(
            f"{history.other_machines} stored runs of other machines (other hard metadata keys) "
            "are left out: their times do not compare with these."
        )
    if history.unreadable:
        notes.append(f"unreadable, left out: {', '.join(history.unreadable)}")
    changes = pd.DataFrame(
        {
            "cell": change.cell.name,
            "before": f"{(change.before.commit or '—')[:10]} ({change.before.name})",
            "after": f"{(change.after.commit or '—')[:10]} ({change.after.name})",
            "step, where found": change.describe(history.reference),
            "runs before/after": f"{change.main.runs_before}/{change.main.runs_after}",
        }
        for change in history.changes
    )
    latest = {}  # the newest run's figure per (series, cell)
    for r in history.series.to_dict("records"):
        interval = common.interval(r["value"], r["ci_low"], r["ci_high"], common.format_seconds)
        ratio = common.format_ratio(r["value"])
        latest[(r["series"], r["cell"])] = interval if r["series"] == STEP_TIME else ratio
    trends = pd.DataFrame(
        {
            "cell": trend.cell.name,
            "series": STEP_TIME if trend.series == STEP_TIME else f"ratio to {reference}",
            "latest": latest[(trend.series, trend.cell)],
            "trend per run": f"{trend.per_run:+.2%} (95% CI {trend.low:+.2%} to {trend.high:+.2%})",
            "over runs": f"{trend.total:+.1%} over {trend.runs}",
            "creeping": _creeping(trend, history.min_change, history.entries),
        }
        for trend in history.trends
    )
    runs = pd.DataFrame(
        {
            "#": str(position + 1),
            "baseline": entry.name,
            "commit": (entry.commit or "—")[:10] + (" (dirty)" if entry.dirty else ""),
            "started": entry.started_at,
            "tensorflow": str(entry.run.metadata.get("soft", {}).get("tensorflow", "")),
            "cells": str(int((entry.run.summary["status"] == "ok").sum())),
        }
        for position, entry in enumerate(entries)
    )
    minimum = f"{history.min_change:.0%}"
    about_changes = (
        f"A step in a cell's median step time, or in its ratio to {reference} (least disturbed "
        "windows, same run: load moves it far less), between two consecutive commits: the runs "
        "after it over those before it (geometric means), with its 95% interval."
    )
    no_changes = (
        f"None: no cell's step time, nor its ratio to {reference}, moved by {minimum} or more "
        "(95% confidence) between two groups of two or more consecutive runs."
    )
    about_trends = (
        "Theil-Sen slope per run of the log series since the cell's last change point; "
        f"*creeping*: over {MIN_CREEP_RUNS} runs or more, significant, {minimum} or more in all "
        "and, in a step time, with its ratio or its whole setting (alone, it is load)."
    )
    no_trends = f"Too few runs for a trend (at least {MIN_TREND_RUNS})."
    blocks = [
        common.Heading(1, "tf-loopbench history"),
        common.Paragraph(
            f"{len(entries)} stored runs of one machine, {hard.get('cpu_model', '?')} "
            f"({hard.get('visible_cores', '?')} cores){gpus}, from {entries[0].label} to "
            f"{entries[-1].label}; in commit order {history.order_basis}."
        ),
        *([common.Bullets(tuple(notes))] if notes else []),
    ]
    for title, frame, about, none in (
        ("Change points", changes, about_changes, no_changes),
        ("Trends", trends, about_trends, no_trends),
    ):
        rows = common.table(frame) if len(frame) else []
        blocks += [common.Heading(2, title), common.Paragraph(about if rows else none), *rows]
    blocks += [common.Heading(2, "Step time by commit"), *(common.Image(p) for p in plots)]
    return [*blocks, common.Heading(2, "Runs"), *common.table(runs)]


def command(
    store: str | None = None,
    pattern: str | None = None,
    out: str | None = None,
    repo: str | None = ".",
    min_change: float | None = None,
) -> int:
    """``loopbench history``: 0, history.md, history.html and plots/ written; 2, one line why."""
    from tf_loopbench.reports.gate.baseline import store_path
    from tf_loopbench.reports.report.render import render_html, render_markdown

    out_dir = Path(out or DEFAULT_OUT)
    try:
        history = load_history(store_path(store), pattern, repo, min_change or DEFAULT_MIN_CHANGE)
        blocks = document(history, write_plots(history, out_dir / "plots"))
        atomic_write_text(out_dir / HISTORY_MD, render_markdown(blocks, out_dir))
        atomic_write_text(out_dir / "history.html", render_html(blocks))
    except (HistoryError, OSError) as exc:
        what = "" if isinstance(exc, HistoryError) else "cannot write the history: "
        print(f"loopbench: error: {what}{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    for change in history.changes:
        print(
            f"change point: {change.cell.name} between {(change.before.commit or '?')[:10]} and "
            f"{(change.after.commit or '?')[:10]}: {change.describe(history.reference)}"
        )
    for trend in history.trends:
        if trend.instead_of and trend.flagged(history.min_change):
            print(
                f"creeping: {trend.cell.name} {trend.series}, {trend.total:+.1%} over "
                f"{trend.runs} runs; {_creeping(trend, history.min_change, history.entries)}"
            )
    print(f"history of {len(history.entries)} runs: {out_dir / HISTORY_MD}")
    return 0
