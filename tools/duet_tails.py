"""Duet A/Bs' heavy-tailed blocks against how disturbed each block was, and what the gate
would see without the most disturbed ones. For docs/results (the evidence for or against
discounting disturbed blocks in the paired gate)::

    python tools/duet_tails.py results/aa-duet-1 results/ab10-duet-1 --share 0.25

A block's disturbance is max(base, current) / the cell's median over both sides of
the fastest matched window (the block's two numbers the gate's log ratio is made of).
It is the same whichever side a block's numbers are on, so under no change a selection
by it leaves each kept block's sign a fair coin and the exact signed-rank test valid.
For each A/B and cell: the blocks, the robust spread (1.4826 MAD) of their log ratios,
the blocks beyond 3 of it, the Spearman correlation of each block's distance from the
median with its disturbance, and the gate's detectable slowdown (the whole rule, at
the A/B's Holm first-step level) on every block and on the least disturbed ones (their
own count: ``stats.disturbed_to_drop`` with ``--share``, never below what the test
needs); per A/B, the cells the paired rule flags either way. The gate itself leaves
out the most disturbed quarter (docs/gate.md); this tool shows what that does to an
A/B, and what another share would. Developer tool: never installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: `python tools/NAME.py` from a checkout imports the project from it
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats
from tf_loopbench.reports.compare import DEFAULT_THRESHOLD
from tf_loopbench.reports.gate import stats
from tf_loopbench.reports.gate.judge import DEFAULT_ALPHA, judge_paired_blocks
from tf_loopbench.reports.gate.render import detectable_text
from tf_loopbench.reports.gate.samples import (
    measured_duet,
    paired_blocks,
    process_samples,
    sort_cells,
)
from tf_loopbench.reports.rundir import CellKey, RunDirError, load_run

#: a block this many robust spreads from the median counts as a heavy tail
TAIL_SPREADS = 3.0
#: the robust spread of a normal sample from its median absolute deviation
MAD_TO_SD = 1.4826


def ab_table(out: Path, share: float) -> list[str]:
    """The markdown rows of one duet A/B (``out``/base and ``out``/current)."""
    runs = (load_run(out / "base"), load_run(out / "current"))
    if not measured_duet(*runs):
        raise RunDirError(f"{out}: base and current are not the two sides of one duet A/B")
    samples = tuple(process_samples(run) for run in runs)
    blocks = paired_blocks(runs, samples)
    log_ratios = {cell: ratios for cell, (ratios, _) in blocks.items()}
    cells = sort_cells(log_ratios)
    if not cells:
        raise RunDirError(f"{out}: no block that both sides timed")
    level = DEFAULT_ALPHA / len(cells)
    rows = []
    kept: dict[CellKey, np.ndarray] = {}
    for cell in cells:
        ratios, disturbance = blocks[cell]
        drop = stats.disturbed_to_drop(len(ratios), level, share)
        kept[cell] = stats.least_disturbed(ratios, disturbance, drop)
        deviation = np.abs(ratios - np.median(ratios))
        spread = MAD_TO_SD * float(np.median(deviation))
        tails = int(np.sum(deviation > TAIL_SPREADS * spread)) if spread > 0 else 0
        rho = (
            scipy_stats.spearmanr(deviation, disturbance).statistic if len(ratios) > 2 else math.nan
        )
        every = stats.paired_detectable_slowdown(ratios, level, DEFAULT_THRESHOLD)
        fewer = stats.paired_detectable_slowdown(kept[cell], level, DEFAULT_THRESHOLD)
        rows.append(
            f"| {out.name} | {'/'.join(map(str, cell[:2]))} | {len(ratios)} | {spread:.2%} "
            f"| {tails} | {rho:+.2f} | {detectable_text(every)} | {len(kept[cell])} | {detectable_text(fewer)} |"
        )
    empty: tuple[dict, dict] = ({}, {})
    flagged = []
    for name, data in (
        ("every block", log_ratios),
        ("least disturbed", kept),
    ):
        judged = judge_paired_blocks(data, empty)
        slower = [f"{c[0]}/{c[1]}" for c, v in judged.items() if v.verdict == "slower"]
        flagged.append(f"{name}: {', '.join(slower) or 'none'}")
    rows.append(f"| {out.name} | flagged slower | | | | | {flagged[0]} | | {flagged[1]} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outs", nargs="+", type=Path, help="loopbench ab --out directories (duet)")
    parser.add_argument(
        "--share",
        type=float,
        default=0.25,
        help="the share of most disturbed blocks left out (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.share < 1:
        parser.error(f"--share must be in [0, 1), not {args.share}")
    print(
        "| A/B | cell | blocks | spread (MAD) | beyond 3 spreads | Spearman (distance, "
        f"disturbance) | detectable, every block | blocks kept ({1 - args.share:.0%}) "
        "| detectable, least disturbed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for out in args.outs:
            print("\n".join(ab_table(out, args.share)))
    except RunDirError as error:
        print(f"duet_tails: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
