"""tf-loopbench from Python: ``run`` and ``report``, for notebooks and scripts.

A thin layer over the command line: ``run(...)`` takes the options of
``loopbench run`` as keyword arguments and runs it; ``report(...)`` renders
report.md, report.html and plots as ``loopbench report`` does. It holds no logic
of its own. Example::

    import tf_loopbench

    result = tf_loopbench.run(model="examples/keras_guide_mlp.py:make", quick=True, report=False)
    print(result.cells[["loop", "step_time_median_s", "speedup_vs_fit", "equivalent"]])
    tf_loopbench.report(result.run_dir)  # report.md, report.html and plots/

Running a model runs its code (the file is imported in every worker process).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Result", "run", "report"]

#: the folders mapped into this namespace (pyproject.toml's package-dir):
#: tf_loopbench.loops from loops/, and so on (docs/decisions/0007-one-namespace.md)
SUBPACKAGES = ("loops", "benchmarks", "reports")


def _source_checkout_path() -> list[str]:
    """In a source checkout that is not installed (``loopbench ab``'s base worktree, a
    tool run from the repository), the mapped folders sit beside this one: look there.
    An installed copy has them inside this folder, and nothing is added."""
    root = Path(__file__).resolve().parent.parent
    beside = all((root / name / "__init__.py").is_file() for name in SUBPACKAGES)
    inside = all((Path(__file__).parent / name).is_dir() for name in SUBPACKAGES)
    return [str(root)] if beside and not inside and (root / "pyproject.toml").is_file() else []


__path__ += _source_checkout_path()  # noqa: F821  (a package's own __path__)


class Result(NamedTuple):
    """What ``run`` returns: the run's cells as the reports read them, and where it is."""

    #: summary.csv: one row per cell (workload, loop, device, batch_size, width) with
    #: the step times, intervals, speedups, equal work and ``equivalent``
    cells: Any  # pandas.DataFrame
    run_dir: Path


def run(model: Any = None, *, report: bool = True, **options: Any) -> Result:
    """Run ``loopbench run`` with ``options`` (its long options, ``-`` as ``_``).

    ``model``: ``"PATH.py:FUNCTION"``, ``"module:FUNCTION"``, a module-level function,
    a model dict (what FUNCTION returns), or a list of these. Other options as on the
    command line: ``workload``, ``loop`` (a name or a list), ``device``,
    ``batch_size`` (an int or a list), ``quick=True``, ``processes``, ``steps``,
    ``data_size``, ``out``, ...; ``report=False`` skips report.md/report.html.
    Bad input raises ValueError with the command line's one-line message.

    Example::

        result = tf_loopbench.run(model=make, loop=["fit", "tf_function"], processes=3)
        result.cells.set_index("loop")["speedup_vs_fit"]
    """
    from tf_loopbench.benchmarks import cli
    from tf_loopbench.benchmarks.user_models import model_source
    from tf_loopbench.loops.model_spec import ModelSpecError
    from tf_loopbench.reports.rundir import load_run

    models = model if isinstance(model, list | tuple) else [] if model is None else [model]
    with tempfile.TemporaryDirectory(prefix="loopbench-models-") as directory:
        try:
            sources = [model_source(m, directory, i) for i, m in enumerate(models)]
        except ModelSpecError as exc:
            raise ValueError(str(exc)) from None
        argv = ["run", *(arg for source in sources for arg in ("--model", source))]
        argv += _options(options)
        if not report:
            argv.append("--no-report")
        messages = io.StringIO()
        try:
            with contextlib.redirect_stderr(messages):
                args = cli.build_parser().parse_args(argv)
        except SystemExit:  # argparse's own errors: one line, as on the command line
            message = messages.getvalue().strip().removeprefix("loopbench: error: ")
            raise ValueError(message) from None
        try:
            status = cli.command_run(args)
        except (cli.UsageError, KeyError) as exc:  # KeyError: an unknown registry name
            raise ValueError(str(exc)) from None
    if status == cli.EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    return Result(load_run(args.run_dir).summary, Path(args.run_dir))


def report(
    run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
) -> Path:
    """Render report.md, report.html and plots/ for one or several runs (as
    ``loopbench report``; ``epochs``: the time-to-train figure's E, by default the
    command's); returns the directory they are in (a single run's own)."""
    from tf_loopbench.reports.report import write_report
    from tf_loopbench.reports.rundir import DEFAULT_EPOCHS

    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if isinstance(run_dirs, str | os.PathLike):
        run_dirs = [run_dirs]
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs {epochs!r}: must be a positive integer")
    return Path(write_report(list(run_dirs), out, epochs=epochs))


def _options(options: dict[str, Any]) -> list[str]:
    """``batch_size=[32, 64]`` -> ``--batch-size 32,64``; ``quick=True`` -> ``--quick``."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list | tuple):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv
