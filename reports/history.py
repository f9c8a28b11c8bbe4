"""History: the stored runs of one machine in commit order, with trends and change points.

The gate judges one change at a time; a slowdown that creeps in over many merges, each
under the gate's threshold, shows only across the runs ``loopbench baseline save``
keeps. ``loopbench history`` loads every stored run (``--name``: those matching a
glob) of one machine, the one whose hard metadata keys match the most recent run's,
puts them in commit order (:func:`commit_order`) and writes ``history.md``,
``history.html`` and ``plots/``.

Two series per cell: its *step time* (the run's median, with its 95% interval), which
moves with the code and with whatever else loads the machine; and its *ratio to the
reference loop* (its least disturbed step over the reference's in the same run,
:func:`ratios_to_reference`), which moves with the code alone. In each: change points
(ruptures' PELT on the log series, each kept when at least ``min_change`` with a 95%
interval that excludes no change, :func:`change_points`), or, where a straight line
explains the series better, none; and the Theil-Sen trend since the last change point,
*creeping* when significant over six runs or more and adding up to ``min_change``. Who
moved is read per setting (:func:`confirmed`): a loop's step time that moves while its
ratio holds still is load, unless the whole setting moved; a step in every ratio of a
setting is the reference's. The method and its evidence: docs/scaling.md, "History".

This module never imports TensorFlow, ``loops`` or ``benchmarks``. Run it::

    loopbench history --store .loopbench/baselines --out results/history
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tf_loopbench.reports.compare import (
    CELL_KEYS,
    DEFAULT_THRESHOLD,
    SETTING_KEYS,
    Figure,
    against,
    compare,
)
from tf_loopbench.reports.gate.samples import fastest_windows, with_cell
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
#: the fewest runs on each side of a change point
MIN_SEGMENT = 2
#: the fewest runs a trend is fitted over, and the fewest it is flagged over (Theil-Sen's
#: interval over four or five runs is too narrow: four runs that happen to fall in order
#: would be "significant" one time in twelve)
MIN_TREND_RUNS = 4
MIN_CREEP_RUNS = 6
#: the smallest run-to-run scatter assumed (log scale): a perfectly quiet series is luck
MIN_SIGMA = 0.002
DEFAULT_OUT = Path("results") / "history"
HISTORY_MD = "history.md"
HISTORY_HTML = "history.html"
PLOTS_DIR = "plots"
#: the two series of a cell: its median step time, and its within-run ratio to the
#: reference loop (none for the reference's own cells)
STEP_TIME = "step time"
RATIO = "ratio"
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
        return f"{_percent(self.ratio)} (95% CI {_percent(self.low)} to {_percent(self.high)})"


@dataclass(frozen=True, eq=False)
class Change:
    """A step in one cell between runs ``before`` and ``after`` (consecutive in it),
    found in its step time, its ratio to the reference loop, or both (``steps``)."""

    cell: CellKey
    before: Entry
    after: Entry
    steps: dict[str, Step]  # by series (STEP_TIME, RATIO) that found it, in that order

    @property
    def found_in(self) -> tuple[str, ...]:
        return tuple(self.steps)

    @property
    def main(self) -> Step:
        """The step time's step where it found one, else the ratio's."""
        return next(iter(self.steps.values()))

    def describe(self, reference: str | None) -> str:
        """``step time +30.1% (95% CI ...); ratio to fit +29.8% (95% CI ...)``."""
        return "; ".join(
            f"{_series_name(series, reference, self.cell)} {step.size}"
            for series, step in self.steps.items()
        )


@dataclass(frozen=True)
class Trend:
    cell: CellKey
    series: str  # STEP_TIME or RATIO
    per_run: float  # relative change per run (Theil-Sen on log times)
    low: float
    high: float
    runs: int
    #: False: a step time that moved while its ratio and its setting did not (load)
    confirmed: bool = True
    #: a step time that moved with its whole setting, its ratio did not: the machine,
    #: or a change every loop shares
    with_setting: bool = False

    @property
    def total(self) -> float:
        return math.expm1(math.log1p(self.per_run) * (self.runs - 1))

    def significant(self, min_change: float) -> bool:
        """Over MIN_CREEP_RUNS runs or more, its interval excludes no trend and it adds up
        to ``min_change`` or more."""
        return (
            self.runs >= MIN_CREEP_RUNS
            and (self.low > 0 or self.high < 0)
            and abs(self.total) >= min_change
        )

    def flagged(self, min_change: float) -> bool:
        """Significant, and in a step time, confirmed (see :func:`confirmed_trends`)."""
        return self.confirmed and self.significant(min_change)


@dataclass(frozen=True)
class History:
    entries: tuple[Entry, ...]  # in commit order
    order_basis: str
    #: one row per (run, cell, series): position, cell keys, series, value and 95% interval
    #: (seconds for the step time, a plain ratio for the ratio to the reference)
    series: pd.DataFrame
    changes: tuple[Change, ...]
    trends: tuple[Trend, ...]
    min_change: float
    other_machines: int  # readable runs left out: another machine
    unreadable: tuple[str, ...]  # store entries that did not load
    reference: str | None = None  # the ladder's reference loop, the ratios' denominator


# ----------------------------------------------------------------------------- loading


def load_store(store: str | os.PathLike[str], pattern: str | None = None):
    """(entries of every readable run in ``store`` whose name matches ``pattern``,
    names that did not load)."""
    root = Path(store)
    if not root.is_dir():
        raise HistoryError(
            f"no baseline store at {root} (save runs with `loopbench baseline save`)"
        )
    entries, unreadable = [], []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        if pattern and not fnmatch.fnmatchcase(path.name, pattern):
            continue
        try:
            run = load_run(path)
        except RunDirError:
            unreadable.append(path.name)
            continue
        soft = run.metadata.get("soft", {})
        entries.append(
            Entry(
                name=path.name,
                run=run,
                commit=soft.get("git_commit") or None,
                dirty=bool(soft.get("git_dirty")),
                started_at=str(soft.get("started_at") or ""),
            )
        )
    return entries, unreadable


def machine_key(run: Run) -> str:
    return json.dumps(run.metadata.get("hard", {}), sort_keys=True, default=str)


def one_machine(entries: Sequence[Entry]) -> tuple[list[Entry], int]:
    """The entries of the most recent run's machine, and how many others were left out."""
    newest = max(entries, key=lambda e: e.started_at)
    key = machine_key(newest.run)
    kept = [e for e in entries if machine_key(e.run) == key]
    return kept, len(entries) - len(kept)


