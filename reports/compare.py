"""The one comparison core: every "A against B" of the report, the gate, history and
summary.csv is paired and measured here.

A comparison takes *cells* (one row per cell: key columns and a per-cell figure, such as
summary.csv's median step time), optionally the per-process *samples* of those cells
(one row per worker process: key columns and the per-process figure), the *key that
varies* (``"loop"``, ``"run"``, ``"steps_per_call"``...) and the *reference rule* that
names, in each setting, the value every other value is compared against. It pairs every
subject cell with its reference cell in the same setting (all other keys equal) once,
and returns one comparison row per pair: what, against what, the ratio, its 95%
interval, the basis of that interval and a verdict.

The pieces, each defined once:

* the key schema: :data:`CELL_KEYS` make a cell, :data:`LOOP_KEYS` a loop (the loop and
  fit's compiler), :data:`SETTING_KEYS` a setting (the other cell keys; loops are
  compared within one), :data:`GROUP_KEYS` the report's cell across runs (``run``, the
  setting, the loop label, in which ``reports.report.aggregate`` folds fit's compiler),
  and :data:`CELL_KEY_DEFAULTS`, the value of a key a run made before it compares as;
* the reference rules (:class:`Rule`, built by :func:`against`, :func:`against_each`,
  :func:`against_previous`, :func:`ladder_reference`, :func:`ladder_neighbours`,
  :func:`knob_base`) and, where a reference value has several cells (fit with and
  without XLA), the one that ran as Keras chose (:data:`PREFERRED_VARIANT`);
* one ratio and its interval (:func:`ratio_with_interval`, on :func:`median_ratio` and
  :func:`ratio_of_medians_ci`) with one seed (:data:`BOOTSTRAP_SEED`);
* one verdict vocabulary (:data:`VERDICTS`) and one function that reads an interval
  (:func:`verdict`).

**Direction.** Every ratio here is a speedup of the subject against its reference: the
reference's median figure over the subject's (for step times: above 1, the subject is
faster). A verdict says what the subject is against its reference: "faster", "slower",
"same" (the interval inside 1 +- threshold), "unclear" (it reaches across an edge of
that band) or "missing" (no interval to judge by).

Example::

    from tf_loopbench.reports.compare import compare, ladder_reference
    rows = compare(run_set.cells, "loop", ladder_reference(run_set.ladder),
                   samples=run_set.processes, figure="steady")
    rows[["workload", "loop", "against_loop", "ratio", "ci_low", "ci_high", "verdict"]]

It imports neither TensorFlow nor any other module of the suite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------- the keys

#: Identify a cell. A run holds one row per cell in summary.csv. ``width`` is the
#: hidden width of mlp/gan (an int; 0 for workloads without one, e.g. linear);
#: ``steps_per_call``, ``precision`` and ``fit_jit`` are the knobs of loops/knobs.py
#: (training steps per call; a Keras dtype policy; fit's jit_compile as it ran:
#: "auto:off", "auto:on", "off", "on", and "none" for loops other than fit);
#: ``strategy`` the tf.distribute strategy of loops/distribute.py ("none", "mirrored:N",
#: "multiworker:W").
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
#: The cell keys that tell apart one loop's cells in one setting (fit's compiler), and
#: the keys of a setting, within which loops are compared: the other cell keys.
LOOP_KEYS = ("loop", "fit_jit")
SETTING_KEYS = tuple(key for key in CELL_KEYS if key not in LOOP_KEYS)
#: The value of a key a row does not hold (a run made before that key): such a run
#: compares as one step a call, float32, and fit with Keras's choice (``load_run``
#: reads that choice from ``keras_jit_compile``; see ``reports.rundir.fill_cell_keys``),
#: on one device.
CELL_KEY_DEFAULTS: dict[str, Any] = {
    "width": 0,
    "steps_per_call": 1,
    "precision": "float32",
    "strategy": "none",  # before fit_jit: fill_cell_keys reads the others to fill fit_jit
    "fit_jit": "none",
}
#: The column naming the run a row of several runs came from (its label).
RUN_KEY = "run"
#: The report's cell across runs: the run, the setting and the loop, whose label holds
#: fit's compiler where a setting has several (``reports.report.aggregate``).
GROUP_KEYS = (RUN_KEY, *SETTING_KEYS, "loop")
#: A setting across runs: the report's cell but its loop (loops are compared within one).
RUN_SETTING_KEYS = GROUP_KEYS[:-1]
#: The keys that vary with a key: comparing loops compares fit's compiler settings too.
VARIES_WITH: Mapping[str, tuple[str, ...]] = {"loop": LOOP_KEYS}
#: Where a reference value has several cells in a setting (fit with and without XLA),
#: the reference is the one whose key starts so: the one that ran as Keras chose
#: (fit_jit "auto:on"/"auto:off"); without one, the first in the cells' order.
PREFERRED_VARIANT: Mapping[str, str] = {"fit_jit": "auto"}


# --------------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class Figure:
    """A figure a comparison is drawn on: its per-cell column (summary.csv) and its
    per-process column (samples.jsonl)."""

    name: str
    cell_column: str
    sample_column: str


#: The step-time figures. "amortized": the steady step plus per-epoch costs such as
#: Keras's epoch end spread over an epoch's steps (what a user pays over whole epochs);
#: "steady": the timed step alone.
FIGURES: Mapping[str, Figure] = {
    "amortized": Figure("amortized", "amortized_step_time_s", "amortized_step_time_s"),
    "steady": Figure("steady", "step_time_median_s", "step_time_s"),
}


# --------------------------------------------------------------------------- the ratio

#: The confidence level of every ratio's interval.
CONFIDENCE_LEVEL = 0.95
#: Bootstrap resamples for a ratio's interval.
BOOTSTRAP_RESAMPLES = 9999
#: The one bootstrap seed: the same samples always give the same interval, in the
#: report, the gate and every table.
BOOTSTRAP_SEED = 20240605


def median_ratio(baseline: np.ndarray, current: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median of ``current`` over median of ``baseline``, along ``axis``: the second
    argument over the first. A comparison's speedup is ``median_ratio(subject,
    reference)`` (:func:`ratio_with_interval`).

    >>> float(median_ratio(np.array([2.0, 2.0]), np.array([1.0, 3.0])))
    1.0
    """
    return np.median(current, axis=axis) / np.median(baseline, axis=axis)


