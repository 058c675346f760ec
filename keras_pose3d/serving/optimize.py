"""What export does to a float32 model before it becomes a serving graph, and the checks on it.

* **BatchNorm folding** (`fold_batch_norms`): a copy of SAP-Net in which every inference-mode
  BatchNormalization that directly follows a convolution is folded into that convolution's
  kernel and bias: with s = gamma / sqrt(moving_var + epsilon) per output channel,
  kernel' = kernel * s and bias' = (bias - moving_mean) * s + beta. The pairs are the
  residual module's conv1 -> bn2 and conv2 -> bn3, the stem's stem_conv -> stem_bn and each
  stack's stack_lin -> stack_bn (`layers.residual`, `layers.hourglass`). The graph is then
  Conv2D -> BiasAdd -> Relu, which TensorFlow's grappler remapper fuses into one `_FusedConv2D`
  on the CPU (`optimized_op_counts` shows it). The pre-activation BN of each residual module
  (bn1) follows an addition, not a convolution, so it cannot be folded; it becomes one
  `FusedBatchNormV3` op in inference mode (same statistics, same formula) instead of Keras's
  eight small ops. The copy is made from the model's config and weights; the model given is not
  touched, and the layers' own `call` code runs (only the BN callables are replaced).
* **Parity** (`check_parity`): outputs of the folded model against the unfolded Keras model
  on a probe batch. `FOLD_TOLERANCE` is relative: max |folded - keras| <= FOLD_TOLERANCE x
  max(1, max |keras|) for each continuous output (heatmaps, depth); the 2D pose is the same
  decoder on those heatmaps. Export refuses a folded model that fails, naming the difference.
* **Reduced-precision TP-Net** (`reduced_precision_tp_net`, `BFloat16TPNet`): TP-Net's two
  4096-wide layers in bfloat16 (oneDNN multiplies bfloat16 and accumulates in float32 on CPUs
  with AVX512-BF16 / AMX), the output head in float32. Half the bytes a batch-1 call reads;
  `TP_NET_BF16_MEAN_MM` and `TP_NET_BF16_MAX_MM` are the stated bounds on the refined pose
  against the float32 model's (checked at export on probe windows, `check_tp_parity`). The
  float32 `.keras` stays the training artefact.
* **TF-Serving batching** (`batching_parameters`): the `BatchingParameters` text proto for
  `--batching_parameters_file` (and per model, `batching_params.pbtxt` in each SavedModel
  version folder, read with `--enable_per_model_batching_parameters`), sized for the model from
  its FLOPs and the serving machine's cores (docstring of `batching_parameters`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from keras_pose3d.layers.hourglass import StackedHourglass
from keras_pose3d.layers.residual import Residual

# Relative parity bound of the folded SAP-Net against the Keras model (module docstring).
# Folding only reorders float32 roundings (measured: 2.5e-6 relative on the paper-size model
# with random BN statistics), so 1e-4 leaves room and still catches a wrong fold, which moves
# outputs by O(1) relative.
FOLD_TOLERANCE = 1e-4
# The continuous outputs compared (pose_2d is the decoder applied to these heatmaps; an argmax
# tie could flip it by one heatmap pixel without anything being wrong).
PARITY_OUTPUTS = ("heatmaps", "depth")
# Bounds on the bfloat16 TP-Net's refined poses against the float32 model's on the probe
# windows, in mm: the mean distance per joint (an MPJPE between the two) and the largest one.
# bfloat16 keeps 8 significant bits, so each weight and activation moves by up to 0.2 %;
# measured on random windows: the paper-size TP-Net (random weights) 0.76 mm mean, 2.4 mm at
# most; two trained ones (window 10 and 20, 1024 and 64 wide, outputs up to 1.8 m) 1.3-1.4 mm
# and 4.8-5.4 mm. On the quickstart test sequences the trained TP-Nets' MPJPE moved by -0.01
# and +0.02 mm (147.94 -> 147.93, 148.90 -> 148.92): independent errors add in quadrature.
TP_NET_BF16_MEAN_MM = 2.0
TP_NET_BF16_MAX_MM = 8.0
REDUCED_PRECISIONS = ("float32", "bfloat16")


class ParityError(ValueError):
    """An optimised serving model whose outputs differ from the Keras model's beyond bound."""


