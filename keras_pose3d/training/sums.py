"""Sums whose rounding does not depend on thread scheduling: gradients and Grappler's rewrites.

TensorFlow sums the gradient contributions of a tensor used in several places with one AddN op,
and Grappler's arithmetic optimizer turns chains of adds (`x + a + b`, forward pass included)
into AddN ops too. AddN writes its result into one of its input buffers when no other op still
holds that buffer, and moves that input to the front of the sum (TensorFlow's
`kernels/aggregate_ops.h`). Which input that is depends on which of the other consumers have
finished, i.e. on thread scheduling: on a busy machine the same three float32 inputs are added
in another order, the result differs in its last bits, and training amplifies that into a
different model (docs/design.md, "Runs that repeat").

With two inputs the order cannot matter (a + b == b + a in IEEE arithmetic). So:

* `gradients` sums each tensor's contributions two at a time, in a fixed order (`tf.gradients`
  with the tree aggregation), where `tf.GradientTape` would make one AddN of all of them;
* `fixed_order_sums` turns Grappler's arithmetic optimizer off, which would merge those pairs
  (and the forward pass's chains of adds) back into AddN ops.

`multi_input_sums` lists the AddN ops with more than two inputs left in a function's graph
after Grappler (what `tests/test_determinism.py` checks on the train step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
from tensorflow.python.eager import context


def gradients(loss: tf.Tensor, variables: Sequence) -> list:
    """d loss / d variables, contributions summed pairwise in a fixed order.

    Graph mode only (inside a `tf.function`, where the trainer's step runs); unconnected
    variables get None, like `tf.GradientTape.gradient`.
    """
    return tf.gradients(
        loss, list(variables), aggregation_method=tf.AggregationMethod.EXPERIMENTAL_TREE
    )


def fixed_order_sums() -> None:
    """Grappler's arithmetic optimizer off for the rest of the process (functions traced and
    optimised from now on). Costs nothing measurable on the quickstart (docs/design.md)."""
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


def multi_input_sums(fn: Callable, *args) -> list[tuple[str, int]]:
    """(node name, number of inputs) of every AddN with more than two inputs in the graphs
    TensorFlow runs for `fn(*args)`, after Grappler.

    Call it for the FIRST call of `fn` (a fresh `tf.function`): the run metadata holds the
    optimised graphs of the functions instantiated during the call only, so a later call
    returns [] whatever the graph holds."""
    ctx = context.context()
    ctx.enable_run_metadata()
    try:
        fn(*args)
        metadata = ctx.export_run_metadata()
    finally:
        ctx.disable_run_metadata()
    found = []
    for function_graph in metadata.function_graphs:
        graphs = [function_graph.post_optimization_graph, *function_graph.partition_graphs]
        for graph in graphs:
            nodes = list(graph.node)
            for function in graph.library.function:
                nodes.extend(function.node_def)
            for node in nodes:
                inputs = [i for i in node.input if not i.startswith("^")]
                if node.op == "AddN" and len(inputs) > 2:
                    found.append((node.name, len(inputs)))
    return found
