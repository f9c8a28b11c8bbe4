"""The regression gate: is the current run slower than the baseline, cell by cell?

``samples``, ``stats`` (the decision rule), ``judge`` (the verdicts), ``render``, ``baseline``
(stored baselines); the method and the exit statuses (0 no confirmed regression, 1 one, 2 the
runs cannot be compared, 3 blind with ``fail_if_blind``): docs/gate.md. :func:`command` is what
``loopbench compare`` runs::

    status = command("results/base", "results/head", markdown="compare.md")
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tf_loopbench.reports.gate.judge import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    EXIT_INCOMPARABLE,
    Comparison,
    IncomparableRunsError,
    compare,
)
from tf_loopbench.reports.gate.render import markdown_note, render_markdown, render_text
from tf_loopbench.reports.rundir import RunDirError, atomic_write_text


def command(
    baseline: str | os.PathLike[str],
    current: str | os.PathLike[str],
    markdown: str | os.PathLike[str] | None = None,
    **options: Any,
) -> int:
    """Compare (``options``: those of :func:`compare`), print the table, write the Markdown;
    return the exit status (0-3)."""
    try:
        result = compare(baseline, current, **options)
    except (RunDirError, IncomparableRunsError) as exc:
        message = f"cannot compare: {exc}"
        print(message, file=sys.stderr)
        if markdown is not None:
            atomic_write_text(markdown, markdown_note(message))
        return EXIT_INCOMPARABLE
    print(render_text(result), end="")
    if markdown is not None:
        atomic_write_text(markdown, render_markdown(result))
    return result.exit_status


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_THRESHOLD",
    "Comparison",
    "IncomparableRunsError",
    "command",
    "compare",
    "render_markdown",
    "render_text",
]