# ----------------------------------------------------------------------------------------------
# BatchNorm folding.
# ----------------------------------------------------------------------------------------------
class _FoldedBatchNorm:
    """Stands where a BN folded into the convolution before it was: nothing left to compute."""

    def __call__(self, x, training=None):
        return x


class _InferenceBatchNorm:
    """A BN with no convolution before it, as one FusedBatchNormV3 op with its moving statistics."""

    def __init__(self, bn: keras.layers.BatchNormalization):
        self.bn = bn

    def __call__(self, x, training=None):
        bn = self.bn
        value = lambda v: getattr(v, "value", v)
        channels = x.shape[-1]
        scale = value(bn.gamma) if bn.scale else tf.ones([channels], x.dtype)
        offset = value(bn.beta) if bn.center else tf.zeros([channels], x.dtype)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x,
            scale,
            offset,
            mean=value(bn.moving_mean),
            variance=value(bn.moving_variance),
            epsilon=bn.epsilon,
            is_training=False,
        )
        return y


def _foldable(conv, bn) -> bool:
    return (
        isinstance(conv, keras.layers.Conv2D)
        and isinstance(bn, keras.layers.BatchNormalization)
        and conv.use_bias
        and conv.data_format == "channels_last"
        and bn.axis in (-1, len(conv.kernel.shape) - 1)
    )


def _fold_into(conv: keras.layers.Conv2D, bn: keras.layers.BatchNormalization) -> None:
    """Assign BN(conv(x)) = conv'(x) into the conv's kernel and bias (float64 arithmetic)."""
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta, np.float64) if bn.center else 0.0
    mean = np.asarray(bn.moving_mean, np.float64)
    var = np.asarray(bn.moving_variance, np.float64)
    s = gamma / np.sqrt(var + bn.epsilon)  # (out,)
    kernel = np.asarray(conv.kernel, np.float64) * s  # (kh, kw, in, out) * (out,)
    bias = (np.asarray(conv.bias, np.float64) - mean) * s + beta
    conv.kernel.assign(kernel.astype(np.float32))
    conv.bias.assign(bias.astype(np.float32))


def _replace(owner, attr: str, index: int | None, replacement) -> None:
    """owner.attr (or owner.attr[index]) = replacement, outside Keras's layer tracking.

    The layers are built and their trackers locked; the replacement is a plain callable that
    the owner's `call` invokes exactly where it invoked the BN. Lists are replaced whole.
    """
    if index is None:
        object.__setattr__(owner, attr, replacement)
    else:
        items = list(getattr(owner, attr))
        items[index] = replacement
        object.__setattr__(owner, attr, items)


def _fold_pairs(layer) -> Iterable[tuple[str, int | None, str, int | None]]:
    """(conv attr, index, bn attr, index) of the conv -> BN pairs `layer.call` applies in a row."""
    if isinstance(layer, Residual):
        yield ("conv1", None, "bn2", None)
        yield ("conv2", None, "bn3", None)
    elif isinstance(layer, StackedHourglass):
        yield ("stem_conv", None, "stem_bn", None)
        for i in range(layer.num_stacks):
            yield ("stack_lin", i, "stack_bn", i)


def _get(owner, attr, index):
    value = getattr(owner, attr)
    return value if index is None else value[index]


