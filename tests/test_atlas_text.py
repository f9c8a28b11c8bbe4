"""The atlas's text and tabular models (examples/atlas/) train alike in all five loop
styles, at tiny sizes; the image ones are tests/test_atlas.py.

How: tests/atlas_training.py. Dropout (text_transformer, wide_deep) draws its masks in
the step: under XLA too they must be eager's (loops/xla_random.py).
"""

from __future__ import annotations

import pytest

from tests.atlas_training import TEXT_AND_TABLE_MODELS, check_trains_alike


@pytest.mark.parametrize("name", TEXT_AND_TABLE_MODELS)
def test_every_loop_style_trains_alike(name):
    check_trains_alike(name)
