"""docs/atlas.md and its figure from an atlas run (`nox -s atlas` runs it; never installed).

    python tools/atlas_report.py RUN_DIR [RUN_DIR...] [--doc docs/atlas.md]
        [--figure docs/images/atlas.png]

Several RUN_DIRs are passes of the same matrix: each cell's figures are their median.

Reads the run's summary.csv and metadata.json (no TensorFlow). The figure puts every
cell on one chart: x = fit's steady step time of its setting (log), y = the style's
x fit per step over one epoch of the real dataset (``real_epoch_step_s``). The tables give per model and batch size: the best style, eager's cost, whether XLA's
compile pays back within one epoch of the real dataset, and every cell that did not
run or was not equivalent, with its reason. The rule is computed from the same cells.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tf_loopbench.reports.rundir import read_metadata, read_summary  # noqa: E402

#: training examples of the real dataset each model's Keras example trains on (one epoch)
REAL_EPOCH_EXAMPLES = {
    "wide_deep": 493_860,  # Covertype, the example's 85% training split of 581,012 rows
    "mnist_convnet": 60_000,
    "resnet_cifar": 50_000,
    "text_transformer": 25_000,  # IMDB
    "lstm_imdb": 25_000,
    "conv_vae": 70_000,  # the example trains on MNIST's train and test images
    "keras_guide_mlp": 50_000,
    "gan": 60_000,
}
EXAMPLE_OF = {
    "wide_deep": "Structured data learning with Wide, Deep, and Cross networks",
    "mnist_convnet": "Simple MNIST convnet",
    "resnet_cifar": "ResNet-20 v1 on CIFAR-10 (keras examples/cifar10_resnet.py)",
    "text_transformer": "Text classification with Transformer",
    "lstm_imdb": "Bidirectional LSTM on IMDB",
    "conv_vae": "Variational AutoEncoder",
    "keras_guide_mlp": "guide: Writing a training loop from scratch",
    "gan": "the seed GAN (TensorFlow's DCGAN tutorial, dense)",
}
#: what was found about a model's cells that are not equivalent, and what a user can do
DIAGNOSIS = {
    "resnet_cifar": (
        "the work is equal (eager and tf_function at batch 32: the same 3 training losses "
        "within 3e-7), the yardstick is not: the "
        "convolutions before BatchNormalization keep the example's biases, whose gradient "
        "is zero up to rounding; Adam scales that noise into steps of about its learning "
        "rate with signs that differ between eager, graph and XLA arithmetic, and the "
        "validation loss in inference mode (moving statistics 3 steps in) follows them. "
        "What to do: use_bias=False before BatchNormalization cut the weights' spread between "
        "eager and graph from 2.4 to 0.016 (largest relative difference in a variable), "
        "but the validation loss still differed by 2.5e-4: a better-conditioned equal-work "
        "yardstick for such models is left to do"
    ),
}
STYLES = ("eager", "tf_function", "tf_data", "xla")
GRAPH_STYLES = ("tf_function", "tf_data", "xla")
COLORS = {
    "eager": "tab:red",
    "tf_function": "tab:blue",
    "tf_data": "tab:green",
    "xla": "tab:purple",
}
#: "no practical difference": the regression gate's threshold (docs/gate.md)
PRACTICAL = 0.05
#: the fit step times that split the rule's ranges (s)
FAST_BELOW_S, SLOW_ABOVE_S = 0.005, 0.05


def real_epoch_step_s(cell: pd.Series) -> float:
    """The cell's step over one epoch of the real dataset: its steady step plus its
    per-epoch cost (fit's epoch end; none for the custom loops) spread over that
    epoch's steps. The run's own ``amortized_step_time_s`` spreads it over the run's
    epoch, which the atlas cuts to a few thousand examples to keep fit's two timed
    epochs short, and so would charge fit's epoch end many times over."""
    steps = max(1, REAL_EPOCH_EXAMPLES.get(cell["workload"], 0) // int(cell["batch_size"]))
    epoch_end = cell.get("epoch_end_s")
    epoch_end = float(epoch_end) if epoch_end is not None and math.isfinite(epoch_end) else 0.0
    return float(cell["step_time_median_s"]) + max(0.0, epoch_end) / steps


def with_real_epoch_speedups(summary: pd.DataFrame) -> pd.DataFrame:
    """summary with ``x_fit_real_epoch``: fit's real-epoch step over the cell's."""
    summary = summary.copy()
    summary["real_epoch_step_s"] = [
        real_epoch_step_s(cell) if cell["status"] == "ok" else math.nan
        for _, cell in summary.iterrows()
    ]
    fit = summary[summary["loop"] == "fit"].set_index(["workload", "device", "batch_size"])
    keys = list(zip(summary["workload"], summary["device"], summary["batch_size"], strict=True))
    summary["x_fit_real_epoch"] = [
        fit["real_epoch_step_s"].get(key, math.nan) / step
        for key, step in zip(keys, summary["real_epoch_step_s"], strict=True)
    ]
    return summary


CELL = ["workload", "loop", "device", "batch_size"]
#: figures that are the median over the passes (runs of the same matrix)
PASS_MEDIANS = ["step_time_median_s", "epoch_end_s", "compile_s"]


def combine(passes: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.Series]:
    """One summary from several passes of the same matrix: per cell the median of each
    pass's steady step, epoch end and compile time (a pass is one more sample of every
    cell); ok only if every pass ran it, equivalent only if every pass found it so.
    Also each cell's spread between passes: its slowest pass's step over its fastest."""
    frames = [frame.assign(pass_index=i) for i, frame in enumerate(passes)]
    every = pd.concat(frames, ignore_index=True)
    rows, spreads = [], {}
    for key, cells in every.groupby(CELL, sort=False):
        first = cells.iloc[0].copy()
        ok = cells[cells["status"] == "ok"]
        if len(ok) < len(cells):
            bad = cells[cells["status"] != "ok"].iloc[0]
            first["status"], first["error"] = bad["status"], bad.get("error")
        else:
            for column in PASS_MEDIANS:
                first[column] = pd.to_numeric(ok[column], errors="coerce").median()
            first["equivalent"] = not any(str(v) == "False" for v in ok["equivalent"])
            steps = ok["step_time_median_s"].astype(float)
            spreads[key] = float(steps.max() / steps.min())
        rows.append(first)
    return pd.DataFrame(rows).reset_index(drop=True), pd.Series(spreads, dtype=float)


def settings(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, device, batch size): fit's step and each style's x fit."""
    rows = []
    for (workload, device, batch), cells in summary.groupby(
        ["workload", "device", "batch_size"], sort=False
    ):
        by_loop = cells.set_index("loop")
        if "fit" not in by_loop.index or by_loop.loc["fit", "status"] != "ok":
            continue
        fit = by_loop.loc["fit"]
        row = {
            "workload": workload,
            "device": device,
            "batch_size": int(batch),
            "fit_step_s": float(fit["step_time_median_s"]),
            "fit_amortized_s": float(fit["real_epoch_step_s"]),
            "fit_compile_s": float(fit["compile_s"]),
        }
        for loop in STYLES:
            ok = loop in by_loop.index and by_loop.loc[loop, "status"] == "ok"
            row[f"{loop}_x"] = float(by_loop.loc[loop, "x_fit_real_epoch"]) if ok else math.nan
            row[f"{loop}_amortized_s"] = (
                float(by_loop.loc[loop, "real_epoch_step_s"]) if ok else math.nan
            )
            row[f"{loop}_compile_s"] = float(by_loop.loc[loop, "compile_s"]) if ok else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def xla_payback(row: pd.Series) -> str:
    """Does XLA's extra compile pay back within one epoch of the real dataset (against fit)?"""
    saving = row["fit_amortized_s"] - row["xla_amortized_s"]
    if not math.isfinite(saving):
        return "xla did not run"
    extra = max(0.0, row["xla_compile_s"] - row["fit_compile_s"])
    epoch_steps = REAL_EPOCH_EXAMPLES.get(row["workload"], 0) // row["batch_size"]
    if saving <= 0:
        return f"no: slower per step than fit ({extra:.1f} s more compile)"
    steps = extra / saving
    verdict = "yes" if steps <= epoch_steps else "no"
    return f"{verdict}: {extra:.1f} s more compile, back after {steps:,.0f} steps (epoch {epoch_steps:,})"


def best_style(row: pd.Series) -> str:
    speeds = {"fit": 1.0} | {
        loop: row[f"{loop}_x"] for loop in STYLES if math.isfinite(row[f"{loop}_x"])
    }
    best = max(speeds, key=speeds.get)
    return f"{best} ({speeds[best]:.2f}x)"


def problems(summary: pd.DataFrame) -> list[str]:
    """One line per cell that did not run or was not equivalent, with its reason."""
    lines = []
    for _, cell in summary.iterrows():
        where = f"{cell['workload']} / {cell['loop']} / batch {int(cell['batch_size'])}"
        if cell["status"] != "ok":
            lines.append(f"- {where}: {cell['status']}: {cell.get('error')}")
        elif cell.get("equivalent") is False or str(cell.get("equivalent")) == "False":
            expected = cell.get("equal_work_reference_loss")
            lines.append(
                f"- {where}: not equivalent: loss {cell['equal_work_loss']:.6g} after "
                f"{int(cell['equal_work_steps'])} steps against eager's "
                f"{expected if isinstance(expected, str) else _eager_loss(summary, cell):.6g} "
                f"(tolerance {cell['equivalence_rtol']:.0e} relative)"
            )
    return lines


def _eager_loss(summary: pd.DataFrame, cell: pd.Series) -> float:
    same = summary[
        (summary["workload"] == cell["workload"])
        & (summary["batch_size"] == cell["batch_size"])
        & (summary["loop"] == "eager")
    ]
    if len(same):
        return float(same["equal_work_loss"].iloc[0])
    return float(cell.get("equal_work_reference_loss", math.nan))


def rule(table: pd.DataFrame) -> str:
    """The rule, in sentences with their numbers, from the settings' cells."""
    graph_best = table[[f"{loop}_x" for loop in GRAPH_STYLES]].max(axis=1)
    fast = table["fit_step_s"] < FAST_BELOW_S
    slow = table["fit_step_s"] >= SLOW_ABOVE_S
    middle = ~fast & ~slow

    def spread(values: pd.Series, what: str, digits: int) -> str:
        """``values``' median, count and range, e.g. "1.35x fit (median of 4, 0.60x to 1.66x)"."""
        values = values.dropna()
        if values.empty:
            return "no cell"
        return (
            f"{values.median():.{digits}f}x {what} (median of {len(values)}, "
            f"{values.min():.{digits}f}x to {values.max():.{digits}f}x)"
        )

    def span(values: pd.Series) -> str:
        return spread(values, "fit", 2)

    def cost(values: pd.Series) -> str:
        """eager's x fit as what it costs: times fit's step."""
        return spread(1 / values, "fit's step", 0)

    def verdict(values: pd.Series) -> str:
        median = values.dropna().median()
        if not math.isfinite(median):
            return "no cell ran"
        if median > 1 + PRACTICAL:
            return "a compiled custom loop beats fit"
        if median < 1 - PRACTICAL:
            return "fit beats every compiled custom loop"
        return "a compiled custom loop costs nothing against fit, and gains nothing"

    ranges = [
        (f"Below about {FAST_BELOW_S * 1e3:.0f} ms a fit step", fast),
        (f"From {FAST_BELOW_S * 1e3:.0f} to {SLOW_ABOVE_S * 1e3:.0f} ms", middle),
        (f"Above about {SLOW_ABOVE_S * 1e3:.0f} ms", slow),
    ]
    sentences = []
    for where, mask in ranges:
        within = int(((graph_best[mask] - 1).abs() <= PRACTICAL).sum())
        sentences.append(
            f"{where}, {verdict(graph_best[mask])}: the best of tf_function, tf_data and xla "
            f"runs at {span(graph_best[mask])}, {within} of {int(mask.sum())} settings within "
            f"±{PRACTICAL:.0%} of fit; eager costs {cost(table.loc[mask, 'eager_x'])}."
        )
    return " ".join(sentences)


def figure(summary: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    fit_step = {(r.workload, r.device, r.batch_size): r.fit_step_s for r in table.itertuples()}
    fig, ax = plt.subplots(figsize=(8, 5))
    for loop in STYLES:
        cells = summary[(summary["loop"] == loop) & (summary["status"] == "ok")]
        xs, ys, hollow = [], [], []
        for _, cell in cells.iterrows():
            key = (cell["workload"], cell["device"], int(cell["batch_size"]))
            if key not in fit_step or not math.isfinite(cell["x_fit_real_epoch"]):
                continue
            xs.append(fit_step[key] * 1e3)
            ys.append(float(cell["x_fit_real_epoch"]))
            hollow.append(str(cell.get("equivalent")) == "False")
        face = [("none" if h else COLORS[loop]) for h in hollow]
        ax.scatter(xs, ys, label=loop, edgecolors=COLORS[loop], facecolors=face, s=36)
    ax.axhline(1.0, color="black", lw=0.8, label="fit")
    ax.axhspan(1 - PRACTICAL, 1 + PRACTICAL, color="grey", alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fit's steady step time (ms, log)")
    ax.set_ylabel("x fit (times faster than fit per step over a real epoch)")
    ax.set_title("When a custom loop costs you: every atlas cell (hollow: not equivalent)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def document(run_dirs: list[Path], figure_path: Path, doc_path: Path, notes: list[str] = ()) -> str:
    combined, spreads = combine([read_summary(run_dir) for run_dir in run_dirs])
    summary = with_real_epoch_speedups(combined)
    runs = [read_metadata(run_dir) for run_dir in run_dirs]
    metadata = runs[0]
    soft, hard = metadata.get("soft", {}), metadata.get("hard", {})
    table = settings(summary)
    figure(summary, table, figure_path)
    fastest, slowest = table["fit_step_s"].min(), table["fit_step_s"].max()
    lines = [
        "# The atlas: when a custom loop costs you, across the Keras examples people copy",
        "",
        "Generated by `tools/atlas_report.py` from the run below (`nox -s atlas`); do not edit",
        "by hand. The models are in [examples/atlas/](../examples/atlas/), each a small faithful",
        "version of a Keras example on random data of its dataset's shape; the method of equal",
        "work with randomness in the step is in [the section below](#randomness-in-the-step).",
        "",
        *(
            f"- Run{' (pass ' + str(i + 1) + ')' if len(runs) > 1 else ''}: "
            f"`{run.get('run_id')}`, {run['soft'].get('started_at')} to "
            f"{run['soft'].get('ended_at')}, "
            f"{run.get('config', {}).get('processes', '?')} process(es) a cell"
            for i, run in enumerate(runs)
        ),
        f"- Machine: {hard.get('cpu_model')}, {hard.get('visible_cores')} cores, "
        f"GPUs: {len(soft.get('gpus') or [])}; TensorFlow {soft.get('tensorflow')}, "
        f"Keras {soft.get('keras')}; commit {str(soft.get('git_commit'))[:7]}"
        + (" (uncommitted changes)" if soft.get("git_dirty") else ""),
        f"- Command: `{soft.get('command')}`",
        f"- Fit's step spans {fastest * 1e3:.2f} ms to {slowest * 1e3:.0f} ms "
        f"({math.log10(slowest / fastest):.1f} decades) over {len(table)} settings",
        *(
            [
                f"- {len(runs)} passes, each cell's figures the median over them; a cell's "
                f"slowest pass over its fastest: median {spreads.median():.2f}x, "
                f"90th percentile {spreads.quantile(0.9):.2f}x, largest {spreads.max():.2f}x "
                "(how far one pass can be trusted on this machine)"
            ]
            if len(runs) > 1 and len(spreads)
            else []
        ),
        *(f"- {note}" for note in notes),
        "",
        "## The rule",
        "",
        rule(table),
        *(
            [
                "",
                f"How much of it stands: the passes disagree by a median {spreads.median():.2f}x "
                "per cell, more than the ±5% a claim needs. A figure larger than that spread "
                "stands here (eager's cost, and how it falls as fit's step grows); the compiled "
                "loops' x fit, mostly within that spread of 1, needs a quiet machine and 2 or "
                "more processes a cell (the session's default) before it is believed.",
            ]
            if len(spreads) and spreads.median() > 1 + PRACTICAL
            else []
        ),
        "",
        f"![every cell](images/{figure_path.name})",
        "",
        "x is fit's steady step of the cell's model and batch size; y is fit's step over the",
        "style's, each over one epoch of the real dataset (the steady step plus the per-epoch",
        "cost, fit's epoch end, spread over that epoch's steps; above 1: faster than fit). The",
        "grey band is ±5%, the gate's threshold of a practical difference. x fit in the tables",
        "is the same figure.",
        "",
        "## Per model",
        "",
        "| model (Keras example) | batch | fit step ms | best style (x fit) | eager costs (x fit's step) "
        "| XLA pays back within one real epoch? |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values("fit_step_s").iterrows():
        example = EXAMPLE_OF.get(row["workload"], "")
        lines.append(
            f"| {row['workload']} ({example}) | {row['batch_size']} | "
            f"{row['fit_step_s'] * 1e3:.2f} | {best_style(row)} | {1 / row['eager_x']:.1f}x | "
            f"{xla_payback(row)} |"
        )
    found = problems(summary)
    diagnosed = sorted({line.split(" / ")[0][2:] for line in found} & set(DIAGNOSIS))
    found += [f"\n{name}: {DIAGNOSIS[name]}." for name in diagnosed]
    lines += [
        "",
        "## Cells that did not run or were not equivalent",
        "",
        *(found or ["None: every cell ran and was equivalent."]),
        "",
    ]
    lines += METHOD.splitlines()
    text = "\n".join(lines) + "\n"
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(text)
    return text


METHOD = """## How the atlas is run

`nox -s atlas` runs `loopbench run` once over every model of examples/atlas/, the
guide's MLP (examples/keras_guide_mlp.py) and the seed GAN (`--workload gan`: two
optimizers, which the `--model` format does not take), in all five loop styles, at
batch 16 and 128, 2 worker processes a cell (the header says what a record ran),
on every device present (CPU here), then this script. `nox -s atlas -- --quick`
runs batch 32, one process a cell and short windows. Both cut the training data
to a few thousand examples (`--data-size`), because fit trains two epochs in each process to time its epoch end; "pays back
within one real epoch" uses the real dataset's size instead (REAL_EPOCH_EXAMPLES in
tools/atlas_report.py). A cell's figures are measured as every run measures them
(docs/methodology.md); XLA's extra compile is the xla cell's compile time less fit's.

## Randomness in the step

Dropout (mnist_convnet, text_transformer, wide_deep) draws its masks inside the
step with TensorFlow's stateless random ops. In eager and graph mode and under XLA
they get the same Philox key, counter and bits, but turn the bits into floats
differently: TensorFlow's kernel keeps the low 23 bits as the mantissa
(`Uint32ToFloat`, tensorflow/core/lib/random/random_distributions_utils.h), XLA the
high 23 (`ConvertRandomBitsToUniformFloatingPoint`, xla/hlo/builder/lib/prng.cc). So
under `jit_compile` dropout kept other units, and a Transformer with Dropout(0.1)
trained differently (a user saw 0.7988 against 0.7778 after 6 steps).

Equal work here means the same masks in every style: the suite makes XLA map the
bits as TensorFlow's kernel does (loops/xla_random.py, installed by the xla style
and by fit with jit_compile on). The draws are then bit-identical to eager's; the
cost is what XLA's own conversion costs (one bit generator and three element-wise
ops, fused). Eager and graph mode run TensorFlow's kernel untouched. Left as they
are: normal and truncated-normal draws (the VAE feeds its noise as data instead)
and float16/bfloat16 uniform draws. The options weighed are in
[decision 0012](decisions/0012-same-random-numbers-under-xla.md).

`equivalent` is filled in every run: when eager is not among the styles, the first
process of each cell trains a fresh copy eagerly for the equal-work steps after its
timing, untimed, and compares with that (`equal_work_reference_loss`).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="+", help="one or more passes")
    parser.add_argument("--doc", type=Path, default=Path("docs/atlas.md"))
    parser.add_argument("--figure", type=Path, default=Path("docs/images/atlas.png"))
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the header (the load, ...)"
    )
    args = parser.parse_args(argv)
    for run_dir in args.run_dir:
        if not (run_dir / "summary.csv").is_file():
            print(f"atlas_report: {run_dir} has no summary.csv", file=sys.stderr)
            return 2
    document(args.run_dir, args.figure, args.doc, args.note)
    print(f"wrote {args.doc} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