def copy_model(model: keras.Model, example_input: np.ndarray) -> keras.Model:
    """A new model of the same config with the same weights (float32 in, float32 out).

    Rebuilt under the float32 policy whatever the global one is: the main job exports in the
    training process, whose policy may be mixed_bfloat16, and a layer built under it would
    compute in bfloat16 (1 % off the float32 model, failing the export's parity check)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
        rebuilt(example_input)
    finally:
        keras.config.set_dtype_policy(previous)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def fold_batch_norms(sap_net: keras.Model) -> tuple[keras.Model, dict]:
    """A copy of the float32 `sap_net` with BatchNorm folded (module docstring).

    Returns:
        (folded model, {"folded": BNs folded into a conv, "fused": BNs left as one
        FusedBatchNormV3 op, "kept": BNs left as Keras computes them}).
    """
    s = int(sap_net.input_size)
    folded = copy_model(sap_net, np.zeros((1, s, s, 3), np.float32))
    counts = collections.Counter(folded=0, fused=0, kept=0)
    done = set()
    for layer in folded._flatten_layers(include_self=False):
        for conv_attr, ci, bn_attr, bi in list(_fold_pairs(layer)):
            conv, bn = _get(layer, conv_attr, ci), _get(layer, bn_attr, bi)
            if not _foldable(conv, bn):
                continue
            _fold_into(conv, bn)
            _replace(layer, bn_attr, bi, _FoldedBatchNorm())
            done.add(id(bn))
            counts["folded"] += 1
        if isinstance(layer, Residual) and isinstance(layer.bn1, keras.layers.BatchNormalization):
            done.add(id(layer.bn1))
            _replace(layer, "bn1", None, _InferenceBatchNorm(layer.bn1))
            counts["fused"] += 1
    counts["kept"] = sum(
        isinstance(layer, keras.layers.BatchNormalization) and id(layer) not in done
        for layer in folded._flatten_layers()
    )
    return folded, dict(counts)


# ----------------------------------------------------------------------------------------------
# Parity.
# ----------------------------------------------------------------------------------------------
def sap_net_probe(input_size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """The probe batch of the export's parity check: uniform [0, 1] images."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (batch, input_size, input_size, 3)).astype(np.float32)


def max_relative_differences(reference: dict, candidate: dict, keys=PARITY_OUTPUTS) -> dict:
    """{key: max |candidate - reference| / max(1, max |reference|)} over the given outputs."""
    out = {}
    for key in keys:
        ref = np.asarray(reference[key], np.float64)
        got = np.asarray(candidate[key], np.float64)
        out[key] = float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))
    return out


def check_parity(
    reference: keras.Model,
    candidate,
    probe: np.ndarray,
    tolerance: float = FOLD_TOLERANCE,
    what: str = "the BatchNorm-folded SAP-Net",
) -> dict:
    """Refuse `candidate` (a model or a function of images) whose outputs leave the bound.

    Returns the differences ({output: relative max difference}) when within `tolerance`.

    Raises:
        ParityError: naming the output, its max difference and the tolerance.
    """
    ref = reference(probe, training=False)
    got = candidate(tf.constant(probe))
    diffs = max_relative_differences(ref, got)
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tolerance:  # also refuses NaN
        raise ParityError(
            f"{what} differs from the Keras model: max relative difference {diffs[worst]:.3g} "
            f"in {worst!r} on the probe batch (tolerance {tolerance:g}); not exported"
        )
    return diffs


