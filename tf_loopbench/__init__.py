"""tf-loopbench from Python: ``run`` and ``report``, for notebooks and scripts.

The public face of the library: ``run(...)`` takes the options of ``loopbench run``
as keyword arguments, builds the run's request and runs it with the library
function the command line calls too (benchmarks/run.py); ``report(...)`` renders
report.md, report.html and plots as ``loopbench report`` does. It holds no logic
of its own and imports neither TensorFlow nor pandas until called. Example::

    import tf_loopbench

    result = tf_loopbench.run(model="examples/keras_guide_mlp.py:make", quick=True, report=False)
    print(result.cells[["loop", "step_time_median_s", "speedup_vs_fit", "equivalent"]])
    tf_loopbench.report(result.run_dir)  # report.md, report.html and plots/

Running a model runs its code (the file is imported in every worker process).
"""

from __future__ import annotations

import os
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
    """Run ``loopbench run`` with ``options`` (its long options, ``-`` as ``_``: the
    fields of ``tf_loopbench.benchmarks.config.RunRequest``).

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
    from tf_loopbench.benchmarks.config import UsageError
    from tf_loopbench.benchmarks.options import make_request
    from tf_loopbench.benchmarks.run import run as run_request
    from tf_loopbench.benchmarks.user_models import given_models
    from tf_loopbench.reports.rundir import load_run

    try:
        with given_models(model) as sources:  # model dicts are pickled for the workers
            run_dir = run_request(make_request(model=sources, report=report, **options))
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return Result(load_run(run_dir).summary, run_dir)


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