def git_order(commits: Sequence[str], repo: str | os.PathLike[str]) -> dict[str, int] | None:
    """Rank of each commit in ``git rev-list --date-order --reverse`` (ancestors first,
    unrelated commits by commit date); None if git cannot resolve every one of them."""
    if not commits:
        return {}
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--date-order", "--reverse", *commits, "--"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    rank = {sha: i for i, sha in enumerate(result.stdout.split())}
    found = {commit: [sha for sha in rank if sha.startswith(commit)] for commit in commits}
    if any(len(matches) != 1 for matches in found.values()):
        return None
    return {commit: rank[matches[0]] for commit, matches in found.items()}


def commit_order(entries: Sequence[Entry], repo: str | os.PathLike[str] | None = "."):
    """(entries in commit order, one line saying how the order was decided)."""
    commits = sorted({e.commit for e in entries if e.commit})
    ranks = git_order(commits, repo) if repo is not None and commits else None
    same_commit = "runs of one commit by start time"
    if ranks is not None and all(e.commit for e in entries):

        def key(entry: Entry):
            return (ranks[entry.commit], entry.started_at)

        basis = (
            "by git ancestry (git rev-list --date-order: a commit after its ancestors, "
            f"commits on separate branches by commit date); {same_commit}"
        )
    else:
        first_seen: dict[str, str] = {}
        for entry in entries:
            tag = entry.commit or f"run:{entry.name}"
            first_seen[tag] = min(first_seen.get(tag, entry.started_at), entry.started_at)

        def key(entry: Entry):
            tag = entry.commit or f"run:{entry.name}"
            return (first_seen[tag], tag, entry.started_at)

        why = "no git work tree knows every commit" if commits else "the runs record no commit"
        basis = f"by the start time of each commit's first run ({why}); {same_commit}"
    return sorted(entries, key=key), basis


SERIES_COLUMNS = [
    "position",
    "name",
    "label",
    *CELL_KEYS,
    "cell",
    "series",
    "value",
    "ci_low",
    "ci_high",
]


def least_disturbed(run: Run) -> dict[CellKey, float]:
    """Per cell, its fastest timed window over every process of the run (the process's
    own step time where a run has no window rows)."""
    fastest: dict[CellKey, float] = {}
    for (cell, _process), value in fastest_windows(run).items():
        if np.isfinite(value) and value > 0:
            fastest[cell] = min(value, fastest.get(cell, math.inf))
    if fastest:
        return fastest
    rows = run.process_samples()
    if rows.empty or "step_time_s" not in rows:
        return {}
    rows = with_cell(rows.assign(step_time_s=pd.to_numeric(rows["step_time_s"], errors="coerce")))
    rows = rows[np.isfinite(rows["step_time_s"]) & (rows["step_time_s"] > 0)]
    return {
        CellKey(*cell): float(v) for cell, v in rows.groupby("cell")["step_time_s"].min().items()
    }


#: a cell's least disturbed step time in a run (:func:`least_disturbed`), as a figure
#: the comparison core reads from cells
LEAST_DISTURBED = Figure("least disturbed", "least_disturbed_s", "least_disturbed_s")


