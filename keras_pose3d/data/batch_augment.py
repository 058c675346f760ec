"""The training augmentation split in two: per-example work, then the pixels per batch.

`make_dataset` (batched, the default with `augment.warp: opencv`) runs:

* `prepare_example` (in `Dataset.map`, per record): parse, JPEG decode, the stateless draws
  (scale, rotation, flip, channel factors) from the example's seed, and everything that is a few
  numbers per joint (2D, visibility, 3D, intrinsics, pose / depth targets). With the OpenCV warp
  the crop is warped here too (`augment.warp_images_opencv`, S x S uint8), so that batches carry
  small crops; with the TensorFlow warp the stored crop stays uint8, with its (8,) warp
  transform beside it.
* `augment_batch` (in `Dataset.map` after `batch` / `padded_batch`, or in the trainer's step
  on the replica's device: `dataset.finish_batch`): the TensorFlow warp for the whole
  batch (one `ImageProjectiveTransformV3` call, each image with its own transform) or, after the
  OpenCV warp, the conversion to [0, 1] with the channel factors in one broadcast
  (`augment.to_unit`); the colour jitter; the heatmaps of the batch.

`dataset.build_example` (`make_dataset(..., batched=False)`) gives the same values one record at
a time: with the OpenCV warp it is these two on a batch of one; with the TensorFlow warp it is
its own per-example code, and the batches stay bitwise equal because the random draws are the
same ops on the same (seed, stream, element index) seeds, the per-joint math is the same graph
on the same shapes, the warp op computes each output pixel from its own image and transform
only, and colour and heatmaps are elementwise. `tests/test_batched_augment.py` asserts equality
value for value for both warps.

Exceptions kept exact by falling back, per image, to the per-example code inside the batch:
with the TensorFlow warp, images of different stored sizes in one batch (the op's zero fill
depends on the tensor's extent, so padding would change the border pixels:
`augment.warp_images`); brightness / contrast / saturation jitter (contrast takes an image mean;
`colour_jitter` per image).

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
        dict with `image` (H, W, 3) uint8 (S x S, already warped, with the OpenCV warp),
        `image_size` (2,) int32 (of that image), `transform` (8,) float32
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
    transform = aug.warp_transform(labels["matrix"])
    if augment.warp == "opencv":
        # Warped here, one cheap call an example, so that batches carry S x S crops instead
        # of stored crops padded to the largest (fewer bytes to batch, pad and concatenate).
        image = aug.warp_images_opencv(image[None], size[None], transform[None], input_size)[0]
        size = tf.constant([input_size, input_size], tf.int32)
    return {
        "image": image,
        "image_size": size,
        "transform": transform,
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
    """The per-batch half: warp, colour and heatmaps of a batch of `prepare_example`'s dicts.

    Returns:
        (inputs, targets) of the batch, as `build_example`'s stacked (`dataset` docstring).
    """
    extra_colour = augment.color and _extra_colour(augment)
    if augment.warp == "opencv":
        # Warped in `prepare_example`: the conversion to [0, 1] with the channel factors in
        # one broadcast; `colour_jitter` whole where the extras need it (factors unused).
        factors = batch["channel_factors"] if augment.color and not extra_colour else None
        images = aug.to_unit(batch["image"], factors)
    else:
        images = aug.warp_images(
            batch["image"], batch["image_size"], batch["transform"], input_size
        )
    if extra_colour:

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
    elif augment.color and augment.warp != "opencv":
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