def tp_net_probe(window: int, num_joints: int, batch: int = 64, seed: int = 0) -> np.ndarray:
    """Probe windows (B, N, J, 3) mm: a random pose per window (300 mm spread), each frame
    moved by a random walk of 10 mm steps, the shape of real root-relative sequences."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(0.0, 300.0, (batch, 1, num_joints, 3))
    walk = np.cumsum(rng.normal(0.0, 10.0, (batch, window, num_joints, 3)), axis=1)
    return (pose + walk).astype(np.float32)


def check_tp_parity(
    reference: keras.Model,
    candidate,
    probe: np.ndarray,
    mean_mm: float = TP_NET_BF16_MEAN_MM,
    max_mm: float = TP_NET_BF16_MAX_MM,
) -> dict:
    """Distances per joint between the candidate's refined poses and the float32 model's.

    Returns {"mean_mm": mean distance per joint, "max_mm": largest} when within both bounds.

    Raises:
        ParityError: naming both distances and the bounds.
    """
    ref = np.asarray(reference(probe, training=False), np.float64)
    got = np.asarray(candidate(tf.constant(probe)), np.float64)
    distance = np.linalg.norm(got - ref, axis=-1)  # (B, J)
    found = {"mean_mm": float(np.mean(distance)), "max_mm": float(np.max(distance))}
    if not (found["mean_mm"] <= mean_mm and found["max_mm"] <= max_mm):
        raise ParityError(
            "the reduced-precision TP-Net differs from the float32 model by "
            f"{found['mean_mm']:.3g} mm per joint on average, {found['max_mm']:.3g} mm at most, "
            f"on the probe windows (bounds {mean_mm:g} and {max_mm:g} mm); not exported"
        )
    return found


# ----------------------------------------------------------------------------------------------
# Reduced-precision TP-Net.
# ----------------------------------------------------------------------------------------------
class BFloat16TPNet(tf.Module):
    """TPNet's inference pass with bfloat16 weights (module docstring), callable like TPNet.

    Same maths as `TPNet.call` at inference (dropout off): flatten, / scale_mm, fc1 + ReLU,
    fc2 + ReLU, head, x scale_mm. fc1 and fc2 run in bfloat16, kernels and biases stored so,
    each written as MatMul + BiasAdd + Relu, which grappler fuses into one oneDNN inner
    product (bfloat16 products, float32 accumulation). Unfused, a bfloat16 MatMul goes to
    oneDNN's AMX matmul, which re-lays the kernel out on every call and was slower than
    float32 at batch 1. The output head (0.8 MB at paper size) stays float32, as in training.
    Splitting the window into two bfloat16 halves (hi + lo, ~16 bits) was tried: 6 % closer to
    float32, 25 % slower (fc1 then cannot be fused). Bounds: `TP_NET_BF16_MEAN_MM`,
    `TP_NET_BF16_MAX_MM`.

    Carries what `signatures.TPNetServing` reads of a TPNet: window, num_joints, mode,
    frame_rate, variables.
    """

    def __init__(self, tp_net: keras.Model):
        super().__init__(name="tp_net_bf16")
        for attr in ("window", "num_joints", "mode", "frame_rate", "hidden", "scale_mm"):
            setattr(self, attr, getattr(tp_net, attr))
        weight = lambda v, dtype: tf.Variable(
            tf.cast(np.asarray(v, np.float32), dtype), trainable=False
        )
        self.w1 = weight(tp_net.fc1.kernel, tf.bfloat16)
        self.b1 = weight(tp_net.fc1.bias, tf.bfloat16)
        self.w2 = weight(tp_net.fc2.kernel, tf.bfloat16)
        self.b2 = weight(tp_net.fc2.bias, tf.bfloat16)
        self.w3 = weight(tp_net.head.kernel, tf.float32)
        self.b3 = weight(tp_net.head.bias, tf.float32)

    def __call__(self, poses, training=None):
        inputs = self.window * self.num_joints * 3
        x = tf.reshape(tf.cast(poses, tf.float32), [-1, inputs]) / self.scale_mm  # (B, N*J*3)
        h = tf.nn.relu(tf.nn.bias_add(tf.matmul(tf.cast(x, tf.bfloat16), self.w1), self.b1))
        h = tf.nn.relu(tf.nn.bias_add(tf.matmul(h, self.w2), self.b2))  # (B, H) bfloat16
        out = tf.nn.bias_add(tf.matmul(tf.cast(h, tf.float32), self.w3), self.b3)  # (B, J*3)
        return tf.reshape(out, [-1, self.num_joints, 3]) * self.scale_mm


def reduced_precision_tp_net(tp_net: keras.Model, precision: str = "bfloat16"):
    """The float32 TP-Net at `precision`: itself for "float32", `BFloat16TPNet` for "bfloat16"."""
    if precision not in REDUCED_PRECISIONS:
        raise ValueError(f"precision must be one of {REDUCED_PRECISIONS}. Received: {precision!r}")
    return tp_net if precision == "float32" else BFloat16TPNet(tp_net)


# ----------------------------------------------------------------------------------------------
# TF-Serving batching parameters.
# ----------------------------------------------------------------------------------------------
# Batch-1 cost estimate for the timeout: FLOPs at this rate per core (about what the float32
# serving graphs reach on an AVX-512 core; docs/benchmarks.md).
NOMINAL_FLOPS_PER_CORE = 50e9
# The most a request waits for others: TF-Serving's guide suggests "slightly above zero, e.g.
# 1 millisecond" for CPU serving.
MAX_BATCH_TIMEOUT_MICROS = 1000


def tp_net_flops(tp_net: keras.Model) -> int:
    """Forward FLOPs of one window (2 x the dense layers' multiply-accumulates)."""
    return int(sum(2 * np.prod(v.shape) for v in tp_net.weights if len(v.shape) == 2))


def batching_parameters(flops_per_example: float, max_batch_size: int, cores: int) -> dict:
    """TF-Serving BatchingParameters sized for a model (values, see `batching_text`).

    * num_batch_threads = the serving machine's cores (the guide's CPU setting);
    * max_enqueued_batches = num_batch_threads: online serving with bounded latency (a full
      queue answers UNAVAILABLE at once instead of queueing requests past their deadline);
    * max_batch_size: the largest batch the model is measured at (SAP-Net 32, TP-Net 128);
    * batch_timeout_micros: a request waits for others at most a tenth of its own batch-1 cost
      (FLOPs / (cores x NOMINAL_FLOPS_PER_CORE)), and never more than 1 ms.
    """
    if cores < 1 or max_batch_size < 1:
        raise ValueError(f"cores and max_batch_size must be >= 1: {cores}, {max_batch_size}")
    seconds = flops_per_example / (cores * NOMINAL_FLOPS_PER_CORE)
    timeout = int(min(MAX_BATCH_TIMEOUT_MICROS, round(0.1 * seconds * 1e6)))
    return {
        "max_batch_size": int(max_batch_size),
        "batch_timeout_micros": timeout,
        "num_batch_threads": int(cores),
        "max_enqueued_batches": int(cores),
    }


def batching_text(params: dict) -> str:
    """BatchingParameters text proto (each field a wrapped int64: `name { value: N }`)."""
    order = ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
    return "".join(f"{key} {{ value: {int(params[key])} }}\n" for key in order)


def parse_batching_text(text: str) -> dict:
    """Inverse of `batching_text` (for tests and tools): {field: int}."""
    import re

    return {m[0]: int(m[1]) for m in re.findall(r"(\w+)\s*\{\s*value:\s*(-?\d+)\s*\}", text)}


# ----------------------------------------------------------------------------------------------
# Graph inspection.
# ----------------------------------------------------------------------------------------------
def optimized_op_counts(concrete_function) -> collections.Counter:
    """Op types of a concrete function's graph after grappler's default CPU optimisation.

    What the TensorFlow runtime (TF-Serving included) runs: the remapper's fusions show with
    what they fused, e.g. `_FusedConv2D[BiasAdd,Relu]`. Every node is placed on
    the CPU first (the remapper's CPU fusions only apply to CPU nodes).
    """
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(concrete_function.graph.as_graph_def())
    for node in meta.graph_def.node:
        node.device = "/device:CPU:0"
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(t.name for t in concrete_function.outputs)
    meta.collection_def["train_op"].CopyFrom(fetch)
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)
    nodes = list(optimized.node)
    for function in optimized.library.function:
        nodes.extend(function.node_def)
    return collections.Counter(_op_name(n) for n in nodes)


def _op_name(node) -> str:
    """The op type; a fused op with what it fused, e.g. `_FusedConv2D[BiasAdd,Relu]`."""
    if "fused_ops" not in node.attr:
        return node.op
    fused = ",".join(op.decode() for op in node.attr["fused_ops"].list.s)
    return f"{node.op}[{fused}]"
