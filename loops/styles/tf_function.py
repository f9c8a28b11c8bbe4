"""tf_function: the eager loop with the step inside ``tf.function`` (one change: graph mode)."""

from __future__ import annotations

from tf_loopbench.loops.base import LOOPS
from tf_loopbench.loops.styles.custom import GraphLoop


@LOOPS.register("tf_function")
class TfFunction(GraphLoop):
    description = "as eager, with the step in tf.function (graph mode)"
    compares_with = "eager"
    changes = "graph mode"
