"""Duet A/B (benchmarks/duet.py, ``loopbench ab --mode duet``) and its paired gate.

One real A/B at tiny size (real TensorFlow, a real git base ref: a throwaway repo holding
this work tree's files) checks that the two sides' workers ran pinned to their own,
swapping halves, and that their timed windows started together. The paired statistics
are checked against scipy on known data. Run: ``pytest tests/test_duet.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats
from tf_loopbench.benchmarks import ab, cli, duet
from tf_loopbench.reports import gate
from tf_loopbench.reports.gate import judge, samples, stats
from tf_loopbench.reports.rundir import AB_MARK, CellKey, load_run

from tests.test_ab import FAKE_CLI_TAKING_TURNS, make_fake_repo

REPO = Path(__file__).resolve().parents[1]
LEVEL = 0.01 / 12


def test_the_halves_are_disjoint_and_swap_every_block():
    halves = duet.core_halves([0, 1, 2, 3])
    assert halves == ((0, 1), (2, 3))
    for block in range(4):
        base, current = (duet.block_cores(halves, block, side) for side in ("base", "current"))
        assert set(base).isdisjoint(current)
        assert base == halves[block % 2]  # base: first half in even blocks, second in odd
    assert duet.core_halves([5]) is None


def test_a_seat_pins_its_worker_or_only_sets_its_threads(tmp_path, monkeypatch):
    monkeypatch.setenv(duet.DUET_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(duet.DUET_SIDE_ENV, "base")
    saved = os.sched_getaffinity(0)
    try:
        duet.write_seat(tmp_path, "base", 7, [min(saved)])
        assert duet.Seat.for_job(6) is None  # a seat written for another job is no seat
        seat = duet.Seat.for_job(7)
        assert seat.take() == [min(saved)] and seat.threads == 1
        seat.close()
        os.sched_setaffinity(0, saved)
        duet.write_seat(tmp_path, "base", 8, [], threads=1)  # shared: every core, 1 thread
        seat = duet.Seat.for_job(8)
        assert seat.take() == sorted(saved) and seat.threads == 1
        # the other side never comes: the barrier breaks, and says so
        seat.timeout_s = 0.05
        assert seat.meet("window 0") is None and "no answer from the current side" in seat.broken
        seat.close()
    finally:
        os.sched_setaffinity(0, saved)


def test_critical_signed_rank_matches_scipy_on_known_data():
    n = 12
    critical = stats.critical_signed_rank(n, LEVEL)
    ranks = np.arange(1, n + 1, dtype=float)
    # T+ = critical: every rank positive but those summing to n(n+1)/2 - critical
    for t, reaches in ((critical, True), (critical - 1, False)):
        signs = np.where(np.isin(ranks, _ranks_summing_to(n * (n + 1) // 2 - t, n)), -1, 1)
        p = scipy_stats.wilcoxon(signs * ranks, alternative="greater", method="exact").pvalue
        assert (p <= LEVEL) == reaches, (t, p)
    assert stats.critical_signed_rank(10, LEVEL) is None  # 2**-10 > 0.00083: never
    assert stats.blocks_needed(LEVEL) == 11


def _ranks_summing_to(total: int, n: int) -> list[int]:
    chosen = []
    for rank in range(n, 0, -1):
        if rank <= total:
            chosen.append(rank)
            total -= rank
    return chosen


def test_paired_detectable_slowdown_is_the_whole_rules_80_percent_point():
    rng = np.random.default_rng(3)
    blocks, threshold = 0.03 * rng.standard_normal(16), 0.05
    detectable = stats.paired_detectable_slowdown(blocks, LEVEL, threshold)
    # the same draws judged by scipy's exact test and the ratio rule, around that shift
    noise = (blocks - np.median(blocks)) * np.sqrt(16 / 15)
    rng = np.random.default_rng(stats.POWER_SEED)
    draws = rng.choice(noise, (stats.POWER_RESAMPLES, 16))

    def power(slowdown: float) -> float:
        shifted = draws + np.log1p(slowdown)
        p = scipy_stats.wilcoxon(shifted, alternative="greater", method="exact", axis=1).pvalue
        return float(np.mean((p <= LEVEL) & (np.median(shifted, axis=1) > np.log1p(threshold))))

    assert power(detectable * 0.97) < stats.DETECTION_POWER <= power(detectable * 1.03)
    # the ratio half alone: a slowdown of the threshold's size is seen about half the time
    assert 0.3 < power(threshold) < 0.7
    assert detectable > threshold
    assert stats.paired_detectable_slowdown(blocks[:8], LEVEL, threshold) == np.inf


def test_the_paired_gate_holm_corrects_scipys_signed_rank_p_values():
    rng = np.random.default_rng(0)
    cells = [CellKey("mlp", loop, "cpu", 32) for loop in ("fit", "tf_function", "xla")]
    ratios = {
        cells[0]: 0.01 * rng.standard_normal(14),
        cells[1]: np.log(1.10) + 0.01 * rng.standard_normal(14),  # 10 % slower
        cells[2]: 0.01 * rng.standard_normal(14),
    }
    times = ({c: np.ones(14) for c in cells}, {c: np.ones(14) for c in cells})
    judged = judge.judge_paired_blocks(ratios, times, threshold=0.05, alpha=0.01)
    raw = [
        scipy_stats.wilcoxon(ratios[c], alternative="greater", method="exact").pvalue for c in cells
    ]
    assert [judged[c].p_value for c in cells] == pytest.approx(raw)
    assert [judged[c].p_adjusted for c in cells] == pytest.approx(stats.holm_adjust(raw))
    assert judged[cells[1]].verdict == "slower" and judged[cells[1]].ratio > 1.05
    low, high = judged[cells[1]].ci_low, judged[cells[1]].ci_high
    assert low < judged[cells[1]].ratio < high
    assert judged[cells[0]].verdict == judged[cells[2]].verdict == "same"
    assert all(np.isnan(judged[c].blocks_to_see) for c in cells)  # none blind: no plan
    # a noisy cell is blind to 10 %; its plan: the fewest blocks at which this spread sees it
    noisy_blocks = 0.15 * rng.standard_normal(14)
    noisy = judge.judge_paired_blocks({cells[0]: noisy_blocks}, times, 0.05, 0.01)[cells[0]]
    assert noisy.detectable > 0.10 and 14 < noisy.blocks_to_see <= stats.PLAN_MOST_BLOCKS

    def detectable(blocks: float) -> float:
        return stats.paired_detectable_slowdown(noisy_blocks, 0.01, 0.05, int(blocks))

    assert detectable(noisy.blocks_to_see) <= 0.10 < detectable(noisy.blocks_to_see - 1)


def test_a_one_core_machine_falls_back_to_interleaved_and_says_so(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    config = ab.ABConfig(base_ref="HEAD", repo=repo, out=tmp_path / "out", cores=(0,))
    assert ab.choose_mode(config, repo) == (
        "interleaved",
        "1 core: duet needs 2 or more (one half a side); running interleaved",
    )
    # the fake base predates duet A/B: with 2 cores it is timed interleaved, and said so
    mode, why = ab.choose_mode(ab.ABConfig("HEAD", repo, tmp_path / "o", cores=(0, 1)), repo)
    assert mode == "interleaved" and "HEAD predates duet A/B" in why
    # the command itself, on one core
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        status = cli.main(
            ["ab", "HEAD", "--repo", str(repo), "--out", str(tmp_path / "out"), "--processes", "5"]
        )
    finally:
        os.sched_setaffinity(0, saved)
    out = capsys.readouterr().out
    assert status == 1, out
    assert "[ab] 1 core: duet needs 2 or more (one half a side); running interleaved" in out
    assert "worker processes interleaved" in out
    assert load_run(tmp_path / "out" / "base").metadata["soft"][AB_MARK]["mode"] == "interleaved"


def source_repo(path: Path) -> Path:
    """A git repo whose one commit holds this work tree's files (as they are now)."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, path / name)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return path