def ratios_to_reference(run: Run, reference: str) -> dict[CellKey, float]:
    """Per cell (the reference's own left out): its least disturbed step time over that of
    the ``reference`` loop's cell of its setting in the same run, as the comparison core
    pairs loops (the one that ran as Keras chose where fit ran with and without XLA); a
    time ratio, the inverse of the core's speedup."""
    fastest = least_disturbed(run)
    if not fastest:
        return {}
    cells = pd.DataFrame(
        [{**cell._asdict(), "least_disturbed_s": t} for cell, t in fastest.items()]
    )
    rows = compare(cells, "loop", against(reference), figure=LEAST_DISTURBED, keys=CELL_KEYS)
    keys = list(fastest)
    return {keys[label]: row.value / row.against_value for label, row in rows.iterrows()}


def series_of(entries: Sequence[Entry], reference: str | None = None) -> pd.DataFrame:
    """One row per (run, ok cell, series): the median step time (s) and its 95% interval
    from summary.csv; and, given the ``reference`` loop, the cell's ratio to it
    (:func:`ratios_to_reference`; no interval: the run-to-run scatter is its noise)."""
    rows = []
    for position, entry in enumerate(entries):
        summary = entry.run.summary
        ratios = ratios_to_reference(entry.run, reference) if reference else {}
        for record in summary[summary["status"] == "ok"].to_dict("records"):
            cell, median = CellKey.of(record), record["step_time_median_s"]
            if not (isinstance(median, float | int) and median > 0):
                continue
            base = {"position": position, "name": entry.name, "label": entry.label}
            base |= {**cell._asdict(), "cell": cell}
            interval = {
                "ci_low": float(record.get("step_time_ci_low_s", math.nan)),
                "ci_high": float(record.get("step_time_ci_high_s", math.nan)),
            }
            rows.append({**base, "series": STEP_TIME, "value": float(median), **interval})
            if cell in ratios:
                no_interval = {"ci_low": math.nan, "ci_high": math.nan}
                rows.append({**base, "series": RATIO, "value": ratios[cell], **no_interval})
    return pd.DataFrame(rows, columns=SERIES_COLUMNS)


# ----------------------------------------------------------------------------- change points


def noise_sigma(log_times: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray) -> float:
    """Scatter of one run's log step time: the larger of the runs' own uncertainty (95%
    intervals as +-1.96 sigma) and the run-to-run scatter (median absolute successive
    deviation of successive differences / sqrt 2, which neither one step nor a steady
    creep moves much)."""
    widths = np.log(ci_high) - np.log(ci_low)
    widths = widths[np.isfinite(widths)]
    within = float(np.median(widths)) / (2 * stats.norm.ppf(0.975)) if widths.size else 0.0
    differences = np.diff(log_times)
    spread = np.abs(differences - np.median(differences)) if differences.size >= 2 else None
    between = float(np.median(spread)) * 1.4826 / math.sqrt(2) if spread is not None else 0.0
    return max(within, between, MIN_SIGMA)


