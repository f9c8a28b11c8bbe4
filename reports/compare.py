"""The one comparison core: every "A against B" of the report, the gate, history and
summary.csv is paired and measured here (docs/adding-an-axis.md shows it in use).

:func:`compare` pairs every subject cell once with its reference cell (a :class:`Rule`)
in the same setting along the key that varies, and returns one row per pair: the ratio
(a speedup: above 1, the subject is faster), its bootstrap interval (95% nominal; its
real coverage by processes a side in RATIO_COVERAGE) and a verdict. The key schema, the
seed, the verdicts and the intervals' coverage live here only.

Example::

    from tf_loopbench.reports.compare import compare, ladder_reference
    rows = compare(run_set.cells, "loop", ladder_reference(run_set.ladder),
                   samples=run_set.processes, figure="steady")
    rows[["workload", "loop", "against_loop", "ratio", "ci_low", "ci_high", "verdict"]]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Identify a cell (one row of summary.csv). ``width``: mlp/gan's hidden width (0 where a
#: workload has none); ``steps_per_call``, ``precision`` and ``fit_jit`` (fit's
#: jit_compile as it ran: "auto:off", "auto:on", "off", "on"; "none" for other loops):
#: loops/knobs.py; ``strategy``: loops/distribute.py ("none", "mirrored:N", "multiworker:W").
CELL_KEYS = (
    "workload",
    "loop",
    "device",
    "batch_size",
    "width",
    "steps_per_call",
    "precision",
    "fit_jit",
    "strategy",
)
#: The keys of a loop (fit's compiler tells apart its cells in one setting) and of a
#: setting, within which loops are compared: the other cell keys.
LOOP_KEYS = ("loop", "fit_jit")
SETTING_KEYS = tuple(key for key in CELL_KEYS if key not in LOOP_KEYS)
#: What a run made before a key compares as (``reports.rundir.fill_cell_keys`` fills them,
#: fit_jit last, from ``keras_jit_compile``).
CELL_KEY_DEFAULTS: dict[str, Any] = {
    "width": 0,
    "steps_per_call": 1,
    "precision": "float32",
    "strategy": "none",
    "fit_jit": "none",
}
#: The column naming the run a row of several runs came from (its label).
RUN_KEY = "run"
#: The report's cell across runs: the run, the setting and the loop, whose label holds
#: fit's compiler where a setting has several (``reports.report.aggregate``).
GROUP_KEYS = (RUN_KEY, *SETTING_KEYS, "loop")
#: A setting across runs: the report's cell but its loop.
RUN_SETTING_KEYS = GROUP_KEYS[:-1]
#: The keys that vary with a key: comparing loops compares fit's compiler settings too.
VARIES_WITH: Mapping[str, tuple[str, ...]] = {"loop": LOOP_KEYS}
#: Where a reference value has several cells in a setting (fit with and without XLA), the
#: one whose key starts so (as Keras chose); without one, the first in the cells' order.
PREFERRED_VARIANT: Mapping[str, str] = {"fit_jit": "auto"}


@dataclass(frozen=True)
class EpochSpans:
    """Where the per-process samples hold an amortized figure's parts: the steady step,
    the list of epoch-end spans (``reports.rundir.epoch_end_spans``) and the steps an
    epoch. With them the core resamples the spans with the steady steps."""

    steady_column: str = "step_time_s"
    spans_column: str = "epoch_end_spans_s"
    steps_column: str = "steps_per_epoch"


@dataclass(frozen=True)
class Figure:
    """A figure to compare: its per-cell (summary.csv) and per-process (samples) column;
    ``epochs``: its per-epoch parts, when samples that hold them are given."""

    name: str
    cell_column: str
    sample_column: str
    epochs: EpochSpans | None = None


#: "amortized": the steady step plus per-epoch costs spread over an epoch's steps (what a
#: user pays over whole epochs); "steady": the timed step alone.
FIGURES: Mapping[str, Figure] = {
    "amortized": Figure(
        "amortized", "amortized_step_time_s", "amortized_step_time_s", epochs=EpochSpans()
    ),
    "steady": Figure("steady", "step_time_median_s", "step_time_s"),
}


CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999
#: The one seed: the same samples give the same interval in the report, the gate, everywhere.
BOOTSTRAP_SEED = 20240605


def median_ratio(baseline: np.ndarray, current: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median of ``current`` over median of ``baseline``: a speedup is ``(subject, reference)``."""
    return np.median(current, axis=axis) / np.median(baseline, axis=axis)


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile-bootstrap interval (CONFIDENCE_LEVEL nominal, its real
    coverage in :data:`RATIO_COVERAGE`) of ``statistic(*samples, axis=-1)``, each sample
    resampled on its own along its last axis. Leading axes are separate data sets (a
    coverage simulation passes thousands at once). Percentile, not BCa: BCa's jackknife
    is inconsistent for the median."""
    # scipy only here: readers of a run (reports.rundir) need none until they bootstrap
    from scipy import stats

    with warnings.catch_warnings():
        # identical samples make a degenerate (zero-width) interval: that is an answer
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            tuple(samples),
            statistic,
            n_resamples=BOOTSTRAP_RESAMPLES,
            vectorized=True,
            paired=False,
            axis=-1,
            confidence_level=CONFIDENCE_LEVEL,
            method="percentile",
            # resamples a batch: about 2 million values in memory at once
            batch=max(1, 2_000_000 // sum(np.size(sample) for sample in samples)),
            rng=np.random.default_rng(seed),
        )
    return result.confidence_interval.low, result.confidence_interval.high


def ratio_of_medians_ci(
    baseline: np.ndarray, current: np.ndarray, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile-bootstrap interval of :func:`median_ratio` (current/baseline), the two
    samples resampled independently; (nan, nan) with fewer than two samples on a side.
    Samples with leading axes (data sets, as a coverage simulation passes) give arrays."""
    baseline = np.asarray(baseline, dtype=float)
    current = np.asarray(current, dtype=float)
    if baseline.shape[-1] < 2 or current.shape[-1] < 2:
        return (float("nan"), float("nan"))
    if baseline.ndim == 1 and np.ptp(baseline) == 0 and np.ptp(current) == 0:
        point = float(median_ratio(baseline, current))
        return (point, point)  # every resample gives the point
    low, high = bootstrap_interval(
        (current, baseline),
        lambda current, baseline, axis=-1: median_ratio(baseline, current, axis=axis),
        seed,
    )
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


