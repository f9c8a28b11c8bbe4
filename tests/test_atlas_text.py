"""The atlas's text models (examples/atlas/) train alike in all five loop styles, at
tiny sizes; the image and tabular ones are tests/test_atlas.py.

How: tests/atlas_training.py. Dropout (text_transformer) draws its masks in the step:
under XLA too they must be eager's (loops/xla_random.py).
"""

from __future__ import annotations

import pytest

from tests.atlas_training import TEXT_MODELS, check_trains_alike


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_every_loop_style_trains_alike(name):
    check_trains_alike(name)
