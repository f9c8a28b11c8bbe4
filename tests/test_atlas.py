"""The atlas's image and tabular models (examples/atlas/) train alike in all five loop
styles, at tiny sizes; the text models are tests/test_atlas_text.py.

How: tests/atlas_training.py. Dropout (mnist_convnet, wide_deep) draws its masks in
the step: under XLA too they must be eager's (loops/xla_random.py). resnet_cifar's and
wide_deep's BatchNormalization and conv_vae's own train_step are compared on their
equal-work loss (``Workload.equal_work_loss``, docs/atlas-method.md). The seed GAN,
the atlas's seventh family, is the built-in ``gan`` workload (tests/test_equivalence.py).
"""

from __future__ import annotations

import pytest

from tests.atlas_training import ATLAS, IMAGE_AND_TABLE_MODELS, TEXT_MODELS, check_trains_alike


def test_every_atlas_model_is_tested():
    assert {p.stem for p in ATLAS.glob("*.py")} == set(IMAGE_AND_TABLE_MODELS + TEXT_MODELS)


@pytest.mark.parametrize("name", IMAGE_AND_TABLE_MODELS)
def test_every_loop_style_trains_alike(name):
    check_trains_alike(name)
