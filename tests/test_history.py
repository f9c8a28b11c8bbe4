"""`loopbench history`: stored runs of one machine in commit order, change points, trends.

Stores of synthetic runs (tests/fixtures/history_store.py, written through
reports.rundir's writers): a step injected into one loop style from one commit on is
the one change point named, found in both the step time and the ratio to fit; on a
loaded machine (a load factor per run and per block, alike for every loop) only the ratio
finds it, and it is still the one named; a store without change names none; a creep
under the gate's threshold per run shows as a trend; commits are ordered by git ancestry
when a work tree knows them. A real held-out series whose step the creep rule beats keeps
that step on its trend.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from tf_loopbench.reports.history import (
    RATIO,
    STEP_TIME,
    Step,
    change_points,
    command,
    creep_explains,
    load_history,
    noise_sigma,
    significant_steps,
    trends_of,
)
from tf_loopbench.reports.rundir import CellKey

from tests.conftest import ROOT
from tests.fixtures import history_store
from tests.fixtures.history_store import commit_of, write_run, write_store

STEP_LOOP, STEP_RUN, STEP_FACTOR = "tf_function", 6, 1.3  # as LOOPBENCH_INJECT_SLOWDOWN=...=0.3


@pytest.fixture(scope="module")
def step_store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("step"), 10, (STEP_LOOP, STEP_RUN, STEP_FACTOR))


def test_an_injected_slowdown_is_the_one_change_point(step_store):
    history = load_history(step_store, repo=None)
    assert len(history.entries) == 10
    named = {(c.cell.loop, c.before.commit, c.after.commit) for c in history.changes}
    assert named == {(STEP_LOOP, commit_of(STEP_RUN - 1), commit_of(STEP_RUN))}
    stepped = [cell for cell in history_store.CELLS if cell[1] == STEP_LOOP]
    assert len(history.changes) == len(stepped) == 2  # every cell of that loop style
    for change in history.changes:
        assert change.found_in == (STEP_TIME, RATIO)
        for step in change.steps.values():
            assert step.low < STEP_FACTOR < step.high and step.low > 1.2
            assert (step.runs_before, step.runs_after) == (STEP_RUN, 10 - STEP_RUN)
    # the trend restarts after the step: nothing creeps
    assert not [t for t in history.trends if t.flagged(history.min_change)]


def test_a_slower_reference_is_named_on_its_own_cells(tmp_path):
    """fit 30% slower from the seventh run: every ratio to it drops, and fit's own cells
    are named, not the loops whose ratios moved."""
    history = load_history(write_store(tmp_path, 10, ("fit", STEP_RUN, STEP_FACTOR)), repo=None)
    named = {(c.cell.loop, c.before.commit, c.after.commit) for c in history.changes}
    assert named == {("fit", commit_of(STEP_RUN - 1), commit_of(STEP_RUN))}
    assert len(history.changes) == 2 and all(STEP_TIME in c.found_in for c in history.changes)


def test_a_store_without_change_names_none(tmp_path):
    history = load_history(write_store(tmp_path, 10, seed=1), repo=None)
    assert history.changes == ()
    assert not [t for t in history.trends if t.flagged(history.min_change)]
    loops = [cell for cell in history_store.CELLS if cell[1] != "fit"]
    assert len(history.trends) == len(history_store.CELLS) + len(loops)  # step time; ratio


def test_on_a_loaded_machine_the_ratio_to_fit_finds_the_step(tmp_path):
    """Eight runs, the slowdown from the fifth, load of ~25% per run: the step times
    scatter too much to show it; the ratio to fit (load cancels) names it, and only it."""
    store = write_store(tmp_path, 8, (STEP_LOOP, 4, STEP_FACTOR), seed=0, load=0.25)
    history = load_history(store, repo=None)
    named = {(c.cell.loop, c.before.commit, c.after.commit) for c in history.changes}
    assert named == {(STEP_LOOP, commit_of(3), commit_of(4))}
    assert len(history.changes) == 2
    for change in history.changes:
        assert change.found_in == (RATIO,)
        ratio = change.steps[RATIO]
        assert ratio.low < STEP_FACTOR < ratio.high and ratio.low > 1.1
    # the step times' scatter after the step is load, not a creep: no trend is flagged
    assert not [t for t in history.trends if t.flagged(history.min_change)]
    fit = history.series[(history.series["loop"] == "fit") & (history.series["position"] < 4)]
    assert fit["value"].max() / fit["value"].min() > 1.3  # the load: more than the step


def test_a_creep_under_the_threshold_per_run_shows_as_a_trend(tmp_path, monkeypatch):
    """1.5% per run (the gate's 5% never fires between neighbours), 12 runs: a trend of
    ~18%, not a staircase of change points."""
    rng = np.random.default_rng(2)
    creeping = ("mlp", "eager", 128)
    base = history_store.CELLS[creeping]
    for index in range(12):
        monkeypatch.setitem(history_store.CELLS, creeping, base * 1.015**index)
        write_run(tmp_path / f"main-{index:02d}", index, rng)
    history = load_history(tmp_path, repo=None)
    assert history.changes == ()
    flagged = [t for t in history.trends if t.flagged(history.min_change)]
    assert [(t.cell.name, t.series) for t in flagged] == [
        ("mlp/eager/cpu/bs64/w128", STEP_TIME),
        ("mlp/eager/cpu/bs64/w128", RATIO),
    ]
    for trend in flagged:
        assert trend.low < 0.015 < trend.high and trend.total > 0.1


def _git(repo, *args, date=None):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    out = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_commit_order_follows_git_ancestry_then_commit_dates(tmp_path):
    """main: a -> b -> c; a branch from a: d (committed between b and c). Runs were made
    in the order c, a, d, b (c re-measured first): git puts a, b, d, c."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    commits = {}
    for name, day in (("a", 1), ("b", 2)):
        _git(repo, "commit", "-q", "--allow-empty", "-m", name, date=f"2026-11-0{day}T00:00:00")
        commits[name] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "side", commits["a"])
    _git(repo, "commit", "-q", "--allow-empty", "-m", "d", date="2026-11-03T00:00:00")
    commits["d"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "c", date="2026-11-04T00:00:00")
    commits["c"] = _git(repo, "rev-parse", "HEAD")

    store = tmp_path / "store"
    rng = np.random.default_rng(0)
    for day, name in enumerate("cadb", start=1):
        started = f"2026-11-2{day}T06:00:00+00:00"
        write_run(store / f"run-{name}", day, rng, commit=commits[name], started_at=started)
    by_git = load_history(store, repo=repo)
    assert [e.name for e in by_git.entries] == ["run-a", "run-b", "run-d", "run-c"]
    assert by_git.order_basis.startswith("by git ancestry")
    # without a work tree that knows them: by when each commit was first measured
    by_time = load_history(store, repo=tmp_path)
    assert [e.name for e in by_time.entries] == ["run-c", "run-a", "run-d", "run-b"]
    assert by_time.order_basis.startswith("by the start time")


