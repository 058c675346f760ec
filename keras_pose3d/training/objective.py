"""The training objective: which loss term applies to which sample, and how terms are summed.

The formulas live in `keras_pose3d.losses`; the custom-loss layers of
`keras_pose3d.layers.loss_layers` wrap them and apply each term's weight, built here from the
config (`LossConfig.weight`, the one place that maps a term to its weight, λ_g, λ_a, λ_s of Eq. 3
included). This module decides which samples each term applies to and sums the terms.

* `heatmap`: every sample (visibility-weighted inside the loss).
* `depth`: 3D samples only (`has_3d`).
* `geometric`, `illegal_angle`, `symmetry` (Eq. 3, L_SA): on the pose made of the ground-truth
  2D and the predicted depth, over limbs whose joints are all annotated (an unannotated MPII
  joint has no meaningful x, y), as Eq. 3 writes it; on 2D-only samples (`loss.weak_on: 2d_only`,
  Zhou et al.'s reading and the default) or on every sample (`all`).

Per-sample (weighted) values are summed and divided by the GLOBAL batch size, so that summing gradients
over replicas (what MirroredStrategy does) gives the single-device mean: a per-replica mean would
apply `num_replicas` times the update.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from keras_pose3d.config import LossConfig
from keras_pose3d.layers import loss_layers

WEAK_TERMS = ("geometric", "illegal_angle", "symmetry")


@functools.cache
def loss_layers_for(cfg: LossConfig) -> dict:
    """{term: custom-loss layer} with the config's weights (one set per config: the layers hold
    no variables, so a traced train step may reuse them)."""
    return {
        "heatmap": loss_layers.HeatmapLoss(weight=cfg.weight("heatmap")),
        "depth": loss_layers.DepthLoss(weight=cfg.weight("depth")),
        "geometric": loss_layers.GeometricLoss(weight=cfg.weight("geometric")),
        "illegal_angle": loss_layers.IllegalAngleLoss(weight=cfg.weight("illegal_angle")),
        "symmetry": loss_layers.SymmetryLoss(weight=cfg.weight("symmetry")),
    }


def per_sample_terms(outputs: dict, targets: dict, names, cfg: LossConfig) -> dict:
    """{term: (weighted values (B,), mask (B,))} for the loss terms in `names`, in float32."""
    layers = loss_layers_for(cfg)
    has_3d = tf.cast(targets["has_3d"], tf.float32)  # (B,)
    ones = tf.ones_like(has_3d)
    weak_mask = (1.0 - has_3d) if cfg.weak_on == "2d_only" else ones
    visibility = tf.cast(targets["visibility"], tf.float32)  # (B, J)
    terms = {}
    if "heatmap" in names:
        terms["heatmap"] = (
            layers["heatmap"](outputs["heatmaps"], targets["heatmaps"], visibility),
            ones,
        )
    if "depth" in names:
        terms["depth"] = (layers["depth"](outputs["depth"], targets["depth"], visibility), has_3d)
    weak = [n for n in WEAK_TERMS if n in names]
    if weak:
        # Eq. 3: ground-truth 2D with the predicted depth.
        pose = tf.concat(
            [
                tf.cast(targets["pose_2d"], tf.float32),
                tf.cast(outputs["depth"], tf.float32)[..., None],
            ],
            axis=-1,
        )  # (B, J, 3)
        for name in weak:
            terms[name] = (layers[name](pose, visibility), weak_mask)
    return terms


def total_loss(terms: dict, global_batch_size: int):
    """(scalar loss to differentiate, {term: masked sum}, {term: mask count}) for one replica.

    The values are already weighted (`per_sample_terms`), so the logged sums are each term's
    contribution to the loss."""
    total = tf.constant(0.0, tf.float32)
    sums, counts = {}, {}
    for name, (values, mask) in terms.items():
        masked = tf.reduce_sum(values * mask)
        sums[name] = masked
        counts[name] = tf.reduce_sum(mask)
        total += masked / float(global_batch_size)
    return total, sums, counts
