"""Crop, scale, rotation, flip and colour augmentation of image + 2D + 3D + intrinsics together.

Pure TensorFlow: every function works eagerly and inside `tf.data.Dataset.map`.

Geometry is one affine matrix M (3 x 3) from stored-crop pixels p to network-input pixels q
(0-based, pixel centres at integers), the square-crop map of `crop_geometry` (which owns the
formulas: `stored_to_input_affine`, `transform_points`, `transform_intrinsics`):

    q = F( s * R(theta) * (p - c) + c_in )

* c = ((W - 1)/2, (H - 1)/2) is the stored crop's centre, c_in = ((S - 1)/2, (S - 1)/2) the
  input's. The stored crop is `PERSON_MARGIN` (1.75) times the person box, so the person region
  has side L = max(H, W) / PERSON_MARGIN; `scale` multiplies that side (scale > 1 zooms out) and
  s = S / (L * scale) maps it onto the S x S input (pixel areas edge to edge).
* R(theta) = [[cos, sin], [-sin, cos]] in image axes (x right, y down): a positive
  `rotation_deg` turns the image content counter-clockwise as seen on screen (cv2's sense).
* F mirrors x when `flip` is set: x' = S - 1 - x.

The image is warped once, bilinear with zeros outside, by `tf.raw_ops.ImageProjectiveTransformV3`
(`warp_image`, `warp_images`: evaluation crops and the pure-graph option) or by OpenCV's
`warpAffine` at the same sampling points (`warp_images_opencv`: the training default); the 2D
joints go through the same M. Joints that land outside [0, S - 1] lose their visibility.

3D and intrinsics stay consistent with the 2D: a camera rotated by theta about its own optical
axis sees (u - cx, v - cy) rotated by the same R about the principal point, and an in-plane
rotation about any other point (the crop centre) differs from that only by a translation, which
the new principal point absorbs. So the augmentation applies

    X' = D R_z(theta) X   (R_z: R(theta) on the camera X, Y axes; D = diag(-1, 1, 1) on flip)
    fx' = s fx, fy' = s fy, (cx', cy') = M (cx, cy)

and the pinhole projection of X' with the new intrinsics equals M applied to the projection of
X exactly when fx = fy (square pixels) and there is no lens distortion. With fx != fy (H36M:
0.1 %) or distortion the match is approximate (well under a pixel on the crops used here). The
normalised 2D targets come from the augmented 2D labels, and the depth target
(Z - Z_root) fx' / Z_root / (S/2) is invariant to the rotation (Z is unchanged), so the targets
never depend on this approximation; only the metric `joints_3d` (mm) do.

A horizontal flip mirrors the camera frame (X -> -X, cx -> S - 1 - cx) and then swaps left and
right joints with `skeleton.FLIP_PERMUTATION` (2D, 3D and visibility alike): joint j of the
flipped sample is joint FLIP_PERMUTATION[j] of the original.

Colour: Newell et al.'s per-channel scale, uniform in [0.6, 1.4], optionally with brightness,
contrast and saturation jitter; the image stays in [0, 1].
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.data import crop_geometry
from keras_pose3d.data.features import PERSON_MARGIN

# A plain tuple, not a tensor: a module-level tf.constant would start TensorFlow's runtime at
# import time, before a MultiWorkerMirroredStrategy can be created (it must come first).
_FLIP_PERM = tuple(int(i) for i in skeleton.FLIP_PERMUTATION)


def _f32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


# ----------------------------------------------------------------------------------------------
# The affine matrix and how it acts on points, images, 3D and intrinsics.
# ----------------------------------------------------------------------------------------------
def crop_affine(
    stored_size: tf.Tensor,
    input_size: int,
    scale: float | tf.Tensor = 1.0,
    rotation_deg: float | tf.Tensor = 0.0,
    flip: bool | tf.Tensor = False,
    margin: float = PERSON_MARGIN,
) -> tf.Tensor:
    """The (3, 3) affine from stored-crop pixels to network-input pixels (module docstring;
    the formula is `crop_geometry.stored_to_input_affine`).

    Args:
        stored_size: (2,) stored crop height, width.
        input_size: S, the network input side.
        scale: multiplies the person-region side (1 = the person box, 1.25 = zoom out 25 %).
        rotation_deg: counter-clockwise on screen, degrees.
        flip: mirror horizontally.
        margin: stored crop side / person box side.

    Returns:
        (3, 3) float32 M with q = M @ [p, 1].
    """
    return crop_geometry.stored_to_input_affine_tf(
        stored_size, input_size, margin, scale, rotation_deg, flip
    )


def warp_transform(matrix: tf.Tensor) -> tf.Tensor:
    """The (8,) transform `ImageProjectiveTransformV3` takes for the affine `matrix`.

    Args:
        matrix: (3, 3) float32 source -> output.

    Returns:
        (8,) float32: the output -> source map, flattened [a0 a1 a2 b0 b1 b2 c0 c1].
    """
    inv = tf.linalg.inv(_f32(matrix))
    return tf.concat([tf.reshape(inv[:2, :], [6]), tf.zeros([2], tf.float32)], axis=0)


def _project(images: tf.Tensor, transforms: tf.Tensor, output_size: int) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([output_size, output_size], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def warp_image(image: tf.Tensor, matrix: tf.Tensor, output_size: int) -> tf.Tensor:
    """Warps an image with the affine `matrix` (source px -> output px).

    Args:
        image: (H, W, C) uint8 in [0, 255] or float in [0, 1].
        matrix: (3, 3) float32 source -> output.
        output_size: side of the square output.

    Returns:
        (output_size, output_size, C) float32 in [0, 1], bilinear, zeros outside the source.
    """
    img = tf.convert_to_tensor(image)
    img = tf.image.convert_image_dtype(img, tf.float32)  # uint8 -> [0, 1]
    out = _project(img[None], warp_transform(matrix)[None], output_size)[0]
    return tf.ensure_shape(out, [output_size, output_size, img.shape[-1]])


def _opencv_warp(images: np.ndarray, sizes: np.ndarray, transforms: np.ndarray, size: int):
    # (B, H, W, C) images, (B, 2) sizes, (B, 8) output -> source maps: (B, size, size, C) of the
    # images' dtype. cv2 takes the output -> source map itself with WARP_INVERSE_MAP, so it
    # samples where the TensorFlow op samples; each image is warped on its own extent.
    channels = images.shape[-1]
    out = np.empty((len(images), size, size, channels), images.dtype)
    for b, (image, (height, width), transform) in enumerate(zip(images, sizes, transforms)):
        cv2.warpAffine(
            image[:height, :width],
            transform[:6].reshape(2, 3).astype(np.float64),
            (size, size),
            # Written in place (no copy under the GIL); cv2 wants (H, W) for one channel.
            dst=out[b] if channels > 1 else out[b, ..., 0],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out


def warp_images_opencv(
    images: tf.Tensor, sizes: tf.Tensor, transforms: tf.Tensor, output_size: int
) -> tf.Tensor:
    """`warp_images` with OpenCV's `warpAffine` (bilinear, zeros outside) in the images' own
    dtype: the same sampling points, a fraction of the CPU (docs/benchmarks.md), not the same
    bits.

    Two differences from the TensorFlow op, both far below what augmentation moves: OpenCV
    rounds each sampling point to 1/32 pixel and, on uint8 images, interpolates in fixed point
    and rounds the output to uint8 (the stored JPEG's own precision; `to_unit` converts after,
    on a quarter of the pixels). Runs through `tf.numpy_function` (OpenCV releases the GIL):
    fine for `tf.data` in the training process, not for graphs that must be serialised
    (`tf.data` service, SavedModels).

    Args:
        images, sizes, transforms, output_size: as `warp_images`; images uint8 or float32.

    Returns:
        (B, output_size, output_size, C) of the images' dtype.
    """
    imgs = tf.convert_to_tensor(images)
    if imgs.dtype not in (tf.uint8, tf.float32):
        raise ValueError(f"warp_images_opencv: images must be uint8 or float32, got {imgs.dtype}")
    out = tf.numpy_function(
        functools.partial(_opencv_warp, size=output_size),
        [imgs, tf.cast(sizes, tf.int32), _f32(transforms)],
        imgs.dtype,
        stateful=False,
    )
    return tf.ensure_shape(out, [None, output_size, output_size, imgs.shape[-1]])


def to_unit(images: tf.Tensor, channel_factors: tf.Tensor | None = None) -> tf.Tensor:
    """uint8 images to float32 [0, 1], times per-image channel factors, in one broadcast.

    Args:
        images: (B, H, W, C) uint8.
        channel_factors: (B, C) float32 >= 0 (`channel_factors`), the result clipped to 1
            (the factors are >= 0, so nothing falls below 0); None: the plain conversion.

    Returns:
        (B, H, W, C) float32 in [0, 1].
    """
    imgs = tf.cast(images, tf.float32)
    if channel_factors is None:
        return imgs * (1.0 / 255.0)
    scale = _f32(channel_factors) * (1.0 / 255.0)  # (B, C)
    # Rows of W * C values times the scale tiled W times: a broadcast over a last axis of C
    # is half as fast (the same products either way).
    shape = tf.shape(imgs)
    rows = tf.reshape(imgs, tf.stack([shape[0], shape[1], shape[2] * shape[3]]))
    out = tf.minimum(rows * tf.tile(scale, tf.stack([1, shape[2]]))[:, None, :], 1.0)
    return tf.reshape(out, shape)


def warp_images(
    images: tf.Tensor, sizes: tf.Tensor, transforms: tf.Tensor, output_size: int
) -> tf.Tensor:
    """`warp_image` on a batch, each image with its own transform; the same values.

    Args:
        images: (B, H, W, C) uint8 (or float in [0, 1]), image b in its top-left
            sizes[b] corner and zero padding elsewhere (`Dataset.padded_batch`).
        sizes: (B, 2) int height, width of each image.
        transforms: (B, 8) float32, `warp_transform` of each image's matrix.
        output_size: side of the square outputs.

    Returns:
        (B, output_size, output_size, C) float32 in [0, 1].
    """
    imgs = tf.image.convert_image_dtype(tf.convert_to_tensor(images), tf.float32)
    sizes = tf.cast(sizes, tf.int32)
    channels = imgs.shape[-1]

    # The op fills with zeros what maps outside [0, W - 1] x [0, H - 1] of the *tensor*, so a
    # padded image would blend its border with the padding instead: images of another size
    # than the batch's largest are warped one at a time on their own extent.
    def one_by_one():
        def warp_one(args):
            img, size, transform = args
            return _project(img[None, : size[0], : size[1]], transform[None], output_size)[0]

        return tf.map_fn(
            warp_one,
            (imgs, sizes, transforms),
            fn_output_signature=tf.TensorSpec([output_size, output_size, channels], tf.float32),
        )

    same = tf.reduce_all(tf.equal(sizes, tf.shape(imgs)[1:3]))
    out = tf.cond(same, lambda: _project(imgs, transforms, output_size), one_by_one)
    return tf.ensure_shape(out, [None, output_size, output_size, channels])


def rotate_flip_3d(
    joints_3d: tf.Tensor, rotation_deg: float | tf.Tensor, flip: bool | tf.Tensor
) -> tf.Tensor:
    """X' = D R_z(theta) X on camera-frame points (..., 3) (no joint permutation here)."""
    pts = _f32(joints_3d)
    theta = _f32(rotation_deg) * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    x = cos * pts[..., 0] + sin * pts[..., 1]
    y = -sin * pts[..., 0] + cos * pts[..., 1]
    x = x * (1.0 - 2.0 * _f32(flip))
    return tf.stack([x, y, pts[..., 2]], axis=-1)


