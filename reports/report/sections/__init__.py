"""The report as a list of sections, as Keras runs a list of callbacks.

A section is a module with one entry point, ``blocks(context) -> list[Block]``: its part
of the document, rendered with ``reports.report.common`` from ``context.derived`` (the
comparison core's rows and the figures derived from them). A section that has sentences
for the Decisions, or plots of its own, adds the hooks the document gathers first, in
the order of SECTIONS: ``sentences(derived) -> list[Decision]`` and
``plots(derived, plots_dir) -> list[Plot]``. The document is the concatenation of the
sections' blocks, in the order of SECTIONS: adding a section is adding it there.
"""

from __future__ import annotations

from pathlib import Path

from tf_loopbench.reports.report.common import Block, Context, Decision, Plot
from tf_loopbench.reports.report.derived import Derived
from tf_loopbench.reports.report.plots import write_plots
from tf_loopbench.reports.report.sections import (
    break_even,
    cells,
    crossovers,
    decisions,
    figures,
    knobs,
    ladder,
    method,
    releases,
    runs,
    speedups,
    strategies,
    throughput,
    time_to_train,
)

#: The report, in order.
SECTIONS = (
    runs,
    ladder,
    decisions,
    releases,
    speedups,
    break_even,
    time_to_train,
    crossovers,
    strategies,
    knobs,
    throughput,
    figures,
    cells,
    method,
)


def sentences(derived: Derived) -> list[Decision]:
    """Every sentence of the Decisions, section by section.

    Example::

        for decision in sentences(derive(RunSet.of(load_runs(["results/RUN"])))):
            print(("" if decision.claim else "(no claim) ") + decision.text)
    """
    hooks = [section.sentences for section in SECTIONS if hasattr(section, "sentences")]
    return [decision for hook in hooks for decision in hook(derived)]


def all_plots(derived: Derived, plots_dir: Path) -> list[Plot]:
    """The report's plots (reports.report.plots), then each section's own."""
    written = write_plots(derived, plots_dir)
    for section in SECTIONS:
        if hasattr(section, "plots"):
            written += section.plots(derived, plots_dir)
    return written


def document(derived: Derived, plots_dir: Path) -> list[Block]:
    """The report as blocks both renderers understand; writes the plots into ``plots_dir``."""
    context = Context(derived, tuple(sentences(derived)), tuple(all_plots(derived, plots_dir)))
    return [block for section in SECTIONS for block in section.blocks(context)]