def ratio_of_medians_ci(
    baseline: np.ndarray,
    current: np.ndarray,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the ratio of medians current/baseline
    (the direction of :func:`median_ratio`), the two samples resampled independently.

    Percentile rather than BCa: BCa's acceleration comes from a jackknife, and the
    jackknife is inconsistent for the median (and unstable with a cell's handful of
    processes). Returns (nan, nan) with fewer than two samples on a side, where no
    interval means anything.

    >>> ratio_of_medians_ci([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    (2.0, 2.0)
    """
    # scipy only here: reports.rundir imports this module, and readers of a run need
    # no scipy until they bootstrap
    from scipy import stats

    baseline = np.asarray(baseline, dtype=float)
    current = np.asarray(current, dtype=float)
    if baseline.size < 2 or current.size < 2:
        return (float("nan"), float("nan"))
    if np.ptp(baseline) == 0 and np.ptp(current) == 0:
        point = float(median_ratio(baseline, current))
        return (point, point)  # every resample gives the point

    def ratio(current_resample, baseline_resample, axis=-1):
        return median_ratio(baseline_resample, current_resample, axis=axis)

    with warnings.catch_warnings():
        # identical samples make a degenerate (zero-width) interval: that is an answer
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (current, baseline),
            ratio,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            confidence_level=confidence_level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def ratio_with_interval(
    subject: Sequence[float], reference: Sequence[float]
) -> tuple[float, float, float]:
    """(ratio, ci_low, ci_high) of the subject's per-process samples against the
    reference's: the reference's median over the subject's (a speedup: above 1, the
    subject's step is shorter) with its seeded 95% percentile-bootstrap interval, the
    two sides resampled independently. The interval is NaN with fewer than two samples
    on a side.

    >>> ratio_with_interval([2.0, 2.0, 2.0], [4.0, 4.0, 4.0])   # twice as fast
    (2.0, 2.0, 2.0)
    """
    subject = np.asarray(subject, dtype=float)
    reference = np.asarray(reference, dtype=float)
    low, high = ratio_of_medians_ci(subject, reference)
    return float(median_ratio(subject, reference)), low, high


# --------------------------------------------------------------------------- the verdict

#: The band of no practical difference, 1 +- this: the regression gate's threshold, and
#: what a claim of the report must clear.
DEFAULT_THRESHOLD = 0.05

FASTER, SLOWER, SAME, UNCLEAR, MISSING = "faster", "slower", "same", "unclear", "missing"
#: What a subject is against its reference, read from the ratio's interval. The gate's
#: words before this vocabulary: "unchanged" is SAME, "inconclusive" UNCLEAR; the
#: report's "none" is MISSING.
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


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    """A reference rule: given the values of the varying key present in one setting
    (in the cells' order; a tuple per cell when several keys vary), the (subject value,
    reference value) pairs to compare, in the order the rows come out. A pair whose
    values are equal compares the value's own cells with its reference cell (the
    reference cell itself gets 1). Build one with the functions below.

    >>> against_each([("xla", "tf_data")]).pairs(["tf_data", "fit", "xla"])
    [('xla', 'tf_data')]
    """

    name: str
    choose: Callable[[list[Any]], list[tuple[Any, Any]]]

    def pairs(self, values: Iterable[Any]) -> list[tuple[Any, Any]]:
        return self.choose(list(values))


def against(value: Any, *, itself: bool = False, name: str | None = None) -> Rule:
    """Every other value against ``value``: a knob's base value, the ladder's reference
    loop, the first run, the gate's baseline side. ``itself``: the reference value's own
    cells too (the reference cell against itself, 1; fit with XLA against fit as Keras
    chose).

    >>> against(1).pairs([1, 4, 8])
    [(4, 1), (8, 1)]
    >>> against("fit", itself=True).pairs(["eager", "fit"])
    [('eager', 'fit'), ('fit', 'fit')]
    """

    def choose(values: list[Any]) -> list[tuple[Any, Any]]:
        if value not in values:
            return []
        return [(other, value) for other in values if itself or other != value]

    return Rule(name or f"against {value!r}", choose)


def against_each(pairs: Iterable[tuple[Any, Any]], *, name: str = "pairs") -> Rule:
    """The (subject value, reference value) ``pairs`` whose values the setting holds, in
    their order: a rung against its neighbour, a knob's pairs across two keys.

    >>> against_each([("b", "a"), ("c", "b")]).pairs(["a", "c"])
    []
    """
    listed = list(dict.fromkeys(pairs))  # each pair once

    def choose(values: list[Any]) -> list[tuple[Any, Any]]:
        present = set(values)
        return [(s, r) for s, r in listed if s in present and r in present]

    return Rule(name, choose)


def against_previous(order: Sequence[Any], *, name: str = "previous") -> Rule:
    """Each value of ``order`` against the one before it in ``order`` (releases in
    version order, each against the one before), where the setting holds both.

    >>> against_previous(["2.19", "2.20", "2.21"]).pairs(["2.21", "2.19", "2.20"])
    [('2.20', '2.19'), ('2.21', '2.20')]
    """
    return against_each(zip(order[1:], order[:-1], strict=False), name=name)


class LadderLike(Protocol):
    """What the ladder rules read of ``reports.rundir.Ladder``."""

    reference: str

    @property
    def loops(self) -> tuple[str, ...]: ...

    def neighbours(self) -> list[tuple[str, str]]: ...


def ladder_reference(ladder: LadderLike | None) -> Rule:
    """Every other loop on the ladder against its reference loop, in ladder order; no
    pair without a ladder.

    Example::

        compare(cells, "loop", ladder_reference(run_set.ladder))   # x fit
    """
    if ladder is None:
        return against_each([], name="no ladder")
    pairs = [(loop, ladder.reference) for loop in ladder.loops if loop != ladder.reference]
    return against_each(pairs, name=f"against {ladder.reference}")


def ladder_neighbours(ladder: LadderLike | None) -> Rule:
    """Each rung against the rung it compares with (the two differ in one thing).

    Example::

        compare(cells, "loop", ladder_neighbours(run_set.ladder))   # x neighbour
    """
    pairs = ladder.neighbours() if ladder is not None else []
    return against_each(pairs, name="against the neighbour")


def knob_base(key: str) -> Rule:
    """Every value of a knob against its base: what a run without the key compares as
    (:data:`CELL_KEY_DEFAULTS`: one step a call, float32, no strategy).

    >>> knob_base("precision").pairs(["mixed_bfloat16", "float32"])
    [('mixed_bfloat16', 'float32')]
    """
    return against(CELL_KEY_DEFAULTS[key], name=f"against {key} {CELL_KEY_DEFAULTS[key]}")


# --------------------------------------------------------------------------- pairing

#: The columns of :func:`pair` beside the keys: the subject's and the reference's row
#: labels in ``cells``.
PAIR_COLUMNS = ("subject_row", "reference_row")


def _vary_keys(vary: str | Sequence[str]) -> tuple[str, ...]:
    return (vary,) if isinstance(vary, str) else tuple(vary)


def _key_columns(cells: pd.DataFrame, keys: Sequence[str] | None) -> list[str]:
    """The key columns of ``cells``: ``keys``, else GROUP_KEYS for cells of several runs
    (with a ``run`` column) and CELL_KEYS for one run's, those present."""
    if keys is None:
        keys = GROUP_KEYS if RUN_KEY in cells.columns else CELL_KEYS
    return [key for key in keys if key in cells.columns]


def _varying_columns(vary: tuple[str, ...], keys: Sequence[str]) -> list[str]:
    """The varying keys and the keys that vary with them, in ``keys`` order."""
    varying = {k for key in vary for k in VARIES_WITH.get(key, (key,))} | set(vary)
    return [key for key in keys if key in varying]


def _preferred(group: pd.DataFrame, labels: list[Any], variants: list[str]) -> Any:
    """Of a reference value's cells, the one PREFERRED_VARIANT names, else the first."""
    for label in labels:
        if any(
            str(group.at[label, column]).startswith(PREFERRED_VARIANT[column])
            for column in variants
            if column in PREFERRED_VARIANT
        ):
            return label
    return labels[0]


def pair(
    cells: pd.DataFrame,
    vary: str | Sequence[str],
    reference: Rule,
    *,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Pair every subject cell with its reference cell in the same setting, once.

    A setting is the cells whose key columns (``keys``: by default GROUP_KEYS for
    several runs' cells, CELL_KEYS for one run's) are equal but for ``vary`` and the keys
    that vary with it (VARIES_WITH: the loop brings fit's compiler). Within each setting
    (in sorted order) the rule names the (subject value, reference value) pairs; every
    cell of a subject value is paired with the reference value's cell (PREFERRED_VARIANT
    where it has several). A setting without the reference value gives no pair. The
    gate uses this directly, to apply its own test to the pairs.

    Returns one row per pair: the setting's keys, the subject's varying keys, the
    reference's as ``against_<key>``, and PAIR_COLUMNS (row labels in ``cells``).

    Example (the gate: each cell of the current run against the baseline's; fit's
    compiler is a key of its own there, so the keys are given)::

        pair(cells, "run", against(baseline_label), keys=(RUN_KEY, *CELL_KEYS))
    """
    vary = _vary_keys(vary)
    keys = _key_columns(cells, keys)
    missing = [key for key in vary if key not in cells.columns]
    if missing:
        raise ValueError(f"the cells have no column {missing[0]!r} to vary")
    keys = list(dict.fromkeys([*keys, *vary]))
    varying = _varying_columns(vary, keys)
    setting = [key for key in keys if key not in varying]
    variants = [key for key in varying if key not in vary]
    columns = [*setting, *varying, *(f"against_{key}" for key in varying), *PAIR_COLUMNS]
    rows = []
    groups = cells.groupby(setting, sort=True, dropna=False) if setting else [((), cells)]
    for _, group in groups:
        members: dict[Any, list[Any]] = {}
        for label, value in zip(
            group.index, group[list(vary)].itertuples(index=False, name=None), strict=True
        ):
            members.setdefault(value[0] if len(vary) == 1 else value, []).append(label)
        seen = set()
        for subject_value, reference_value in reference.pairs(members):
            if subject_value not in members or reference_value not in members:
                continue
            reference_row = _preferred(group, members[reference_value], variants)
            for subject_row in members[subject_value]:
                if (subject_row, reference_row) in seen:
                    continue
                seen.add((subject_row, reference_row))
                subject, against_cell = group.loc[subject_row], group.loc[reference_row]
                rows.append(
                    {
                        **{key: subject[key] for key in setting},
                        **{key: subject[key] for key in varying},
                        **{f"against_{key}": against_cell[key] for key in varying},
                        "subject_row": subject_row,
                        "reference_row": reference_row,
                    }
                )
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- comparing

#: Bases of a comparison row's interval: "processes", a bootstrap over both cells'
#: per-process samples; "summary", the cells' own figures (no interval: a side had no
#: samples). The gate's own tests may name others ("blocks", "pairs").
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


def samples_by_cell(
    samples: pd.DataFrame | None, keys: Sequence[str], column: str
) -> dict[tuple, np.ndarray]:
    """Per cell (a tuple of ``keys``), the finite values of ``column`` in ``samples``.

    >>> frame = pd.DataFrame({"loop": ["a", "a", "b"], "t": [1.0, float("nan"), 2.0]})
    >>> {k: v.tolist() for k, v in samples_by_cell(frame, ["loop"], "t").items()}
    {('a',): [1.0], ('b',): [2.0]}
    """
    if samples is None or samples.empty or column not in samples.columns:
        return {}
    absent = [key for key in keys if key not in samples.columns]
    if absent:
        raise ValueError(f"the samples have no key column {absent[0]!r}")
    values = pd.to_numeric(samples[column], errors="coerce")
    grouped = values.groupby([samples[key] for key in keys], sort=False)
    return {
        key if isinstance(key, tuple) else (key,): group.dropna().to_numpy(dtype=float)
        for key, group in grouped
    }


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
    """Compare every subject cell with its reference cell along ``vary`` (see :func:`pair`).

    ``cells``: one row per cell, the key columns and ``figure``'s per-cell column (pass
    only the cells that may take part: ok, equivalent...). ``samples``: the cells'
    per-process samples (key columns and ``figure``'s per-process column). ``figure``: a
    name of FIGURES or a Figure. ``carry``: columns of ``cells`` to copy beside each side
    (``<column>`` and ``against_<column>``), e.g. ``noisy``.

    Returns one row per pair, indexed by the subject cell's label in ``cells``: the
    setting's keys, the subject's varying keys, the reference's (``against_<key>``), the
    carried columns, then ``figure`` (its name), ``value`` and ``against_value`` (each
    side's figure: the median of its samples, or the cell's own on the summary basis),
    ``ratio`` (the reference's median figure over the subject's, ``against_value /
    value``: above 1, the subject is faster), ``ci_low`` and ``ci_high`` (95%),
    ``basis`` ("processes": median and bootstrap over both cells' samples; "summary":
    the cells' own figures, NaN interval, where a side has no samples), ``n`` and
    ``n_against`` (the samples on each side) and ``verdict`` (:func:`verdict`).

    Example::

        compare(cells, "steps_per_call", knob_base("steps_per_call"), samples=processes)
    """
    figure = FIGURES[figure] if isinstance(figure, str) else figure
    vary = _vary_keys(vary)
    keys = list(dict.fromkeys([*_key_columns(cells, keys), *vary]))
    if not cells.index.is_unique:
        raise ValueError("the cells' index labels must be unique: rows are found by them")
    pairs = pair(cells, vary, reference, keys=keys)
    key_columns = [c for c in pairs.columns if c not in PAIR_COLUMNS]
    carried = [f"{side}{column}" for column in carry for side in ("", "against_")]
    columns = [*key_columns, *carried, *COMPARISON_COLUMNS]
    sample_arrays = samples_by_cell(samples, keys, figure.sample_column)
    empty = np.empty(0)
    rows, index = [], []
    for record in pairs.to_dict("records"):
        subject = cells.loc[record["subject_row"]]
        against_cell = cells.loc[record["reference_row"]]
        subject_samples = sample_arrays.get(tuple(subject[k] for k in keys), empty)
        reference_samples = sample_arrays.get(tuple(against_cell[k] for k in keys), empty)
        if subject_samples.size and reference_samples.size:
            ratio, low, high = ratio_with_interval(subject_samples, reference_samples)
            value, against_value = np.median(subject_samples), np.median(reference_samples)
            basis = PROCESSES
        else:
            value = _number(subject, figure.cell_column)
            against_value = _number(against_cell, figure.cell_column)
            ratio = against_value / value if value else math.nan
            low = high = math.nan
            basis = SUMMARY
        rows.append(
            {
                **{key: record[key] for key in key_columns},
                **{c: subject[c] for c in carry},
                **{f"against_{c}": against_cell[c] for c in carry},
                "figure": figure.name,
                "value": float(value),
                "against_value": float(against_value),
                "ratio": ratio,
                "ci_low": low,
                "ci_high": high,
                "basis": basis,
                "n": int(subject_samples.size),
                "n_against": int(reference_samples.size),
                "verdict": verdict(low, high, threshold),
            }
        )
        index.append(record["subject_row"])
    return pd.DataFrame(rows, columns=columns, index=pd.Index(index, name="cell"))


def _number(row: pd.Series, column: str) -> float:
    """``row[column]`` as a float; NaN where it is absent or not a number."""
    try:
        return float(row[column]) if column in row.index else math.nan
    except (TypeError, ValueError):
        return math.nan


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CELL_KEYS",
    "CELL_KEY_DEFAULTS",
    "COMPARISON_COLUMNS",
    "CONFIDENCE_LEVEL",
    "DEFAULT_THRESHOLD",
    "FASTER",
    "FIGURES",
    "GROUP_KEYS",
    "LOOP_KEYS",
    "MISSING",
    "PAIR_COLUMNS",
    "PREFERRED_VARIANT",
    "PROCESSES",
    "RUN_KEY",
    "RUN_SETTING_KEYS",
    "SAME",
    "SETTING_KEYS",
    "SLOWER",
    "SUMMARY",
    "UNCLEAR",
    "VARIES_WITH",
    "VERDICTS",
    "Figure",
    "LadderLike",
    "Rule",
    "against",
    "against_each",
    "against_previous",
    "compare",
    "knob_base",
    "ladder_neighbours",
    "ladder_reference",
    "median_ratio",
    "pair",
    "ratio_of_medians_ci",
    "ratio_with_interval",
    "samples_by_cell",
    "verdict",
]