def segment_ratio(before: np.ndarray, after: np.ndarray, sigma: float):
    """(ratio, low, high): geometric means after / before with a Welch 95% interval; a
    segment's scatter is never taken below ``sigma``."""
    difference = float(np.mean(after) - np.mean(before))
    var_before = max(float(np.var(before, ddof=1)) if before.size > 1 else 0.0, sigma**2)
    var_after = max(float(np.var(after, ddof=1)) if after.size > 1 else 0.0, sigma**2)
    a, b = var_before / before.size, var_after / after.size
    se = math.sqrt(a + b)
    dof = (a + b) ** 2 / (a**2 / max(before.size - 1, 1) + b**2 / max(after.size - 1, 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
    return math.exp(difference), math.exp(difference - half), math.exp(difference + half)


def change_points(
    log_times: np.ndarray, sigma: float, min_change: float = DEFAULT_MIN_CHANGE
) -> list[tuple[int, float, float, float]]:
    """[(index of the first run after the step, ratio, low, high)] for one series.

    >>> steps = np.log([1.0, 1.01, 0.99, 1.0, 1.3, 1.31, 1.29, 1.3])
    >>> [(i, round(r, 2)) for i, r, _, _ in change_points(steps, 0.01)]
    [(4, 1.3)]
    """
    import ruptures

    n = log_times.size
    if n < 2 * MIN_SEGMENT:
        return []
    penalty = 2 * sigma**2 * math.log(n)
    found = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(log_times).predict(penalty)
    breaks = [b for b in found if b < n]
    while breaks:
        bounds = [0, *breaks, n]
        sized = []
        for k, index in enumerate(breaks):
            before, after = log_times[bounds[k] : index], log_times[index : bounds[k + 2]]
            sized.append((index, *segment_ratio(before, after, sigma)))
        failing = [s for s in sized if abs(s[1] - 1) < min_change or s[2] <= 1 <= s[3]]
        if not failing:
            return sized
        weakest = min(failing, key=lambda s: abs(math.log(s[1])))
        breaks.remove(weakest[0])
    return []


def _bic(rss: float, parameters: int, n: int, sigma: float) -> float:
    return rss / sigma**2 + parameters * math.log(n)


def steps_or_creep(
    log_times: np.ndarray, sigma: float, min_change: float = DEFAULT_MIN_CHANGE
) -> tuple[list[tuple[int, float, float, float]], int]:
    """(change points, first run of the trend) for one series: the change points, unless
    a straight line explains the series better (BIC, with ``sigma`` known): a steady
    creep, which a search for steps would cut into a staircase. The trend is then fitted
    over the whole series; after steps, over the runs since the last one."""
    found = change_points(log_times, sigma, min_change)
    if not found:
        return [], 0
    n = log_times.size
    bounds = [0, *(f[0] for f in found), n]
    rss_steps = sum(
        float(np.sum((segment - segment.mean()) ** 2))
        for segment in (log_times[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
    )
    x = np.arange(n)
    slope, intercept = np.polyfit(x, log_times, 1)
    rss_line = float(np.sum((log_times - (slope * x + intercept)) ** 2))
    line = trend_of(log_times)
    creeps = line is not None and (line[1] > 0 or line[2] < 0)
    if creeps and _bic(rss_line, 2, n, sigma) < _bic(rss_steps, 2 * len(found) + 1, n, sigma):
        return [], 0
    return found, found[-1][0]


def trend_of(log_times: np.ndarray) -> tuple[float, float, float] | None:
    """(per run, low, high) relative change per run by Theil-Sen; None below four runs."""
    if log_times.size < MIN_TREND_RUNS:
        return None
    slope, _, low, high = stats.theilslopes(log_times, np.arange(log_times.size), CONFIDENCE)
    return math.expm1(slope), math.expm1(low), math.expm1(high)


def _up(step: Step) -> bool:
    return step.ratio > 1


def _by_setting(series: pd.DataFrame) -> tuple[dict[tuple, set[CellKey]], set[CellKey]]:
    """(each setting's cells, the cells with a ratio series) of a history's series."""
    cells_of: dict[tuple, set[CellKey]] = {}
    for cell in dict.fromkeys(series["cell"]):
        cells_of.setdefault(cell.setting, set()).add(cell)
    return cells_of, set(series.loc[series["series"] == RATIO, "cell"])


def confirmed(
    found: dict[tuple[CellKey, int], dict[str, Step]],
    series: pd.DataFrame,
    reference: str | None,
    across: Callable[[str, CellKey, int, Step], tuple[float, float, float] | None] | None = None,
) -> dict[tuple[CellKey, int], dict[str, Step]]:
    """The steps that say who moved, by reading a setting's cells together (a step at
    position p, another within one run of it); the rule, case by case: docs/scaling.md,
    "Who moved".

    Load on the machine moves every loop of a run alike: its ratios stay, its step times
    step. A loop that slowed moves alone: its ratio steps. The reference slowing moves
    every ratio of its setting the other way. So a loop's ratio step is its own, unless
    every loop's ratio (two or more) stepped the same way: then it is the reference's,
    named on its cell; a step in a loop's step time alone stands when its ratio across
    the same runs moved the same way or the whole setting moved with it; a step in the
    reference's step time stands when the whole setting moved with it, or every loop's
    ratio against it. Settings without a ratio (no ladder, no reference cell) keep every
    step. ``across(series, cell, position, step)`` sizes a cell's series over the runs
    of a step found elsewhere: (ratio, low, high), None when it cannot.
    """
    cells_of, ratio_cells = _by_setting(series)

    def near(cell: CellKey, position: int, name: str) -> Step | None:
        for q in (position, position - 1, position + 1):
            step = found.get((cell, q), {}).get(name)
            if step is not None:
                return step
        return None

    def all_moved(cells: set[CellKey], position: int, name: str, up: bool) -> bool:
        steps = [near(c, position, name) for c in cells]
        return bool(cells) and all(s is not None and _up(s) == up for s in steps)

    def moved(series: str, cell: CellKey, position: int, step: Step) -> bool | None:
        """Whether ``series`` of ``cell`` moved over the runs of ``step`` the way it
        went (True), stayed (False: its interval holds no change), or went the other
        way or cannot be told (None)."""
        sized = across(series, cell, position, step) if across is not None else None
        if sized is None:
            return None
        _, low, high = sized
        if (low > 1) if _up(step) else (high < 1):
            return True
        return False if low <= 1 <= high else None

    def stayed(cells: set[CellKey], position: int, step: Step) -> bool:
        return all(moved(STEP_TIME, c, position, step) is False for c in cells)

    out: dict[tuple[CellKey, int], dict[str, Step]] = {}
    for (cell, position), steps in found.items():
        setting = cell.setting
        loops = {c for c in cells_of[setting] if c in ratio_cells}
        references = {c for c in cells_of[setting] if c.loop == reference}
        if not loops or not references:
            out[(cell, position)] = steps
            continue
        main = next(iter(steps.values()))
        if cell.loop == reference:
            together = all_moved(cells_of[setting] - {cell}, position, STEP_TIME, _up(main))
            against = all_moved(loops, position, RATIO, not _up(main)) and (
                len(loops) >= 2 or stayed(loops, position, main)
            )
            if together or against:
                out[(cell, position)] = steps
            continue
        if RATIO in steps:
            if (
                len(loops) == 1
                and STEP_TIME not in steps
                and any(
                    (s := near(r, position, STEP_TIME)) is not None and _up(s) != _up(steps[RATIO])
                    for r in references
                )
                and stayed({cell}, position, steps[RATIO])
            ):
                continue  # the reference moved: its own step time names it
            if len(loops) >= 2 and all_moved(loops, position, RATIO, _up(steps[RATIO])):
                for r in references:  # the reference's change: named on its cell
                    if (r, position) not in out and (r, position) not in found:
                        step = steps[RATIO]
                        inverse = replace(step, ratio=1 / step.ratio, low=1 / step.high)
                        out[(r, position)] = {RATIO: replace(inverse, high=1 / step.low)}
                continue
            out[(cell, position)] = steps
            continue
        if all_moved(cells_of[setting] - {cell}, position, STEP_TIME, _up(main)) or moved(
            RATIO, cell, position, main
        ):
            out[(cell, position)] = steps
    return out


def confirmed_trends(
    trends: list[Trend], series: pd.DataFrame, reference: str | None, min_change: float
) -> list[Trend]:
    """The trends, a step time's marked unconfirmed when it creeps alone, by the rule of
    :func:`confirmed`: a loop's step time creeps with its ratio, or with the whole setting
    (the reference and every other loop, the same way); the reference's with the whole
    setting, or against every loop's ratio (two or more)."""
    by_key = {(t.series, t.cell): t for t in trends}
    cells_of, ratio_cells = _by_setting(series)

    def creeps(name: str, cell: CellKey, up: bool) -> bool:
        trend = by_key.get((name, cell))
        return trend is not None and trend.significant(min_change) and (trend.per_run > 0) == up

    out = []
    for trend in trends:
        setting = cells_of[trend.cell.setting]
        loops = {c for c in setting if c in ratio_cells}
        has_reference = any(c.loop == reference for c in setting)
        if trend.series == RATIO or not loops or not has_reference:
            out.append(trend)
            continue
        up = trend.per_run > 0
        together = all(creeps(STEP_TIME, c, up) for c in setting - {trend.cell})
        if trend.cell.loop == reference:  # against every loop's ratio
            own = len(loops) >= 2 and all(creeps(RATIO, c, not up) for c in loops)
        else:
            own = creeps(RATIO, trend.cell, up)
        out.append(replace(trend, confirmed=own or together, with_setting=together and not own))
    return out


def build_history(
    entries: Sequence[Entry],
    repo: str | os.PathLike[str] | None = ".",
    min_change: float = DEFAULT_MIN_CHANGE,
    other_machines: int = 0,
    unreadable: Sequence[str] = (),
) -> History:
    """Order the entries (one machine's), find each cell's change points and trend in
    its step time and in its ratio to the reference loop."""
    ordered, basis = commit_order(entries, repo)
    reference = reference_loop(*(entry.run for entry in ordered))
    series = series_of(ordered, reference)
    found_steps: dict[tuple[CellKey, int], dict[str, Step]] = {}
    # per (series, cell): its log values, their runs' positions, its noise
    fitted: dict[tuple[str, CellKey], tuple[np.ndarray, np.ndarray, float]] = {}
    for (name, cell), rows in series.groupby(["series", "cell"], sort=False):
        rows = rows.sort_values("position")
        log_values = np.log(rows["value"].to_numpy())
        sigma = noise_sigma(log_values, rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy())
        positions = rows["position"].to_numpy()
        found, _ = steps_or_creep(log_values, sigma, min_change)
        fitted[(name, cell)] = (log_values, positions, sigma)
        bounds = [0, *(f[0] for f in found), len(positions)]
        for k, (index, ratio, low, high) in enumerate(found):
            step = Step(ratio, low, high, index - bounds[k], bounds[k + 2] - index)
            key = (cell, int(positions[index]))
            found_steps.setdefault(key, {})[name] = step
    # a step-time step one run from a ratio step of the same cell, the same way, is that
    # change: placed where the ratio puts it (load on the machine moves the step time's)
    for (cell, after), steps in list(found_steps.items()):
        if set(steps) != {STEP_TIME}:
            continue
        for neighbour in (after - 1, after + 1):
            other = found_steps.get((cell, neighbour))
            if (
                other is not None
                and set(other) == {RATIO}
                and (other[RATIO].ratio > 1) == (steps[STEP_TIME].ratio > 1)
            ):
                found_steps[(cell, neighbour)] = {STEP_TIME: steps[STEP_TIME], RATIO: other[RATIO]}
                del found_steps[(cell, after)]
                break

    def across(name: str, cell: CellKey, position: int, step: Step):
        """A cell's series sized over the runs of a step found elsewhere."""
        if (name, cell) not in fitted:
            return None
        log_values, positions, sigma = fitted[(name, cell)]
        before = log_values[(positions >= position - step.runs_before) & (positions < position)]
        after = log_values[(positions >= position) & (positions < position + step.runs_after)]
        if before.size < MIN_SEGMENT or after.size < MIN_SEGMENT:
            return None
        return segment_ratio(before, after, sigma)

    found_steps = confirmed(found_steps, series, reference, across)
    # each series' trend since the cell's last change point, whichever series found it
    last_change: dict[CellKey, int] = {}
    for cell, after in found_steps:
        last_change[cell] = max(after, last_change.get(cell, 0))
    trends = []
    for (name, cell), (log_values, positions, _) in fitted.items():
        start = int(np.searchsorted(positions, last_change.get(cell, 0)))
        trend = trend_of(log_values[start:])
        if trend is not None:
            trends.append(Trend(cell, name, *trend, runs=log_values.size - start))
    changes = []
    for (cell, after), steps in found_steps.items():
        before_position = int(
            series[(series["cell"] == cell) & (series["position"] < after)]["position"].max()
        )
        changes.append(
            Change(
                cell=cell,
                before=ordered[before_position],
                after=ordered[after],
                steps={name: steps[name] for name in SERIES if name in steps},
            )
        )
    trends = confirmed_trends(trends, series, reference, min_change)
    cell_order = {cell: i for i, cell in enumerate(dict.fromkeys(series["cell"]))}
    changes.sort(key=lambda c: (cell_order[c.cell], ordered.index(c.after)))
    trends.sort(key=lambda t: (cell_order[t.cell], SERIES.index(t.series)))
    return History(
        entries=tuple(ordered),
        order_basis=basis,
        series=series,
        changes=tuple(changes),
        trends=tuple(trends),
        min_change=min_change,
        other_machines=other_machines,
        unreadable=tuple(unreadable),
        reference=reference,
    )


def load_history(
    store: str | os.PathLike[str],
    pattern: str | None = None,
    repo: str | os.PathLike[str] | None = ".",
    min_change: float = DEFAULT_MIN_CHANGE,
) -> History:
    """The history of the most recent run's machine in ``store``.

    Example::

        history = load_history(".loopbench/baselines")
        [(c.cell.name, c.before.commit, c.after.commit, c.found_in) for c in history.changes]
    """
    entries, unreadable = load_store(store, pattern)
    if not entries:
        which = f" matching {pattern!r}" if pattern else ""
        raise HistoryError(f"no readable stored runs{which} in {store}")
    kept, others = one_machine(entries)
    return build_history(kept, repo, min_change, others, unreadable)


# ----------------------------------------------------------------------------- rendering


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _figure(value: float, series: str) -> str:
    """A series' value as shown: ms for the step time, a plain ratio for the other."""
    scale = 1e3 if series == STEP_TIME else 1.0
    return f"{value * scale:.3g}" if math.isfinite(value) else "—"


def _series_name(series: str, reference: str | None, cell: CellKey | None = None) -> str:
    if series != RATIO:
        return series
    if cell is not None and cell.loop == reference:  # a step every loop's ratio took
        return "every loop's ratio to it (inverted)"
    return f"ratio to {reference}"


def _groups(series: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The cells drawn in one plot: one setting's, which differ only in the loop."""
    return [(key, rows) for key, rows in series.groupby(list(SETTING_KEYS), sort=False)]


def _group_name(key: tuple) -> str:
    """A cell's name without its loop, e.g. ``mlp/cpu/bs64/w128``."""
    cell = CellKey.of({**dict(zip(SETTING_KEYS, key, strict=True)), "loop": "-"})
    return cell.name.replace("/-/", "/", 1)


def _loop_label(cell: CellKey) -> str:
    """The loop, and fit's compiler where it was set: ``fit jit=off``."""
    return f"{cell.loop} jit={cell.fit_jit}" if cell.fit_jit in ("off", "on") else cell.loop


def write_plots(history: History, out_dir: Path) -> list:
    """One PNG per group of cells (all keys alike but the loop's): a line per loop,
    median step time with 95% whiskers per run (and below it, each loop's ratio to the
    reference loop), change points dashed with their size in the panel that found them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker
    from tf_loopbench.reports.report.plots import Plot

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [entry.label for entry in history.entries]
    positions = {entry.name: i for i, entry in enumerate(history.entries)}
    plots = []
    for key, rows in _groups(history.series):
        panels = [name for name in SERIES if (rows["series"] == name).any()]
        figure, axes_list = plt.subplots(
            len(panels),
            1,
            sharex=True,
            squeeze=False,
            figsize=(max(6.0, 0.7 * len(labels) + 2), 3.4 * len(panels) + 0.8),
        )
        colors = {}
        for name, axes in zip(panels, axes_list[:, 0], strict=True):
            for cell, points in rows[rows["series"] == name].groupby("cell", sort=False):
                points = points.sort_values("position")
                loop = _loop_label(cell)
                x = points["position"].to_numpy()
                scale = 1e3 if name == STEP_TIME else 1.0
                y = points["value"].to_numpy() * scale
                low = np.where(np.isfinite(points["ci_low"]), points["ci_low"] * scale, y)
                high = np.where(np.isfinite(points["ci_high"]), points["ci_high"] * scale, y)
                style = {"marker": "o", "ms": 4, "capsize": 3, "lw": 1.2, "color": colors.get(cell)}
                line = axes.errorbar(x, y, yerr=[y - low, high - y], label=loop, **style)
                colors[cell] = line[0].get_color()
                for change in (c for c in history.changes if c.cell == cell):
                    if name not in change.steps:
                        continue
                    boundary = positions[change.after.name] - 0.5
                    axes.axvline(boundary, color=colors[cell], ls="--", lw=1)
                    axes.annotate(
                        f"{loop} {_percent(change.steps[name].ratio)}",
                        (boundary, float(np.nanmax(y))),
                        textcoords="offset points",
                        xytext=(4, 4),
                        color=colors[cell],
                        fontsize=8,
                    )
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axes.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
            axes.set_ylabel(
                "median step time (ms), 95% interval"
                if name == STEP_TIME
                else f"least disturbed step / {history.reference}'s, same run"
            )
            axes.grid(True, which="both", alpha=0.3)
            axes.legend(fontsize=8)
        last = axes_list[-1, 0]
        last.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        axes_list[0, 0].set_title(f"{_group_name(key)}: step time by commit")
        figure.tight_layout()
        path = out_dir / ("history-" + _group_name(key).replace("/", "-") + ".png")
        figure.savefig(path, dpi=100)
        plt.close(figure)
        plots.append(Plot(title=f"{_group_name(key)} step time by commit", path=path, caption=""))
    return plots


def _runs_table(history: History) -> pd.DataFrame:
    rows = []
    for position, entry in enumerate(history.entries):
        soft = entry.run.metadata.get("soft", {})
        rows.append(
            {
                "#": str(position + 1),
                "baseline": entry.name,
                "commit": (entry.commit or "—")[:10] + (" (dirty)" if entry.dirty else ""),
                "started": entry.started_at,
                "tensorflow": str(soft.get("tensorflow", "")),
                "cells": str(int((entry.run.summary["status"] == "ok").sum())),
            }
        )
    return pd.DataFrame(rows)


def _changes_table(history: History) -> pd.DataFrame:
    def size(change: Change, series: str) -> str:
        step = change.steps.get(series)
        return (
            f"{_percent(step.ratio)} ({_percent(step.low)} to {_percent(step.high)})"
            if step
            else "—"
        )

    ratio_column = f"ratio to {history.reference} (95% CI)"
    rows = [
        {
            "cell": change.cell.name,
            "before": f"{(change.before.commit or '—')[:10]} ({change.before.name})",
            "after": f"{(change.after.commit or '—')[:10]} ({change.after.name})",
            "found in": " and ".join(
                _series_name(s, history.reference, change.cell) for s in change.found_in
            ),
            "step time (95% CI)": size(change, STEP_TIME),
            ratio_column: size(change, RATIO),
            "runs before/after": f"{change.main.runs_before}/{change.main.runs_after}",
        }
        for change in history.changes
    ]
    frame = pd.DataFrame(rows)
    return frame if history.reference else frame.drop(columns=[ratio_column], errors="ignore")


def _trends_table(history: History) -> pd.DataFrame:
    latest = {
        (row["series"], row["cell"]): row
        for row in history.series.sort_values("position").to_dict("records")
    }
    rows = []
    for trend in history.trends:
        last = latest[(trend.series, trend.cell)]
        figures = [_figure(last[c], trend.series) for c in ("value", "ci_low", "ci_high")]
        interval = f" [{figures[1]}-{figures[2]}]" if figures[1] != "—" else ""
        rows.append(
            {
                "cell": trend.cell.name,
                "series": _series_name(trend.series, history.reference)
                + (" (ms)" if trend.series == STEP_TIME else ""),
                "latest": figures[0] + interval,
                "trend per run": f"{trend.per_run * 100:+.2f}% "
                f"(95% CI {trend.low * 100:+.2f}% to {trend.high * 100:+.2f}%)",
                "over runs": f"{trend.total * 100:+.1f}% over {trend.runs}",
                "creeping": "yes, with its whole setting (the machine, or a change all share)"
                if trend.flagged(history.min_change) and trend.with_setting
                else "yes"
                if trend.flagged(history.min_change)
                else "not in its ratio nor its setting (load?)"
                if trend.significant(history.min_change)
                else "",
            }
        )
    return pd.DataFrame(rows)


def document(history: History, plots: Sequence) -> list:
    """The report's blocks (reports.report.render's document model)."""
    from tf_loopbench.reports.report.render import Bullets, Heading, Image, Paragraph, Table

    entries = history.entries
    first, last = entries[0], entries[-1]
    hard = first.run.metadata.get("hard", {})
    machine = f"{hard.get('cpu_model', '?')} ({hard.get('visible_cores', '?')} cores)"
    gpus = ", ".join(str(g) for g in hard.get("gpus") or [])
    blocks = [
        Heading(1, "tf-loopbench history"),
        Paragraph(
            f"{len(entries)} stored runs of one machine, {machine}{', ' + gpus if gpus else ''}, "
            f"from {first.label} to {last.label}; in commit order {history.order_basis}."
        ),
    ]
    notes = []
    if history.other_machines:
        notes.append(
            f"{history.other_machines} stored runs of other machines (other hard metadata keys) "
            "are left out: their times do not compare with these."
        )
    if history.unreadable:
        notes.append(f"unreadable, left out: {', '.join(history.unreadable)}")
    if notes:
        blocks.append(Bullets(tuple(notes)))
    blocks.append(Heading(2, "Change points"))
    if history.changes:
        blocks.append(
            Paragraph(
                "A step in a cell's median step time, or in its ratio to "
                f"{history.reference or 'the reference loop'} (least disturbed window over "
                "least disturbed window in the same run, which load on the machine moves far "
                "less), between two consecutive "
                "commits: the geometric mean of the runs after it over the runs before it "
                "(up to the neighbouring change points), with its 95% interval; a series "
                "that found no step there shows —."
            )
        )
        blocks.append(Table(_changes_table(history)))
    else:
        blocks.append(
            Paragraph(
                f"None: no cell's step time, nor its ratio to "
                f"{history.reference or 'the reference loop'}, moved by "
                f"{history.min_change:.0%} or more, with 95% confidence, between two groups "
                "of at least two consecutive runs."
            )
        )
    blocks.append(Heading(2, "Trends"))
    if history.trends:
        blocks.append(
            Paragraph(
                "Theil-Sen slope of the log step time (and of the log ratio) per run, over the "
                "runs since the cell's last change point in that series (all runs without "
                f"one); *creeping*: over {MIN_CREEP_RUNS} runs or more, its interval excludes "
                f"no trend and it adds up to {history.min_change:.0%} or more, and, in a step "
                "time, the ratio to "
                f"{history.reference or 'the reference'} or the whole setting moves with it "
                "(a step time that moves alone is load on the machine)."
            )
        )
        blocks.append(Table(_trends_table(history)))
    else:
        blocks.append(Paragraph(f"Too few runs for a trend (at least {MIN_TREND_RUNS})."))
    blocks.append(Heading(2, "Step time by commit"))
    blocks.extend(Image(plot) for plot in plots)
    blocks.append(Heading(2, "Runs"))
    blocks.append(Table(_runs_table(history)))
    return blocks


def write_history(history: History, out: str | os.PathLike[str]) -> Path:
    """Write history.md, history.html and plots/ into ``out``; return ``out``."""
    from tf_loopbench.reports.report.render import render_html, render_markdown

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(history, out_dir / PLOTS_DIR)
    blocks = document(history, plots)
    atomic_write_text(out_dir / HISTORY_MD, render_markdown(blocks, out_dir))
    atomic_write_text(out_dir / HISTORY_HTML, render_html(blocks))
    return out_dir


def command(
    store: str | None = None,
    pattern: str | None = None,
    out: str | None = None,
    repo: str | None = ".",
    min_change: float | None = None,
) -> int:
    """``loopbench history``: 0 written; 2 (one line on stderr) when there is nothing to show."""
    from tf_loopbench.reports.gate.baseline import store_path

    root = store_path(store)
    try:
        history = load_history(root, pattern, repo, min_change or DEFAULT_MIN_CHANGE)
        out_dir = write_history(history, out or DEFAULT_OUT)
    except HistoryError as exc:
        print(f"loopbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"loopbench: error: cannot write the history: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for change in history.changes:
        print(
            f"change point: {change.cell.name} between {(change.before.commit or '?')[:10]} and "
            f"{(change.after.commit or '?')[:10]}: {change.describe(history.reference)}"
        )
    print(f"history of {len(history.entries)} runs: {out_dir / HISTORY_MD}")
    return 0
