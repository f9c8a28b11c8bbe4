"""tools/history_validation.py: what it injects when, and how it scores history's answer.

The scoring runs on a synthetic store (tests/fixtures/history_store.py) with a known step:
the right loop at the right run is a hit, a wrong claim is a miss plus a false change point.
No TensorFlow is imported.
"""

from __future__ import annotations

import argparse

import pytest
from tf_loopbench.reports.history import load_history

from tests.fixtures.history_store import write_store
from tools import history_validation
from tools.history_validation import Injection, parse_injection, score, spec_for

STEP_LOOP, STEP_INDEX, STEP_FACTOR = "tf_function", 6, 1.3  # 0-based index: the 7th run


@pytest.fixture(scope="module")
def stepped_history(tmp_path_factory):
    store = write_store(tmp_path_factory.mktemp("step"), 10, (STEP_LOOP, STEP_INDEX, STEP_FACTOR))
    return load_history(store, repo=None)


def test_injections_parse_and_apply_from_their_run():
    first, second = parse_injection("5:xla=0.15"), parse_injection("3-6:eager=0.2")
    assert first == Injection(5, None, "xla", 0.15)
    assert [spec_for(run, [first, second]) for run in (2, 3, 5, 7)] == [
        "",
        "eager=0.2",
        "xla=0.15,eager=0.2",
        "xla=0.15",
    ]
    assert second.expected(8) == [("eager", 3, True), ("eager", 7, False)]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_injection("xla=0.15")


def test_the_injected_step_scores_as_a_hit(stepped_history):
    result = score(stepped_history, [Injection(STEP_INDEX + 1, None, STEP_LOOP, 0.3)], 10)
    # the store's two tf_function cells (linear and mlp) both step there: two hits
    assert [(loop, run) for loop, run, _ in result["hits"]] == [(STEP_LOOP, STEP_INDEX + 1)] * 2
    assert not result["missed"] and not result["misplaced"] and not result["false"]


def test_a_wrong_claim_is_a_miss_and_its_step_false(stepped_history):
    result = score(stepped_history, [Injection(3, None, "eager", 0.3)], 10)
    assert result["missed"] == [("eager", 3)] and not result["hits"]
    assert {change.cell.loop for change in result["false"]} == {STEP_LOOP}


def test_one_run_off_is_misplaced_not_a_hit(stepped_history):
    result = score(stepped_history, [Injection(STEP_INDEX + 2, None, STEP_LOOP, 0.3)], 10)
    assert not result["hits"] and [loop for loop, _, _ in result["misplaced"]] == [STEP_LOOP] * 2


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        history_validation.main(["--work", str(tmp_path), "--runs", "3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_known_step_is_sized_where_it_was_injected(stepped_history):
    lines = history_validation.at_known_steps(
        stepped_history, [Injection(STEP_INDEX + 1, None, STEP_LOOP, 0.3)]
    )
    assert len(lines) == 4  # step time and ratio of each tf_function cell (linear, mlp)
    assert all(f"over runs 1-{STEP_INDEX} against {STEP_INDEX + 1}-10" in line for line in lines)
    assert all(line.split(": ")[1].startswith(("+2", "+3")) for line in lines)  # ~ +30%
