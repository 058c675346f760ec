"""Model size and cost: trainable parameters and forward FLOPs, counted on the built graph.

Convention: one multiply-accumulate (MAC) is 2 FLOPs. `forward_flops` counts, by default, only
the convolutions and matrix products (`Conv2D`, `MatMul`: TensorFlow's profiler gives them
2 x MACs, without the bias), the figure papers quote for a network; `ops=None` counts every op
TensorFlow's profiler has a FLOP rule for (also bias adds, batch norm, residual adds, pooling,
the decoder), a few tenths of a per cent more on SAP-Net.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

MATMUL_OPS = ("Conv2D", "MatMul")


def trainable_parameters(model: keras.Model) -> int:
    """Number of trainable scalars (BatchNorm moving statistics are not trainable)."""
    return sum(math.prod(v.shape) for v in model.trainable_weights)


def forward_flops(
    model: keras.Model, input_size: int, ops: Sequence[str] | None = MATMUL_OPS
) -> int:
    """FLOPs of one inference forward pass on one (input_size, input_size, 3) image.

    Traces `model(x, training=False)` into a graph (nothing runs) and sums TensorFlow's
    profiler counts over the op types in `ops` (all ops when None). Counted in the model's
    own compute dtype; FLOPs do not depend on it.

    Args:
        model: a Keras model taking (B, S, S, 3) images.
        input_size: S.
        ops: TensorFlow op type names to count, or None for every op with a FLOP rule.

    Returns:
        int FLOPs (1 MAC = 2 FLOPs).
    """
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((1, input_size, input_size, 3))).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output()
    if ops is not None:
        options = options.account_displayed_op_only(False).with_accounted_types(
            [f"^{op}$" for op in ops]
        )
    info = tf.compat.v1.profiler.profile(graph, cmd="scope", options=options.build())
    return int(info.total_float_ops)
