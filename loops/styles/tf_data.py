"""tf_data: the tf_function loop fed by a tf.data pipeline (one change: the input)."""

from __future__ import annotations

from tf_loopbench.loops.base import LOOPS
from tf_loopbench.loops.feeders import distributed_tf_data_batches, tf_data_batches
from tf_loopbench.loops.styles.custom import GraphLoop


@LOOPS.register("tf_data")
class TfData(GraphLoop):
    description = "as tf_function, fed whole batches by a prefetching tf.data pipeline"
    compares_with = "tf_function"
    changes = "the input"
    batches = staticmethod(tf_data_batches)
    distributed_batches = staticmethod(distributed_tf_data_batches)
