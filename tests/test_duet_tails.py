"""tools/duet_tails.py: duet A/Bs' heavy-tailed blocks against their disturbance, on run
directories with known samples (tests/fixtures/gate_runs.py; no TensorFlow)."""

from __future__ import annotations

import numpy as np

from tests.fixtures.gate_runs import interleaved_pair, write_run
from tools import duet_tails

LOOPS = ("fit", "tf_function", "xla")
BLOCKS = 20


def disturbed_duet(out, slowdown: float, seed: int) -> None:
    """A duet A/B of 3 cells, 2 % noise a window, the current side's tf_function cell
    ``slowdown`` slower; in 5 blocks of every cell one side (alternating) ran 40-100 %
    slow, as when another job took that side's core."""
    rng = np.random.default_rng(seed)
    sides = {"base": {}, "current": {}}
    hit = {0: "base", 4: "current", 8: "base", 12: "current", 16: "base"}
    for index, loop in enumerate(LOOPS):
        for side in sides:
            times = 0.002 * (index + 1) * (1 + 0.02 * rng.standard_normal(BLOCKS))
            if side == "current" and loop == "tf_function":
                times *= 1 + slowdown
            for block, victim in hit.items():
                if victim == side:
                    times[block] *= 1.4 + 0.6 * rng.random()
            sides[side][("mlp", loop)] = list(times)
    ids = {"base": "duet-base-x", "current": "duet-current-y"}
    for side, partner in (("base", "current"), ("current", "base")):
        soft = {"ab": {"mode": "duet", "partner": ids[partner]}}
        write_run(out / side, sides[side], run_id=ids[side], soft=soft)


def rows(table: str) -> dict[tuple[str, str], list[str]]:
    cells = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| ")]
    return {(c[0].strip(), c[1].strip()): [part.strip() for part in c] for c in cells[1:]}


def test_disturbed_blocks_blind_the_gate_and_leaving_them_out_restores_it(tmp_path, capsys):
    disturbed_duet(tmp_path / "aa", 0.0, seed=1)
    disturbed_duet(tmp_path / "slowed", 0.10, seed=2)
    assert duet_tails.main([str(tmp_path / "aa"), str(tmp_path / "slowed")]) == 0
    table = rows(capsys.readouterr().out)
    for ab in ("aa", "slowed"):
        for loop in LOOPS:
            row = table[ab, f"mlp/{loop}"]
            assert row[2] == "20" and row[7] == "15", row
            # the five slow blocks are the tails, and the most disturbed ones
            assert int(row[4]) >= 4 and float(row[5]) > 0.5, row
            assert float(row[8].rstrip("%")) < 7.0 < float(row[6].rstrip("%")), row
    assert table["aa", "flagged slower"][6:9:2] == ["every block: none", "least disturbed: none"]
    slowed = table["slowed", "flagged slower"]
    assert slowed[8] == "least disturbed: mlp/tf_function", slowed
    assert slowed[6] == "every block: none", slowed


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    interleaved_pair(tmp_path / "inter", 1.0)
    assert duet_tails.main([str(tmp_path / "inter")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the two sides of one duet A/B" in err
    assert duet_tails.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_gate_leaves_the_most_disturbed_blocks_out(tmp_path):
    """loopbench compare's paired gate on the same A/Bs: the slowed cell is flagged
    (judging every block misses it, above), the A/A flags nothing, and each cell is
    judged on its 15 least disturbed blocks of 20."""
    from tf_loopbench.reports.gate import judge

    disturbed_duet(tmp_path / "aa", 0.0, seed=1)
    disturbed_duet(tmp_path / "slowed", 0.10, seed=2)
    aa = judge.compare(tmp_path / "aa" / "base", tmp_path / "aa" / "current")
    slowed = judge.compare(tmp_path / "slowed" / "base", tmp_path / "slowed" / "current")
    assert not aa.regressions and all(c.n_current == 15 for c in aa.cells)
    assert [c.cell.name.split("/")[:2] for c in slowed.regressions] == [["mlp", "tf_function"]]
    assert all(c.detectable < 0.07 for c in slowed.cells)
    assert any("most disturbed quarter" in note for note in slowed.notes)
