"""The training augmentation split in two: small per-example work, then the pixels per batch.

`dataset.build_example` crops, augments and encodes one record at a time. With
`make_dataset(..., batched=True)` the training pipeline gets the same values by cutting that
work in two (not faster on the 2-core CPU where it was measured: one warp op call per batch
costs what the per-image calls cost, and the warp is most of the work; docs/benchmarks.md):

* `prepare_example` (in `Dataset.map`, per record): parse, JPEG decode, the stateless draws
  (scale, rotation, flip, channel factors) from the example's seed, and everything that is a few
  numbers per joint (2D, visibility, 3D, intrinsics, pose / depth targets). These are exactly
  `build_example`'s ops on the same shapes. The image stays uint8, with the (8,) warp transform
  and the colour factors beside it.
* `augment_batch` (in `Dataset.map` after `padded_batch`): one `ImageProjectiveTransformV3` for
  the whole batch (each image with its own transform), the channel factors and clip on the
  batch, and the heatmaps of the batch.

Why the batches stay bitwise equal to `build_example`'s: the random draws are the same ops on
the same (seed, stream, element index) seeds; the per-joint math is the same graph on the same
shapes; the warp op computes each output pixel from its own image and transform only, so one
call on B images gives what B calls give; colour and heatmaps are elementwise (multiply, clip,
exp of the same arguments). `tests/test_batched_augment.py` asserts equality with the
per-example pipeline value for value (`make_dataset(..., batched=True)` against the default).

Exceptions kept exact by falling back, per image, to the per-example code inside the batch:
images of different stored sizes in one batch (the warp's zero fill depends on the tensor's
extent, so padding would change the border pixels: `augment.warp_images`), and brightness /
contrast / saturation jitter (contrast takes an image mean; `colour_jitter` per image).

Shapes: B batch, S input side, h heatmap side, J joints.
"""

from __future__ import annotations

import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.config import AugmentConfig
from keras_pose3d.data import augment as aug
from keras_pose3d.data import heatmaps, pose_codec


def label_targets(
    labels: dict[str, tf.Tensor], has_3d: tf.Tensor, input_size: int, heatmap_size: int
) -> dict[str, tf.Tensor]:
    """The targets of one example but its heatmaps, from `augment.augment_labels`' dict.

    Returns:
        visibility, pose_2d, depth, has_3d, joints_3d, intrinsics, root_depth (the module
        docstring of `dataset`), and `heatmap_joints` (J, 2): the 2D joints in heatmap pixels,
        which `heatmaps.encode_heatmaps` turns into the heatmaps.
    """
    has_3d = tf.cast(has_3d, tf.float32)
    j2d, vis = labels["joints_2d"], labels["visibility"]
    j3d, intr = labels["joints_3d"] * has_3d, labels["intrinsics"] * has_3d
    return {
        "heatmap_joints": heatmaps.input_to_heatmap_px(j2d, input_size, heatmap_size),
        "visibility": vis,
        "pose_2d": pose_codec.normalise_2d_tf(j2d, input_size),
        "depth": pose_codec.depth_target_tf(j3d, intr, input_size) * has_3d,
        "has_3d": has_3d,
        "joints_3d": j3d,
        "intrinsics": intr,
        "root_depth": j3d[skeleton.ROOT, 2],
    }


def draw_params(seed: tf.Tensor, augment: AugmentConfig) -> dict[str, tf.Tensor]:
    """`build_example`'s random draws from its (2,) seed: scale, rotation_deg, flip, and the
    seed of `colour_jitter` (`colour_seed`)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    geo = aug.sample_augment_params(
        seeds[0],
        scale_range=augment.scale,
        rotation_range_deg=augment.rotation_deg,
        rotation_prob=augment.rotation_prob,
        flip_prob=augment.flip_prob if augment.flip else 0.0,
    )
    return {**geo, "colour_seed": seeds[1]}


def _extra_colour(augment: AugmentConfig) -> bool:
    return augment.brightness > 0 or augment.contrast > 0 or augment.saturation > 0


def prepare_example(
    record: dict[str, tf.Tensor],
    *,
    input_size: int,
    heatmap_size: int,
    augment: AugmentConfig,
    seed: tf.Tensor,
) -> dict[str, tf.Tensor]:
    """The per-record half of the training augmentation (module docstring).

    Args:
        record: output of `features.parse_example` (decoded image).
        input_size: S; heatmap_size: h.
        augment: the run's augmentation.
        seed: (2,) int stateless seed, as `build_example`'s.

    Returns:
        dict with `image` (H, W, 3) uint8, `image_size` (2,) int32, `transform` (8,) float32
        (`augment.warp_transform`), `channel_factors` (3,) float32, `colour_seed` (2,) int64, and
        `label_targets`' entries.
    """
    params = draw_params(seed, augment)
    image = record["image"]
    size = tf.shape(image)[:2]
    labels = aug.augment_labels(
        size,
        record["joints_2d"],
        record["visibility"],
        record["joints_3d"],
        record["intrinsics"],
        input_size=input_size,
        scale=params["scale"],
        rotation_deg=params["rotation_deg"],
        flip=params["flip"],
    )
    if augment.color:
        factors = aug.channel_factors(
            aug.colour_factor_seed(params["colour_seed"]), augment.channel_scale
        )
    else:
        factors = tf.ones([3], tf.float32)
    return {
        "image": image,
        "image_size": size,
        "transform": aug.warp_transform(labels["matrix"]),
        "channel_factors": factors,
        "colour_seed": params["colour_seed"],
        **label_targets(labels, record["has_3d"], input_size, heatmap_size),
    }


def augment_batch(
    batch: dict[str, tf.Tensor],
    *,
    input_size: int,
    heatmap_size: int,
    heatmap_sigma: float,
    augment: AugmentConfig,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The per-batch half: warp, colour and heatmaps of a `padded_batch` of `prepare_example`.

    Returns:
        (inputs, targets) of the batch, as `build_example`'s stacked (`dataset` docstring).
    """
    images = aug.warp_images(batch["image"], batch["image_size"], batch["transform"], input_size)
    if augment.color and _extra_colour(augment):

        def jitter(args):
            image, seed = args
            return aug.colour_jitter(
                image,
                seed,
                channel_scale=augment.channel_scale,
                brightness=augment.brightness,
                contrast=augment.contrast,
                saturation=augment.saturation,
            )

        images = tf.map_fn(jitter, (images, batch["colour_seed"]), fn_output_signature=images.dtype)
    elif augment.color:
        # colour_jitter without the extras: one multiply and the clip, elementwise.
        factors = batch["channel_factors"][:, None, None, :]  # (B, 1, 1, 3)
        images = tf.clip_by_value(images * factors, 0.0, 1.0)
    vis = batch["visibility"]
    targets = {
        "heatmaps": heatmaps.encode_heatmaps(
            batch["heatmap_joints"], vis, heatmap_size, heatmap_sigma
        ),
        **{
            key: batch[key]
            for key in (
                "visibility",
                "pose_2d",
                "depth",
                "has_3d",
                "joints_3d",
                "intrinsics",
                "root_depth",
            )
        },
    }
    return {"image": images}, targets