def flip_joints(values: tf.Tensor, flip: bool | tf.Tensor, axis: int = 0) -> tf.Tensor:
    """Swaps left/right joints along `axis` when `flip` (skeleton.FLIP_PERMUTATION)."""
    v = tf.convert_to_tensor(values)
    # One gather by a chosen permutation rather than a tf.cond: a cond is a function call per
    # example in tf.data, and the gather moves values exactly either way.
    identity = tuple(range(len(_FLIP_PERM)))
    order = tf.where(tf.convert_to_tensor(flip, tf.bool), _FLIP_PERM, identity)
    return tf.gather(v, order, axis=axis)


# ----------------------------------------------------------------------------------------------
# The whole geometric augmentation.
# ----------------------------------------------------------------------------------------------
def crop_and_augment(
    image: tf.Tensor,
    joints_2d: tf.Tensor,
    visibility: tf.Tensor,
    joints_3d: tf.Tensor,
    intrinsics: tf.Tensor,
    *,
    input_size: int,
    scale: float | tf.Tensor = 1.0,
    rotation_deg: float | tf.Tensor = 0.0,
    flip: bool | tf.Tensor = False,
    margin: float = PERSON_MARGIN,
) -> dict[str, tf.Tensor]:
    """Crops the person region of a stored crop and augments image, 2D, 3D and intrinsics.

    With scale=1, rotation_deg=0, flip=False this is the evaluation crop.

    Args:
        image: (H, W, 3) uint8 (or float in [0, 1]) stored crop.
        joints_2d: (J, 2) stored-crop pixels.
        visibility: (J,) 0/1.
        joints_3d: (J, 3) camera mm (zeros for 2D-only samples).
        intrinsics: (4,) fx, fy, cx, cy of the stored crop (zeros when unknown).
        input_size: S.
        scale, rotation_deg, flip, margin: see `crop_affine`.

    Returns:
        dict with `image` (S, S, 3) float32 in [0, 1], `joints_2d` (J, 2) input px,
        `visibility` (J,), `joints_3d` (J, 3) mm, `intrinsics` (4,) input px, `matrix` (3, 3)
        stored crop -> input (keep it to map predictions back).
    """
    img = tf.convert_to_tensor(image)
    out = augment_labels(
        tf.shape(img)[:2],
        joints_2d,
        visibility,
        joints_3d,
        intrinsics,
        input_size=input_size,
        scale=scale,
        rotation_deg=rotation_deg,
        flip=flip,
        margin=margin,
    )
    return {"image": warp_image(img, out["matrix"], input_size), **out}


