"""The report as a list of sections (SECTIONS, in order), as Keras runs a list of callbacks.

A section is a module with ``blocks(context) -> list[Block]``, rendered with
``reports.report.common`` from ``context.derived``; it may add the hooks the document
gathers first: ``sentences(derived) -> list[Decision]`` and ``plots(derived, plots_dir)
-> list[Plot]``. Adding a section is adding it to SECTIONS.
"""

from __future__ import annotations

from pathlib import Path

from tf_loopbench.reports.report.common import Block, Context, Decision
from tf_loopbench.reports.report.derived import Derived
from tf_loopbench.reports.report.plots import write_plots
from tf_loopbench.reports.report.sections import (
    atlas,
    break_even,
    cells,
    crossovers,
    decisions,
    figures,
    knobs,
    ladder,
    method,
    profile,
    releases,
    runs,
    speedups,
    strategies,
    throughput,
    time_to_train,
)

#: In report order: what ran and what it decides first, the cells and the method last.
SECTIONS = (runs, ladder, decisions, releases, speedups, break_even, time_to_train, crossovers)
SECTIONS += (atlas, strategies, knobs, throughput, profile, figures, cells, method)


def sentences(derived: Derived) -> list[Decision]:
    """Every sentence of the Decisions, section by section."""
    hooks = [section.sentences for section in SECTIONS if hasattr(section, "sentences")]
    return [decision for hook in hooks for decision in hook(derived)]


def document(derived: Derived, plots_dir: Path) -> list[Block]:
    """The report as blocks both renderers understand; writes the plots (reports.report.plots,
    then each section's own) into ``plots_dir``."""
    hooks = [section.plots for section in SECTIONS if hasattr(section, "plots")]
    plots = write_plots(derived, plots_dir)
    plots += [p for hook in hooks for p in hook(derived, plots_dir)]
    context = Context(derived, tuple(sentences(derived)), tuple(plots))
    return [block for section in SECTIONS for block in section.blocks(context)]
