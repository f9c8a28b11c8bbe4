"""docs/adding-an-axis.md's example section runs as written, on a real run with a knob.

The recipe is the one place that shows how an axis joins the report; this test keeps
it true: its section file is taken from the doc, pointed at the ``precision`` key (a
key the stored knob run varies) instead of the doc's imagined ``remat``, and its three
hooks must give rows, sentences and a table.
"""

from __future__ import annotations

import re
import types

from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.common import Context, Heading, Table
from tf_loopbench.reports.report.derived import derive
from tf_loopbench.reports.rundir import load_runs

from tests.conftest import ROOT

RECIPE = ROOT / "docs" / "adding-an-axis.md"
KNOB_RUN = ROOT / "tests" / "fixtures" / "knob_run"


def recipe_section() -> types.ModuleType:
    """The doc's whole-section example, as a module, with KEY set to precision."""
    examples = re.findall(r"```python\n(.*?)```", RECIPE.read_text(), flags=re.S)
    (source,) = [code for code in examples if "def blocks(context" in code]
    assert 'KEY = "remat"' in source
    module = types.ModuleType("recipe_section")
    exec(compile(source.replace('KEY = "remat"', 'KEY = "precision"'), str(RECIPE), "exec"),
         module.__dict__)  # fmt: skip
    return module


def test_the_recipes_section_runs_on_a_run_with_that_key():
    section = recipe_section()
    derived = derive(RunSet.of(load_runs([KNOB_RUN])))
    rows = section.rows(derived)
    assert not rows.empty and set(rows["against_precision"]) == {"float32"}
    assert (rows["precision"] != "float32").all()
    sentences = section.sentences(derived)
    assert len(sentences) == len(rows) and all(s.text.startswith("On ") for s in sentences)
    blocks = section.blocks(Context(derived, tuple(sentences)))
    assert isinstance(blocks[0], Heading) and any(isinstance(b, Table) for b in blocks)


def test_the_recipe_names_files_that_exist():
    """Every repository path the recipe names is there."""
    text = RECIPE.read_text()
    paths = set(re.findall(r"`((?:reports|loops|benchmarks|tests)/[\w/]+\.py)", text))
    assert paths, "the recipe names no file"
    missing = sorted(p for p in paths if not (ROOT / p).exists() and "<key>" not in p)
    assert not missing, missing