def augment_labels(
    stored_size: tf.Tensor,
    joints_2d: tf.Tensor,
    visibility: tf.Tensor,
    joints_3d: tf.Tensor,
    intrinsics: tf.Tensor,
    *,
    input_size: int,
    scale: float | tf.Tensor = 1.0,
    rotation_deg: float | tf.Tensor = 0.0,
    flip: bool | tf.Tensor = False,
    margin: float = PERSON_MARGIN,
) -> dict[str, tf.Tensor]:
    """`crop_and_augment` without the image: the affine and what it does to the labels.

    The batched training pipeline (`data.batch_augment`) runs this per example and warps the
    images of a whole batch at once with the matrices it returns.

    Args:
        stored_size: (2,) stored crop height, width; the rest as in `crop_and_augment`.

    Returns:
        `crop_and_augment`'s dict without `image`.
    """
    m = crop_affine(stored_size, input_size, scale, rotation_deg, flip, margin)
    j2d = crop_geometry.transform_points_tf(joints_2d, m)  # (J, 2)
    limit = float(input_size) - 1.0
    inside = tf.reduce_all((j2d >= 0.0) & (j2d <= limit), axis=-1)  # (J,)
    vis = _f32(visibility) * tf.cast(inside, tf.float32)
    j3d = rotate_flip_3d(joints_3d, rotation_deg, flip)
    return {
        "joints_2d": flip_joints(j2d, flip),
        "visibility": flip_joints(vis, flip),
        "joints_3d": flip_joints(j3d, flip),
        "intrinsics": crop_geometry.transform_intrinsics_tf(intrinsics, m),
        "matrix": m,
    }


