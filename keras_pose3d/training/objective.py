"""The training objective: which loss term applies to which sample, and how terms are summed.

The formulas live in `keras_pose3d.losses`; this module only decides masks and weights.

* `heatmap`: every sample (visibility-weighted inside the loss).
* `depth`: 3D samples only (`has_3d`).
* `geometric`, `illegal_angle`, `symmetry` (Eq. 3, L_SA): on the pose made of the ground-truth
  2D and the predicted depth, over limbs whose joints are all annotated (an unannotated MPII
  joint has no meaningful x, y), as Eq. 3 writes it; on 2D-only samples (`loss.weak_on: 2d_only`,
  Zhou et al.'s reading and the default) or on every sample (`all`).

Per-sample values are summed and divided by the GLOBAL batch size, so that summing gradients
over replicas (what MirroredStrategy does) gives the single-device mean: a per-replica mean would
apply `num_replicas` times the update.
"""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d import losses
from keras_pose3d.config import LossConfig

WEAK_TERMS = ("geometric", "illegal_angle", "symmetry")


def per_sample_terms(outputs: dict, targets: dict, names, cfg: LossConfig) -> dict:
    """{term: (values (B,), mask (B,))} for the loss terms in `names`, in float32."""
    has_3d = tf.cast(targets["has_3d"], tf.float32)  # (B,)
    ones = tf.ones_like(has_3d)
    weak_mask = (1.0 - has_3d) if cfg.weak_on == "2d_only" else ones
    visibility = tf.cast(targets["visibility"], tf.float32)  # (B, J)
    terms = {}
    if "heatmap" in names:
        terms["heatmap"] = (
            losses.heatmap_loss(outputs["heatmaps"], targets["heatmaps"], visibility),
            ones,
        )
    if "depth" in names:
        terms["depth"] = (losses.depth_loss(outputs["depth"], targets["depth"], visibility), has_3d)
    if any(n in names for n in WEAK_TERMS):
        # Eq. 3: ground-truth 2D with the predicted depth.
        pose = tf.concat(
            [
                tf.cast(targets["pose_2d"], tf.float32),
                tf.cast(outputs["depth"], tf.float32)[..., None],
            ],
            axis=-1,
        )  # (B,J,3)
        if "geometric" in names:
            terms["geometric"] = (losses.geometric_loss(pose, visibility), weak_mask)
        if "illegal_angle" in names:
            terms["illegal_angle"] = (losses.illegal_angle_loss(pose, visibility), weak_mask)
        if "symmetry" in names:
            terms["symmetry"] = (losses.symmetry_loss(pose, visibility), weak_mask)
    return terms


def total_loss(terms: dict, cfg: LossConfig, global_batch_size: int):
    """(scalar loss to differentiate, {term: masked sum}, {term: mask count}) for one replica."""
    total = tf.constant(0.0, tf.float32)
    sums, counts = {}, {}
    for name, (values, mask) in terms.items():
        masked = tf.reduce_sum(values * mask)
        sums[name] = masked
        counts[name] = tf.reduce_sum(mask)
        total += cfg.weight(name) * masked / float(global_batch_size)
    return total, sums, counts