@dataclass(frozen=True)
class Amortized:
    """One cell's samples of the amortized step: each process's steady step, every timed
    epoch-end span (s, pooled over the processes) and the steps an epoch; no spans for a
    loop without epochs. Its figure is median(steady) + max(0, median(spans)) / steps."""

    steady: np.ndarray
    spans: np.ndarray
    steps_per_epoch: float = math.nan

    @property
    def epochs(self) -> bool:
        return self.spans.size > 0 and bool(self.steps_per_epoch > 0)

    def value(self, steady: np.ndarray, spans: np.ndarray | None, axis: int = -1) -> np.ndarray:
        """The figure of (resampled) ``steady`` and ``spans`` along ``axis``."""
        step = np.median(steady, axis=axis)
        if spans is None or not self.epochs:
            return step
        return step + np.maximum(np.median(spans, axis=axis), 0.0) / self.steps_per_epoch

    @property
    def point(self) -> float:
        return float(self.value(self.steady, self.spans))

    def resampled(self) -> list[np.ndarray]:
        """The samples a bootstrap resamples: the steady steps, and the spans when there
        are two or more (a single span is taken as measured)."""
        several = self.epochs and self.spans.shape[-1] >= 2
        return [self.steady, self.spans] if several else [self.steady]

    def statistic(self, resampled: Sequence[np.ndarray], axis: int = -1) -> np.ndarray:
        spans = resampled[1] if len(resampled) > 1 else self.spans
        return self.value(resampled[0], spans, axis=axis)