def test_only_the_newest_runs_machine(tmp_path):
    rng = np.random.default_rng(3)
    for index in range(5):
        write_run(tmp_path / f"main-{index:02d}", index, rng)
    other = {**history_store.HARD, "cpu_model": "Another CPU"}
    for index in range(2):  # older runs of another machine
        write_run(tmp_path / f"old-{index}", index, rng, hard=other, commit=commit_of(50 + index))
    history = load_history(tmp_path, repo=None)
    assert [e.name for e in history.entries] == [f"main-{i:02d}" for i in range(5)]
    assert history.other_machines == 2


def test_loopbench_history_writes_md_html_and_plots(step_store, tmp_path, capsys):
    out = tmp_path / "history"
    assert command(str(step_store), "main-*", str(out), repo=None) == 0
    printed = capsys.readouterr().out
    assert printed.count("change point: ") == 2
    assert f"between {commit_of(STEP_RUN - 1)[:10]} and {commit_of(STEP_RUN)[:10]}" in printed
    text = (out / "history.md").read_text()
    assert "## Change points" in text and "linear/tf_function/cpu/bs64 |" in text
    assert f"{commit_of(STEP_RUN)[:10]} (main-{STEP_RUN:02d})" in text
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["history-linear-cpu-bs64.png", "history-mlp-cpu-bs64-w128.png"]
    assert all(f"](plots/{name})" in text for name in plots)
    page = (out / "history.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "<table>" in page


def test_history_of_nothing_is_one_line_and_exit_2(tmp_path):
    for args in (
        ["--store", str(tmp_path / "absent")],
        ["--store", str(tmp_path), "--name", "nothing-*"],
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tf_loopbench",
                "history",
                *args,
                "--out",
                str(tmp_path / "o"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_bad_history_input_is_one_line_and_exit_2(tmp_path, capsys):
    from tests.test_cli import main_in_process

    broken = tmp_path / "store" / "main-00"
    broken.mkdir(parents=True)
    (broken / "metadata.json").write_text("{not json")
    for args in (
        ["--store", str(tmp_path / "store")],  # every stored run unreadable
        ["--store", str(tmp_path / "store"), "--min-change", "abc"],
        ["--store", str(tmp_path / "store"), "--min-change", "-0.1"],
    ):
        result = main_in_process(["history", *args, "--out", str(tmp_path / "o")], capsys)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


#: xla's ratio to fit over ten real runs with xla 15% slower from the sixth (12 processes a
#: cell, load 8-10; docs/results/2026-12-07-history-heldout.md, store B)
HELD_OUT_RATIOS = [0.640, 0.667, 0.610, 0.642, 0.572, 0.781, 0.692, 0.724, 0.733, 0.910]


def test_a_step_the_creep_rule_beats_is_kept_on_the_trend():
    """The search finds the held-out step at its run and the creep rule prefers a line: the
    series gets no change point, but its trend keeps the step it beat, to be shown."""
    values = np.log(HELD_OUT_RATIOS)
    no_interval = np.full(values.size, np.nan)
    sigma = noise_sigma(values, no_interval, no_interval)
    steps = significant_steps(values, sigma)
    assert [index for index, *_ in steps] == [5] and steps[0][2] > 1  # its interval clears 1
    assert creep_explains(values, steps, sigma) and change_points(values, sigma) == []
    cell = CellKey("mlp", "xla", "cpu", 128, 128)
    fitted = {(RATIO, cell): (values, np.arange(values.size), sigma)}
    kept = ((5, Step(*steps[0][1:], runs_before=5, runs_after=5)),)
    (trend,) = trends_of(fitted, {}, None, 0.05, {(RATIO, cell): kept})
    assert trend.flagged(0.05) and trend.instead_of == kept