# ----------------------------------------------------------------------------------------------
# Random parameters and colour.
# ----------------------------------------------------------------------------------------------
def sample_augment_params(
    seed: tf.Tensor,
    scale_range: float = 0.25,
    rotation_range_deg: float = 30.0,
    rotation_prob: float = 0.4,
    flip_prob: float = 0.5,
) -> dict[str, tf.Tensor]:
    """Draws scale, rotation and flip from a stateless seed (deterministic per seed).

    Newell et al.'s recipe: scale uniform in [1 - r, 1 + r], rotation uniform in [-a, a] degrees
    applied with probability `rotation_prob` (0 otherwise), flip with probability `flip_prob`.

    Args:
        seed: (2,) int seed for `tf.random.stateless_uniform`.

    Returns:
        dict with scalar float32 `scale`, `rotation_deg` and bool `flip`.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    u = [tf.random.stateless_uniform([], seed=seeds[i]) for i in range(4)]
    scale = 1.0 + scale_range * (2.0 * u[0] - 1.0)
    rotation = rotation_range_deg * (2.0 * u[1] - 1.0) * tf.cast(u[2] < rotation_prob, tf.float32)
    return {"scale": scale, "rotation_deg": rotation, "flip": u[3] < flip_prob}


def colour_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    channel_scale: tuple[float, float] = (0.6, 1.4),
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
) -> tf.Tensor:
    """Per-channel scale (Newell) then optional brightness / contrast / saturation jitter.

    Args:
        image: (H, W, 3) float32 in [0, 1].
        seed: (2,) int stateless seed.
        channel_scale: (low, high) of the uniform per-channel factor; (1, 1) disables it.
        brightness: max additive delta (0 disables).
        contrast: max relative change, factor in [1 - c, 1 + c] (0 disables).
        saturation: max relative change, factor in [1 - c, 1 + c] (0 disables).

    Returns:
        (H, W, 3) float32 clipped to [0, 1].
    """
    img = _f32(image)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    img = img * channel_factors(seeds[0], channel_scale)
    if brightness > 0:
        img = tf.image.stateless_random_brightness(img, brightness, seed=seeds[1])
    if contrast > 0:
        img = tf.image.stateless_random_contrast(img, 1 - contrast, 1 + contrast, seed=seeds[2])
    if saturation > 0:
        img = tf.image.stateless_random_saturation(
            tf.clip_by_value(img, 0.0, 1.0), 1 - saturation, 1 + saturation, seed=seeds[3]
        )
    return tf.clip_by_value(img, 0.0, 1.0)


def channel_factors(seed: tf.Tensor, channel_scale: tuple[float, float] = (0.6, 1.4)) -> tf.Tensor:
    """The (3,) per-channel factors of `colour_jitter`, from the first of its four split seeds
    (`colour_factor_seed`)."""
    low, high = channel_scale
    return tf.random.stateless_uniform([3], seed=seed, minval=low, maxval=high)


def colour_factor_seed(seed: tf.Tensor) -> tf.Tensor:
    """The seed `colour_jitter(image, seed)` draws its channel factors from."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)[0]
