"""The Method: how every figure of the report is made."""

from __future__ import annotations

from tf_loopbench.reports.compare import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE_LEVEL
from tf_loopbench.reports.report.common import Block, Bullets, Context, Heading, interval_note
from tf_loopbench.reports.report.derived import OVERHEAD_THRESHOLD, Derived


def method_notes(derived: Derived) -> tuple[str, ...]:
    band = f"{derived.threshold:.0%}"
    return (
        "One statistical sample is one fresh worker process (its timed windows summarised to "
        "a median); every interval comes from processes, never from windows.",
        "Two step times: the steady step (the timed step alone) and the amortized step (the "
        "steady step plus per-epoch costs, such as Keras's epoch end, spread over an epoch's "
        "steps: what a user pays training whole epochs). Speedups lead with the amortized one.",
        f"Speedup = median step time of the reference / median step time of the loop (>1: "
        f"faster). Its interval is a percentile bootstrap of that ratio of medians over the "
        f"per-process samples ({CONFIDENCE_LEVEL:.0%} nominal, {BOOTSTRAP_RESAMPLES} resamples, "
        f"seed {BOOTSTRAP_SEED}, scipy.stats.bootstrap); an amortized speedup resamples each "
        "cell's epoch-end spans (Keras's epoch ends after the first) with its steady steps. A "
        "cell's own step-time interval is an order-statistic interval (the range of its "
        "processes below 9), none with one process.",
        interval_note(derived),
        f"A claim stands when its interval lies wholly outside ±{band} (the band of no "
        "practical difference: the regression gate's threshold) or wholly inside it. A noisy "
        "cell (processes' IQR over 10% of their median) is flagged beside the claim; its noise "
        "has widened the interval, it does not veto the claim. A cell that is not equivalent "
        "(its loss after the same first steps differs from the equivalence reference's beyond "
        "its loop style's tolerance) is marked and no decision is drawn from it.",
        "Compile break-even: the first step n at which compile_s + n x amortized step of a "
        "rung is below the same total for the rung it compares with (its neighbour on the "
        "ladder), both from the run's medians.",
        f"Time to train E epochs (E = {derived.epochs}; loopbench report --epochs E): build + "
        "the loop's own set-up call (Keras's, where it has one) + the first step (trace, compile) + "
        "(E x steps per epoch - 1) steady steps + E x the per-epoch cost (where the loop has "
        "one), from the run's medians; no interval.",
        f"Crossovers: the first grid point from which the overhead (loop / reference - 1, "
        f"steady step medians) stays under {OVERHEAD_THRESHOLD:.0%} for every larger grid "
        "point. The log-interpolated figure is for information: where a straight line in "
        "log2(batch size) between the two neighbouring grid points meets the threshold.",
        "Achieved FLOP/s = model FLOPs of one training step (the workload's formula) / median "
        "steady step; MFU = (model FLOPs / replicas) / median steady step / the peak of a "
        "replica's device in the cell's compute dtype (the run's matmul probe, measured on the "
        "machine: metadata soft.peak_matmul_flops_by_dtype; not the vendor's figure; replicas "
        "on one device share its peak evenly; none without a peak in that dtype). MFU is for "
        "information: no decision rests on it.",
    )


def blocks(context: Context) -> list[Block]:
    return [Heading(2, "Method"), Bullets(method_notes(context.derived))]
