"""The comparison core (reports/compare.py): pairing, reference rules, ratio, interval, verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from tf_loopbench.reports import compare as core
from tf_loopbench.reports.compare import (
    BOOTSTRAP_SEED,
    Figure,
    against,
    against_each,
    against_previous,
    compare,
    knob_base,
    ladder_neighbours,
    ladder_reference,
    pair,
    payback,
    ratio_of_medians_ci,
    ratio_with_interval,
    verdict,
)
from tf_loopbench.reports.rundir import Ladder

LADDER = Ladder.from_json(
    {
        "reference": "fit",
        "rungs": [
            {"loop": "fit", "compares_with": None, "changes": "Keras", "reference": True},
            {"loop": "eager", "compares_with": None, "changes": "custom"},
            {"loop": "tf_function", "compares_with": "eager", "changes": "graph"},
            {"loop": "xla", "compares_with": "tf_function", "changes": "compiler"},
        ],
    }
)
#: a figure read from column "t" of both the cells and the samples
T = Figure("t", cell_column="t", sample_column="t")


def cell(loop="fit", t=1.0, **keys):
    """A one-run cell row with every cell key (defaults where not given)."""
    row = {
        "workload": "mlp",
        "loop": loop,
        "device": "cpu",
        "batch_size": 32,
        "width": 8,
        "steps_per_call": 1,
        "precision": "float32",
        "fit_jit": "auto:off" if loop == "fit" else "none",
        "strategy": "none",
        "t": t,
    }
    row.update(keys)
    return row


def frame(*rows):
    return pd.DataFrame(list(rows))


def samples_of(cells: pd.DataFrame, per_cell: dict[str, list[float]]) -> pd.DataFrame:
    """Per-process rows for the cells whose loop is in ``per_cell``."""
    rows = []
    for record in cells.to_dict("records"):
        for value in per_cell.get(record["loop"], []):
            rows.append({**record, "t": value})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the rules


def test_the_ladder_reference_rule_pairs_every_loop_with_the_reference_in_ladder_order():
    cells = frame(cell("xla", 0.5), cell("eager", 4.0), cell("fit", 2.0), cell("tf_function", 1))
    rows = compare(cells, "loop", ladder_reference(LADDER), figure=T)
    assert list(zip(rows["loop"], rows["against_loop"], strict=True)) == [
        ("eager", "fit"),
        ("tf_function", "fit"),
        ("xla", "fit"),
    ]


def test_the_neighbour_rule_pairs_each_rung_with_the_rung_it_compares_with():
    cells = frame(cell("fit"), cell("eager"), cell("tf_function"), cell("xla"))
    rows = pair(cells, "loop", ladder_neighbours(LADDER))
    assert list(zip(rows["loop"], rows["against_loop"], strict=True)) == [
        ("tf_function", "eager"),
        ("xla", "tf_function"),
    ]
    assert pair(cells, "loop", ladder_neighbours(None)).empty


@pytest.mark.parametrize(
    ("key", "values", "base"),
    [
        ("steps_per_call", [4, 1, 8], 1),
        ("precision", ["mixed_bfloat16", "float32"], "float32"),
        ("strategy", ["mirrored:2", "none"], "none"),
    ],
)
def test_a_knob_is_compared_with_its_base_value(key, values, base):
    cells = frame(*(cell("xla", 1.0, **{key: value}) for value in values))
    rows = compare(cells, key, knob_base(key), figure=T)
    assert sorted(map(str, rows[key])) == sorted(str(v) for v in values if v != base)
    assert set(rows[f"against_{key}"]) == {base}


def test_runs_against_the_first_run_and_releases_against_the_one_before():
    cells = frame(*(cell("fit", t, run=run) for run, t in (("a", 1.0), ("b", 2.0), ("c", 4.0))))
    first = compare(cells, "run", against("a"), figure=T)
    assert list(zip(first["run"], first["against_run"], strict=True)) == [("b", "a"), ("c", "a")]
    assert first["ratio"].tolist() == [0.5, 0.25]
    previous = compare(cells, "run", against_previous(["c", "a", "b"]), figure=T)
    assert list(zip(previous["run"], previous["against_run"], strict=True)) == [
        ("a", "c"),
        ("b", "a"),
    ]


def test_cells_of_several_runs_pair_within_a_run_on_the_group_keys():
    cells = frame(
        cell("fit", 2.0, run="a"),
        cell("xla", 1.0, run="a"),
        cell("fit", 8.0, run="b"),
        cell("xla", 2.0, run="b"),
    ).drop(columns="fit_jit")
    rows = compare(cells, "loop", ladder_reference(LADDER), figure=T)
    assert list(zip(rows["run"], rows["ratio"], strict=True)) == [("a", 2.0), ("b", 4.0)]


def test_two_keys_vary_together_cpu_against_gpu():
    cells = frame(
        cell("fit", 4.0, run="cpu", device="cpu"), cell("fit", 1.0, run="gpu", device="gpu")
    )
    rows = compare(
        cells, ("run", "device"), against_each([(("gpu", "gpu"), ("cpu", "cpu"))]), figure=T
    )
    assert rows[["run", "device", "against_run", "against_device", "ratio"]].values.tolist() == [
        ["gpu", "gpu", "cpu", "cpu", 4.0]
    ]


def test_the_reference_cell_is_the_one_keras_chose_and_itself_gives_one():
    cells = frame(
        cell("fit", 1.0, fit_jit="on"),
        cell("fit", 2.0, fit_jit="auto:off"),
        cell("xla", 0.5),
    )
    rows = compare(cells, "loop", against("fit", itself=True), figure=T)
    by_cell = dict(zip(zip(rows["loop"], rows["fit_jit"], strict=True), rows["ratio"], strict=True))
    assert by_cell == {("fit", "on"): 2.0, ("fit", "auto:off"): 1.0, ("xla", "none"): 4.0}
    assert set(rows["against_fit_jit"]) == {"auto:off"}
    # without a cell Keras chose: the first in the cells' order
    first = compare(cells.iloc[[0, 2]], "loop", against("fit"), figure=T)
    assert first["against_fit_jit"].tolist() == ["on"] and first["ratio"].tolist() == [2.0]


def test_a_setting_without_its_reference_gives_no_row():
    cells = frame(
        cell("fit", 2.0, batch_size=32),
        cell("xla", 1.0, batch_size=32),
        cell("xla", 1.0, batch_size=64),  # no fit at batch 64
    )
    rows = compare(cells, "loop", ladder_reference(LADDER), figure=T)
    assert rows["batch_size"].tolist() == [32]
    assert against("fit").pairs(["xla"]) == []


def test_each_pair_comes_out_once():
    cells = frame(cell("fit"), cell("xla"))
    rule = against_each([("xla", "fit"), ("xla", "fit")])
    assert len(pair(cells, "loop", rule)) == 1
    assert len(compare(cells, "loop", rule, figure=T)) == 1


def test_rows_are_indexed_by_the_subject_cell_and_carry_columns_for_both_sides():
    cells = frame(cell("fit", 2.0, noisy=False), cell("xla", 1.0, noisy=True))
    rows = compare(cells, "loop", against("fit"), figure=T, carry=["noisy"])
    assert rows.index.tolist() == [1]
    assert (rows.at[1, "noisy"], rows.at[1, "against_noisy"]) == (True, False)
    with pytest.raises(ValueError, match="unique"):
        compare(pd.concat([cells, cells]), "loop", against("fit"), figure=T)


# --------------------------------------------------------------------------- the ratio


def test_the_ratio_is_the_reference_over_the_subject_above_one_the_subject_is_faster():
    cells = frame(cell("fit", 3.0), cell("xla", 1.0), cell("eager", 6.0))
    rows = compare(cells, "loop", against("fit"), figure=T).set_index("loop")
    assert rows.at["xla", "ratio"] == 3.0  # xla's step is a third of fit's: 3x faster
    assert rows.at["eager", "ratio"] == 0.5
    fast = ratio_with_interval([1.0, 1.1, 0.9], [3.0, 3.3, 2.7])[0]
    assert fast == pytest.approx(3.0)


def test_the_interval_comes_from_process_samples_else_the_summary():
    cells = frame(cell("fit", 2.0), cell("xla", 1.0), cell("eager", 4.0))
    samples = samples_of(cells, {"fit": [2.0, 2.2, 1.8, 2.1], "xla": [1.0, 0.9, 1.1, 1.05]})
    rows = compare(cells, "loop", against("fit"), samples=samples, figure=T).set_index("loop")
    xla, eager = rows.loc["xla"], rows.loc["eager"]
    assert xla["basis"] == "processes" and (xla["n"], xla["n_against"]) == (4, 4)
    assert xla["ratio"] == pytest.approx(
        np.median([2.0, 2.2, 1.8, 2.1]) / np.median([1.0, 0.9, 1.1, 1.05])
    )
    assert (xla["value"], xla["against_value"]) == (1.025, 2.05)
    assert xla["ci_low"] < xla["ratio"] < xla["ci_high"]
    assert (xla["ci_low"], xla["ci_high"]) == ratio_of_medians_ci(
        [1.0, 0.9, 1.1, 1.05], [2.0, 2.2, 1.8, 2.1], seed=BOOTSTRAP_SEED
    )
    # eager has no samples: summary.csv's figures, no interval, nothing to judge by
    assert eager["basis"] == "summary" and eager["ratio"] == 0.5
    assert (eager["value"], eager["against_value"]) == (4.0, 2.0)
    assert math.isnan(eager["ci_low"]) and math.isnan(eager["ci_high"])
    assert (eager["n"], eager["n_against"], eager["verdict"]) == (0, 4, "missing")


def test_one_process_a_side_gives_a_ratio_from_processes_but_no_interval():
    cells = frame(cell("fit", 9.0), cell("xla", 9.0))
    samples = samples_of(cells, {"fit": [2.0], "xla": [1.0]})
    row = compare(cells, "loop", against("fit"), samples=samples, figure=T).iloc[0]
    assert (row["basis"], row["ratio"], row["verdict"]) == ("processes", 2.0, "missing")


def test_the_same_input_gives_the_same_interval_twice_one_seed():
    spread = np.random.default_rng(3).lognormal(0, 0.2, (2, 12))  # many distinct medians
    subject, reference = list(spread[0]), list(2 * spread[1])
    first = ratio_with_interval(subject, reference)
    assert first == ratio_with_interval(subject, reference)
    assert first[1:] == ratio_of_medians_ci(subject, reference, seed=BOOTSTRAP_SEED)
    assert first[1:] != ratio_of_medians_ci(subject, reference, seed=BOOTSTRAP_SEED + 1)
    cells = frame(cell("fit", 2.0), cell("xla", 1.0))
    samples = samples_of(cells, {"fit": reference, "xla": subject})
    twice = [
        compare(cells, "loop", against("fit"), samples=samples, figure=T)[["ci_low", "ci_high"]]
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(*twice)


# --------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1.1, 1.3, "faster"),
        (0.5, 0.9, "slower"),
        (0.97, 1.02, "same"),
        (0.9, 1.2, "unclear"),
        (1 - 0.05, 1 + 0.05, "same"),  # the band's edges are inside it
        (1 + 0.05, 1.3, "unclear"),  # touching the upper edge is not beyond it
        (np.nextafter(1 + 0.05, 2), 1.3, "faster"),
        (0.5, 1 - 0.05, "unclear"),
        (0.5, np.nextafter(1 - 0.05, 0), "slower"),
        (np.nextafter(1 - 0.05, 0), 1.0, "unclear"),
        (math.nan, math.nan, "missing"),
        (0.9, math.inf, "missing"),
    ],
)
def test_the_verdict_at_the_band_edges(low, high, expected):
    assert verdict(low, high, 0.05) == expected
    assert expected in core.VERDICTS


def test_compare_gives_each_row_its_verdict_against_the_threshold():
    cells = frame(cell("fit", 2.0), cell("xla", 1.0))
    samples = samples_of(cells, {"fit": [2.0, 2.0, 2.0], "xla": [1.0, 1.0, 1.0]})
    row = compare(cells, "loop", against("fit"), samples=samples, figure=T).iloc[0]
    assert (row["ci_low"], row["ci_high"], row["verdict"]) == (2.0, 2.0, "faster")
    wide = compare(cells, "loop", against("fit"), samples=samples, figure=T, threshold=1.5)
    assert wide["verdict"].tolist() == ["same"]


# --------------------------------------------------------------------------- one schema


def test_the_key_schema_is_defined_once():
    from tf_loopbench.benchmarks import stats
    from tf_loopbench.reports import rundir
    from tf_loopbench.reports.gate import stats as gate_stats
    from tf_loopbench.reports.report import aggregate, derived

    assert rundir.CELL_KEYS is core.CELL_KEYS and rundir.SETTING_KEYS is core.SETTING_KEYS
    assert rundir.LOOP_KEYS is core.LOOP_KEYS
    assert rundir.CELL_KEY_DEFAULTS is core.CELL_KEY_DEFAULTS
    assert aggregate.GROUP_KEYS is core.GROUP_KEYS
    assert ("run", *core.SETTING_KEYS, "loop") == core.GROUP_KEYS
    assert stats.CELL_KEYS is core.CELL_KEYS
    assert gate_stats.BOOTSTRAP_SEED == BOOTSTRAP_SEED
    # the report keeps no key set, figure or seed of its own: it imports the core's
    for name in ("BOOTSTRAP_SEED", "SETTING_KEYS", "FIGURES", "PRACTICAL_DIFFERENCE", "MATCH_KEYS"):
        assert not hasattr(derived, name), name
    assert gate_stats.ratio_of_medians_ci is ratio_of_medians_ci


@pytest.mark.parametrize(
    ("figures", "within_steps", "expected"),
    [
        # 2 s more compile, 2 ms saved a step: ahead after 1,001 steps (a tie at 1,000)
        ((2.5, 0.001, 0.5, 0.003), 1000, (2.0, 1001.0, "after", False)),
        ((2.5, 0.001, 0.5, 0.003), 1001, (2.0, 1001.0, "after", True)),
        # less compile and a faster step: ahead from the first step
        ((0.4, 0.001, 0.5, 0.003), 10, (-0.1, 1.0, "immediately", True)),
        # slower per step: never, whatever the epoch
        ((2.5, 0.004, 0.5, 0.003), 1e9, (2.0, math.nan, "never", False)),
        # a missing figure or epoch: no answer
        ((math.nan, 0.001, 0.5, 0.003), 1000, (math.nan, math.nan, "unknown", None)),
        ((2.5, 0.001, 0.5, 0.003), math.nan, (2.0, 1001.0, "after", None)),
    ],
)
def test_payback_within_an_epoch(figures, within_steps, expected):
    extra, steps, outcome, within = expected
    found = payback(*figures, within_steps=within_steps)
    assert found.outcome == outcome and found.within is within
    assert found.extra_compile_s == pytest.approx(extra, nan_ok=True)
    assert found.break_even_steps == pytest.approx(steps, nan_ok=True)
    assert found.saving_per_step_s == pytest.approx(figures[3] - figures[1])
