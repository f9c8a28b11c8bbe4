"""Model FLOPs of a training step, counted by TensorFlow's own tooling on the traced step.

The count comes from the TF profiler (``tf.compat.v1.profiler.profile`` with
``ProfileOptionBuilder.float_operation()``) on the graph of the traced training
step, with the batch shape fixed so every op's shape is known. That tooling
counts FLOPs from each op type's registered statistics: ``MatMul`` as 2*m*n*k,
convolutions and their gradients likewise, and elementwise ops (``BiasAdd``,
``Mul``, ``AddV2``, ``Sum`` ...) as one per output element; ``Relu``/``Tanh``,
their gradients and the cross-entropy kernels are not counted.

The traced graph holds gradients no output needs: a tape watches every
variable the step reads, so a GAN's generator tape also builds the
discriminator's weight gradients. The function runtime prunes them before it
runs the step; the count does the same, keeping only nodes that the step's
outputs and stateful ops (the variable updates) depend on
(``graph_util.extract_sub_graph``).

Model FLOPs (the ``model_flops_per_step`` of a cell, the numerator of MFU) are
those of the matrix products and convolutions (``MODEL_FLOP_OPS``), the same
convention as the built-in workloads' formulas (loops/base.py); tests/test_flops.py
checks those formulas against this count.
"""

from __future__ import annotations

import collections
from typing import Any

#: op types whose FLOPs count as model FLOPs: matrix products and convolutions,
#: forward and backward
MODEL_FLOP_OPS = frozenset(
    {
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
        "Conv2D",
        "Conv2DBackpropInput",
        "Conv2DBackpropFilter",
        "Conv3D",
        "Conv3DBackpropInputV2",
        "Conv3DBackpropFilterV2",
        "DepthwiseConv2dNative",
        "DepthwiseConv2dNativeBackpropInput",
        "DepthwiseConv2dNativeBackpropFilter",
    }
)


def profiled_flops_per_example(workload: Any, batch_size: int = 64) -> dict[str, float]:
    """FLOPs per example of one traced training step of ``workload`` (a
    ``loops.base.Workload``), by op type, as the TF profiler counts them on the
    nodes the step actually runs. Traces the step; runs nothing.

    Example::

        counted = profiled_flops_per_example(WORKLOADS.get("mlp")(WorkloadConfig()), 64)
        counted["MatMul"]  # 409,088 at width 128
    """
    import tensorflow as tf
    from tensorflow.python.profiler import option_builder

    data = workload.make_data()
    state = workload.build()
    spec = {
        name: tf.TensorSpec((batch_size, *array.shape[1:]), tf.as_dtype(array.dtype))
        for name, array in data.train.items()
    }
    graph = (
        tf.function(lambda batch: workload.train_step(state, batch))
        .get_concrete_function(spec)
        .graph
    )
    needed = {t.op.name for t in graph.outputs} | {op.name for op in graph.control_outputs}
    kept = {
        node.name
        for node in tf.compat.v1.graph_util.extract_sub_graph(
            graph.as_graph_def(), sorted(needed)
        ).node
    }
    options = dict(option_builder.ProfileOptionBuilder.float_operation(), output="none")
    root = tf.compat.v1.profiler.profile(graph, cmd="scope", options=options)
    op_types = {op.name: op.type for op in graph.get_operations()}
    by_type: collections.Counter[str] = collections.Counter()
    pending = list(root.children)
    while pending:
        node = pending.pop()
        pending.extend(node.children)
        if node.name in kept:
            by_type[op_types[node.name]] += node.float_ops
    return {op_type: flops / batch_size for op_type, flops in by_type.items()}


def model_flops_per_example(workload: Any, batch_size: int) -> float:
    """Model FLOPs (matrix products and convolutions) of one training step per example."""
    counted = profiled_flops_per_example(workload, batch_size)
    return float(sum(flops for op, flops in counted.items() if op in MODEL_FLOP_OPS))