def _rows(run_dir: Path) -> list[dict]:
    # json, not pandas: window start times need every digit
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="duet needs 2 cores")
def test_duet_pins_each_side_to_its_half_and_starts_windows_together(tmp_path, capsys):
    repo = source_repo(tmp_path / "repo")
    out = tmp_path / "out"
    config = ab.ABConfig(
        base_ref="HEAD",
        repo=repo,
        out=out,
        workloads=("linear",),
        loops=("tf_function",),
        processes=2,
        run_args=("--quick", "--windows", "6", "--window-ms", "10"),
    )
    ab.run_ab(config)
    printed = capsys.readouterr().out
    assert "worker processes side by side (each pinned to half the cores" in printed
    assert "duet A/B judged in pairs" in printed and "signed-rank" in printed
    halves = duet.core_halves(duet.available_cores())
    rows = {side: _rows(out / side) for side in ("base", "current")}
    processes = {
        side: {r["process"]: r for r in side_rows if r["kind"] == "process"}
        for side, side_rows in rows.items()
    }
    for block in (0, 1):
        base, current = processes["base"][block], processes["current"][block]
        assert base["status"] == current["status"] == "ok"
        # read back in the worker: each on its own half, the halves swapped every block
        assert tuple(base["cores"]) == duet.block_cores(halves, block, "base")
        assert tuple(current["cores"]) == duet.block_cores(halves, block, "current")
        assert base["intra_op_threads"] == current["intra_op_threads"] == len(halves[0])
        assert base["barrier_broken"] is None and base["barrier_meetings"] == 1 + 6
    windows = {
        side: {(r["process"], r["window"]): r for r in side_rows if r["kind"] == "window"}
        for side, side_rows in rows.items()
    }
    assert windows["base"].keys() == windows["current"].keys() and len(windows["base"]) == 12
    gaps_ms = [
        abs(windows["base"][k]["started_at"] - windows["current"][k]["started_at"]) * 1e3
        for k in windows["base"]
    ]
    assert np.median(gaps_ms) < 5, gaps_ms  # the barrier: a few milliseconds at most
    assert all(
        windows["base"][k]["steps"] == windows["current"][k]["steps"] for k in windows["base"]
    )
    mark = load_run(out / "current").metadata["soft"][AB_MARK]
    assert mark["mode"] == "duet" and mark["cores"] == [list(h) for h in halves]
    # the gate judged the blocks' matched windows
    runs = (load_run(out / "base"), load_run(out / "current"))
    assert samples.measured_duet(*runs)
    ratios = samples.paired_log_ratios(runs, tuple(samples.process_samples(r) for r in runs))
    ((cell, blocks),) = ratios.items()

    def fastest(side: str, k: int) -> float:
        return min(windows[side][(k, w)]["step_time_s"] for w in range(6))

    # the block summary (docs/decisions/0011): fastest current window over fastest base's
    assert samples.BLOCK_SUMMARY == "fastest"
    expected = [np.log(fastest("current", k) / fastest("base", k)) for k in (0, 1)]
    assert blocks == pytest.approx(expected)
    result = gate.compare(out / "base", out / "current")
    assert result.paired and result.cells[0].n_current == 2