def amortized_interval(cell: Amortized) -> tuple[float, float]:
    """Percentile-bootstrap interval of one cell's amortized step, its steady steps and its
    epoch-end spans resampled together; (nan, nan) with fewer than two processes. Samples
    with leading axes (data sets, as a coverage simulation passes) give arrays."""
    if cell.steady.shape[-1] < 2:
        return (math.nan, math.nan)
    samples = cell.resampled()
    if cell.steady.ndim == 1 and all(np.ptp(s) == 0 for s in samples):
        return (cell.point, cell.point)
    low, high = bootstrap_interval(samples, lambda *s, axis=-1: cell.statistic(s, axis))
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def amortized_ratio_ci(subject: Amortized, reference: Amortized) -> tuple[float, float]:
    """Percentile-bootstrap interval of reference / subject amortized steps (a speedup),
    every side's steady steps and epoch-end spans resampled on their own; (nan, nan)
    with fewer than two processes on a side. Leading axes: data sets, as above."""
    if subject.steady.shape[-1] < 2 or reference.steady.shape[-1] < 2:
        return (math.nan, math.nan)
    mine, theirs = subject.resampled(), reference.resampled()
    if subject.steady.ndim == 1 and all(np.ptp(s) == 0 for s in (*mine, *theirs)):
        point = reference.point / subject.point
        return (point, point)

    def ratio(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        cut = len(theirs)
        return reference.statistic(samples[:cut], axis) / subject.statistic(samples[cut:], axis)

    # the reference first, as ratio_of_medians_ci: without epochs the two give one interval
    low, high = bootstrap_interval((*theirs, *mine), ratio)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def ratio_with_interval(
    subject: Sequence[float], reference: Sequence[float]
) -> tuple[float, float, float]:
    """(ratio, ci_low, ci_high) of the subject's per-process samples against the
    reference's: the reference's median over the subject's, with its seeded interval.

    >>> ratio_with_interval([2.0, 2.0, 2.0], [4.0, 4.0, 4.0])   # twice as fast
    (2.0, 2.0, 2.0)
    """
    low, high = ratio_of_medians_ci(subject, reference)
    return float(median_ratio(subject, reference)), low, high


#: The real coverage of the core's bootstrap intervals (95% nominal), by processes a side
#: (the smaller side): simulated by tools/coverage.py on lognormal, bimodal and
#: heavy-tailed cells, the lowest of them rounded down to a percent (docs/decisions/0010;
#: tests/test_coverage.py checks the figure at 5). Speedups, ratio of medians:
RATIO_COVERAGE: Mapping[int, float] = {2: 0.61, 3: 0.85, 4: 0.89, 5: 0.94, 8: 0.94, 12: 0.95}
#: the amortized step of one cell, one epoch-end span a process (summary.csv's interval):
AMORTIZED_COVERAGE: Mapping[int, float] = {2: 0.57, 3: 0.81, 4: 0.87, 5: 0.93, 6: 0.92, 12: 0.93}


def simulated_coverage(table: Mapping[int, float], n: int) -> float:
    """``table``'s coverage at ``n`` processes: its entry for the most processes up to
    ``n`` (more processes cover no worse); NaN below two.

    >>> simulated_coverage(RATIO_COVERAGE, 7) == RATIO_COVERAGE[5]
    True
    """
    known = [k for k in table if k <= n]
    return table[max(known)] if known and n >= 2 else math.nan


def coverage_label(coverage: float) -> str:
    """How an interval of that real coverage is named: "95% CI" only where it reaches 95%.

    >>> coverage_label(0.9375), coverage_label(0.961), coverage_label(float("nan"))
    ('94% interval', '95% CI', 'interval')
    """
    if not np.isfinite(coverage):
        return "interval"
    return "95% CI" if coverage >= CONFIDENCE_LEVEL else f"{coverage:.0%} interval"


def ratio_label(n: int, n_against: int) -> str:
    """The name of a speedup's interval from ``n`` and ``n_against`` processes.

    >>> ratio_label(5, 5)
    '94% interval'
    """
    return coverage_label(simulated_coverage(RATIO_COVERAGE, min(n, n_against)))


def break_even_step(
    compile_s: float, step_time_s: float, reference_compile_s: float, reference_step_time_s: float
) -> tuple[float, str]:
    """First n >= 1 with compile_s + n*step < reference_compile_s + n*reference_step, and
    the outcome: "after" (n > 1), "immediately" (n == 1), "never" (NaN: not faster per
    step) or "unknown" (a figure is missing).

    >>> break_even_step(0.5, 0.001, 0.0, 0.003)
    (251.0, 'after')
    """
    figures = (compile_s, step_time_s, reference_compile_s, reference_step_time_s)
    if not all(np.isfinite(figures)):
        return math.nan, "unknown"
    extra_compile_s = compile_s - reference_compile_s
    saving_per_step_s = reference_step_time_s - step_time_s
    if saving_per_step_s <= 0:
        if saving_per_step_s == 0 and extra_compile_s < 0:
            return 1.0, "immediately"
        return math.nan, "never"
    # the tolerance keeps float division (0.5 / 0.002 = 250.00000000000003) from moving
    # an exact tie by one step
    tie = extra_compile_s / saving_per_step_s
    steps = max(1.0, float(math.floor(tie * (1 + 1e-12) + 1e-12)) + 1.0)
    return steps, "immediately" if steps == 1 else "after"


@dataclass(frozen=True)
class Payback:
    """Whether a subject's compile pays back against its reference's within a number of
    steps (an epoch's): :func:`break_even_step` on the two cells' compile and step times.
    ``within`` is None when a figure is missing."""

    extra_compile_s: float
    saving_per_step_s: float
    break_even_steps: float
    outcome: str
    within_steps: float

    @property
    def within(self) -> bool | None:
        if self.outcome == "unknown" or not np.isfinite(self.within_steps):
            return None
        return self.outcome != "never" and bool(self.break_even_steps <= self.within_steps)


def payback(
    compile_s: float,
    step_time_s: float,
    reference_compile_s: float,
    reference_step_time_s: float,
    within_steps: float,
) -> Payback:
    """Does the subject's compile (``compile_s``, on top of ``reference_compile_s``) pay back
    through its faster step within ``within_steps`` steps (one epoch's, say)?

    >>> payback(2.5, 0.001, 0.5, 0.003, within_steps=1000).within   # back after 1,001 steps
    False
    """
    steps, outcome = break_even_step(
        compile_s, step_time_s, reference_compile_s, reference_step_time_s
    )
    return Payback(
        extra_compile_s=float(compile_s - reference_compile_s),
        saving_per_step_s=float(reference_step_time_s - step_time_s),
        break_even_steps=steps,
        outcome=outcome,
        within_steps=float(within_steps),
    )


#: The band of no practical difference, 1 +- this: the gate's threshold and the report's.
DEFAULT_THRESHOLD = 0.05

FASTER, SLOWER, SAME, UNCLEAR, MISSING = "faster", "slower", "same", "unclear", "missing"
#: What a subject is against its reference (the gate's old "unchanged" is SAME,
#: "inconclusive" UNCLEAR; the report's old "none" is MISSING).
VERDICTS = (FASTER, SLOWER, SAME, UNCLEAR, MISSING)


def verdict(low: float, high: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """What a speedup's interval [low, high] says against the band 1 +- ``threshold``:
    "faster" (wholly above it), "slower" (wholly below it), "same" (wholly inside it,
    edges included), "unclear" (it reaches across an edge), "missing" (no interval).

    >>> [verdict(*ci, 0.05) for ci in ((1.1, 1.3), (0.5, 0.9), (0.97, 1.02), (0.9, 1.2))]
    ['faster', 'slower', 'same', 'unclear']
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return MISSING
    if low > 1 + threshold:
        return FASTER
    if high < 1 - threshold:
        return SLOWER
    if low >= 1 - threshold and high <= 1 + threshold:
        return SAME
    return UNCLEAR


@dataclass(frozen=True)
class Rule:
    """A reference rule: given the values of the varying key in one setting (a tuple per
    cell when several keys vary), the (subject value, reference value) pairs to compare,
    in output order; a pair of equal values compares a value's other cells with its own."""

    name: str
    choose: Callable[[list[Any]], list[tuple[Any, Any]]]

    def pairs(self, values: Iterable[Any]) -> list[tuple[Any, Any]]:
        return self.choose(list(values))


def against(value: Any, *, itself: bool = False, name: str | None = None) -> Rule:
    """Every other value against ``value`` (a knob's base, the reference loop, the first
    run, the gate's baseline); ``itself``: the reference value's own cells too.

    >>> against(1).pairs([1, 4, 8])
    [(4, 1), (8, 1)]
    """

    def choose(values: list[Any]) -> list[tuple[Any, Any]]:
        if value not in values:
            return []
        return [(other, value) for other in values if itself or other != value]

    return Rule(name or f"against {value!r}", choose)


def against_each(pairs: Iterable[tuple[Any, Any]], *, name: str = "pairs") -> Rule:
    """The (subject value, reference value) ``pairs`` whose two values a setting holds."""
    listed = list(dict.fromkeys(pairs))  # each pair once

    def choose(values: list[Any]) -> list[tuple[Any, Any]]:
        present = set(values)
        return [(s, r) for s, r in listed if s in present and r in present]

    return Rule(name, choose)


def against_previous(order: Sequence[Any], *, name: str = "previous") -> Rule:
    """Each value of ``order`` against the one before it (releases in version order)."""
    return against_each(zip(order[1:], order[:-1], strict=False), name=name)


def ladder_reference(ladder: Any) -> Rule:
    """Every other loop of a ``reports.rundir.Ladder`` against its reference loop, in
    ladder order (x fit); no pair without a ladder."""
    loops = ladder.loops if ladder is not None else ()
    pairs = [(loop, ladder.reference) for loop in loops if loop != ladder.reference]
    return against_each(pairs, name="against the reference")


def ladder_neighbours(ladder: Any) -> Rule:
    """Each rung against the rung it compares with (the two differ in one thing)."""
    pairs = ladder.neighbours() if ladder is not None else []
    return against_each(pairs, name="against the neighbour")


def knob_base(key: str) -> Rule:
    """Every value of a knob against what a run without the key compares as
    (:data:`CELL_KEY_DEFAULTS`: one step a call, float32, no strategy)."""
    return against(CELL_KEY_DEFAULTS[key], name=f"against {key} {CELL_KEY_DEFAULTS[key]}")


#: The columns of :func:`pair` beside the keys: both sides' row labels in ``cells``.
PAIR_COLUMNS = ("subject_row", "reference_row")


def _keys(
    cells: pd.DataFrame, vary: str | Sequence[str], keys: Sequence[str] | None
) -> tuple[tuple[str, ...], list[str]]:
    """(vary as a tuple, the key columns present: ``keys`` (see :func:`pair`), then vary)."""
    vary = (vary,) if isinstance(vary, str) else tuple(vary)
    if keys is None:
        keys = GROUP_KEYS if RUN_KEY in cells.columns else CELL_KEYS
    return vary, list(dict.fromkeys([*(k for k in keys if k in cells.columns), *vary]))


def _preferred(group: pd.DataFrame, labels: list[Any], variants: list[str]) -> Any:
    """Of a reference value's cells, the one PREFERRED_VARIANT names, else the first."""
    prefixes = {key: PREFERRED_VARIANT[key] for key in variants if key in PREFERRED_VARIANT}
    for label in labels:
        if any(str(group.at[label, key]).startswith(p) for key, p in prefixes.items()):
            return label
    return labels[0]


def pair(
    cells: pd.DataFrame,
    vary: str | Sequence[str],
    reference: Rule,
    *,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Pair every subject cell once with its reference cell in the same setting (``keys``,
    default GROUP_KEYS with a ``run`` column, else CELL_KEYS, equal but for ``vary`` and
    VARIES_WITH's): one row per pair, the keys, the reference's as ``against_<key>``,
    PAIR_COLUMNS.

    Example (the gate; across two runs fit's compiler is a key of its own)::

        pair(cells, "run", against(baseline_label), keys=(RUN_KEY, *CELL_KEYS))
    """
    vary, keys = _keys(cells, vary, keys)
    missing = [key for key in vary if key not in cells.columns]
    if missing:
        raise ValueError(f"the cells have no column {missing[0]!r} to vary")
    with_vary = {k for key in vary for k in VARIES_WITH.get(key, (key,))} | set(vary)
    varying = [key for key in keys if key in with_vary]
    setting = [key for key in keys if key not in with_vary]
    variants = [key for key in varying if key not in vary]
    found = []
    groups = cells.groupby(setting, sort=True, dropna=False) if setting else [((), cells)]
    by = list(vary) if len(vary) > 1 else vary[0]
    for _, group in groups:
        members = {v: list(rows.index) for v, rows in group.groupby(by, sort=False, dropna=False)}
        for subject_value, reference_value in reference.pairs(members):
            if subject_value in members and reference_value in members:
                reference_row = _preferred(group, members[reference_value], variants)
                found += [(subject_row, reference_row) for subject_row in members[subject_value]]
    rows = pd.DataFrame(found, columns=list(PAIR_COLUMNS)).drop_duplicates(ignore_index=True)
    subject = cells.loc[rows["subject_row"], [*setting, *varying]].reset_index(drop=True)
    against_cell = cells.loc[rows["reference_row"], varying].reset_index(drop=True)
    return pd.concat([subject, against_cell.add_prefix("against_"), rows], axis=1)


#: Bases of a row's interval: "processes", a bootstrap over both cells' per-process
#: samples; "summary", the cells' own figures, no interval (the gate may name others).
PROCESSES, SUMMARY = "processes", "summary"
#: The measure columns of :func:`compare`, after the keys.
COMPARISON_COLUMNS = (
    "figure",
    "value",
    "against_value",
    "ratio",
    "ci_low",
    "ci_high",
    "basis",
    "n",
    "n_against",
    "verdict",
)


def _sample_arrays(
    samples: pd.DataFrame | None, figure: Figure, keys: Sequence[str]
) -> dict[tuple, Any]:
    """Per cell key, its samples of ``figure``: an array of per-process values, or, for a
    figure with per-epoch parts whose columns the samples hold, :class:`Amortized`."""
    if samples is None or samples.empty:
        return {}
    epochs = figure.epochs
    if epochs is not None and {epochs.steady_column, epochs.spans_column} <= set(samples.columns):
        column = epochs.steady_column
    elif figure.sample_column in samples.columns:
        column, epochs = figure.sample_column, None
    else:
        return {}
    absent = [key for key in keys if key not in samples.columns]
    if absent:
        raise ValueError(f"the samples have no key column {absent[0]!r}")
    rows = samples.assign(_value=pd.to_numeric(samples[column], errors="coerce"))
    rows = rows[rows["_value"].notna()]
    found: dict[tuple, Any] = {}
    for key, group in rows.groupby(list(keys), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        steady = group["_value"].to_numpy(float)
        if epochs is None:
            found[key] = steady
            continue
        spans = [float(v) for row in group[epochs.spans_column] if _is_list(row) for v in row]
        steps = pd.to_numeric(group.get(epochs.steps_column), errors="coerce").max()
        found[key] = Amortized(steady, np.array(spans), float(steps) if spans else math.nan)
    return found


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def compare(
    cells: pd.DataFrame,
    vary: str | Sequence[str],
    reference: Rule,
    *,
    samples: pd.DataFrame | None = None,
    figure: str | Figure = "amortized",
    threshold: float = DEFAULT_THRESHOLD,
    keys: Sequence[str] | None = None,
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Compare every subject cell with its reference cell along ``vary`` (:func:`pair`): one
    row per pair, indexed by the subject's label: :func:`pair`'s keys, the ``carry`` columns
    of both sides, COMPARISON_COLUMNS (``value``: a side's median sample, or its cell's
    figure on the "summary" basis, with no interval; ``ratio`` = ``against_value / value``).

    Example::

        compare(cells, "steps_per_call", knob_base("steps_per_call"), samples=processes)
    """
    figure = FIGURES[figure] if isinstance(figure, str) else figure
    vary, keys = _keys(cells, vary, keys)
    if not cells.index.is_unique:
        raise ValueError("the cells' index labels must be unique: rows are found by them")
    pairs = pair(cells, vary, reference, keys=keys)
    key_columns = [c for c in pairs.columns if c not in PAIR_COLUMNS]
    carried = [f"{side}{column}" for column in carry for side in ("", "against_")]
    columns = [*key_columns, *carried, *COMPARISON_COLUMNS]
    sample_arrays = _sample_arrays(samples, figure, keys)
    empty = np.empty(0)
    sides = [cells.loc[pairs[column]].reset_index(drop=True) for column in PAIR_COLUMNS]
    samples_of = [
        [sample_arrays.get(key, empty) for key in side[keys].itertuples(index=False, name=None)]
        for side in sides
    ]
    figures = [pd.to_numeric(side[figure.cell_column], errors="coerce") for side in sides]
    measured = []
    for mine, theirs, value, against_value in zip(*samples_of, *figures, strict=True):
        if isinstance(mine, Amortized) and isinstance(theirs, Amortized):
            value, against_value, basis = mine.point, theirs.point, PROCESSES
            ratio, (low, high) = against_value / value, amortized_ratio_ci(mine, theirs)
            mine, theirs = mine.steady, theirs.steady  # (their sizes: processes)
        elif mine.size and theirs.size:
            ratio, low, high = ratio_with_interval(mine, theirs)
            value, against_value, basis = np.median(mine), np.median(theirs), PROCESSES
        else:
            ratio = against_value / value if value else math.nan
            low, high, basis = math.nan, math.nan, SUMMARY
        row = (float(value), float(against_value), ratio, low, high, basis, mine.size, theirs.size)
        measured.append((figure.name, *row, verdict(low, high, threshold)))
    for column in carry:
        pairs[column], pairs[f"against_{column}"] = (side[column] for side in sides)
    rows = pd.concat([pairs, pd.DataFrame(measured, columns=COMPARISON_COLUMNS)], axis=1)
    return rows[columns].set_axis(pd.Index(pairs["subject_row"], name="cell"))
