"""Serving graphs: JPEG bytes in, camera-frame millimetres and image pixels out.

Everything a client would otherwise have to reimplement runs inside the graph: JPEG decoding,
the square crop around the person, resizing to the network input S, SAP-Net, the decode of the
normalised pose to mm (`data.pose_codec.decode_pose_3d_tf`) and the map of 2D joints back to
original-image pixels. The signatures (names, inputs, outputs) are listed in `SIGNATURES`; the
client and the tests read them from there.

Geometry (documented assumptions where a client sends no camera):

* Pixel centres are at integer coordinates (pixel i spans [i - 0.5, i + 0.5]), the record
  convention. `boxes` are [x0, y0, x1, y1] box *edges* in original-image pixels of the *person
  box*: the region the network input covers, as in training's evaluation crop
  (`data.augment.crop_and_augment`). This is NOT the records' `box` field, which is the stored
  crop, `features.PERSON_MARGIN` (1.75) times the person box: a client holding a record box
  sends the box of the same centre with 1 / 1.75 of its side. The box is made square around its
  centre with side L = max(x1 - x0, y1 - y0), the way training crops are square; parts outside
  the image are black. A box of all zeros means "whole image": the square of side max(H, W) centred on the
  image (edges -0.5 .. W - 0.5).
* Crop pixel u_c and original pixel u_o are related by u_c = (u_o - x0) * S / L - 0.5, the
  square-crop map of `data.crop_geometry` (the records' crops and training's use the same).
* `focal_length` fx = fy in original pixels; <= 0 means `default_focal(H, W)` = max(H, W), a
  field of view of about 53 degrees across the longer side (H36M's cameras: fx ~ 1.15 W).
  The principal point is the image centre ((W - 1) / 2, (H - 1) / 2).
* `root_depth_mm` Z of the pelvis; <= 0 means `DEFAULT_ROOT_DEPTH_MM` (5000 mm, about the
  H36M subject-camera distance). The 3D pose scales with it: monocular 3D has no absolute
  scale, as in the paper's protocol, which uses the ground-truth root depth.

Outputs: `joints_3d_mm` (B, J, 3) camera frame, `joints_3d_root_relative_mm` (B, J, 3) (the
pelvis at 0, what TP-Net consumes), `joints_2d_px` (B, J, 2) original-image pixels,
`confidence` (B, J) the maximum of the last stack's heatmap per joint (the channel maximum),
`crop_boxes` (B, 4) the square crop used, [x0, y0, x1, y1] pixel edges.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.data import crop_geometry, pose_codec

DEFAULT_ROOT_DEPTH_MM = 5000.0
NUM_JOINTS = skeleton.NUM_JOINTS

# name -> (inputs {name: (dtype, shape)}, outputs (names)). -1 is a free dimension; S and N are
# filled in by `signature_table`.
_POSE_OUTPUTS = (
    "joints_3d_mm",
    "joints_3d_root_relative_mm",
    "joints_2d_px",
    "confidence",
    "crop_boxes",
)
SIGNATURES = {
    "serving_default": ({"images": ("string", (-1,))}, _POSE_OUTPUTS),
    "predict_jpeg": ({"images": ("string", (-1,))}, _POSE_OUTPUTS),
    "predict_jpeg_boxes": (
        {
            "images": ("string", (-1,)),
            "boxes": ("float32", (-1, 4)),
            "focal_length": ("float32", (-1,)),
            "root_depth_mm": ("float32", (-1,)),
        },
        _POSE_OUTPUTS,
    ),
    "predict_image": (
        {
            "images": ("float32", (-1, "S", "S", 3)),
            "focal_length": ("float32", (-1,)),
            "root_depth_mm": ("float32", (-1,)),
        },
        _POSE_OUTPUTS,
    ),
    "predict_raw": (
        {"images": ("float32", (-1, "S", "S", 3))},
        ("pose_2d", "depth", "pose_3d", "heatmaps"),
    ),
    "refine": ({"poses": ("float32", (-1, "N", NUM_JOINTS, 3))}, ("pose_3d_mm",)),
    "predict_jpeg_online": (
        {"images": ("string", (-1,)), "history": ("float32", (-1, "N-1", NUM_JOINTS, 3))},
        _POSE_OUTPUTS + ("joints_3d_refined_mm",),
    ),
}
SAP_NET_SIGNATURES = (
    "serving_default",
    "predict_jpeg",
    "predict_jpeg_boxes",
    "predict_image",
    "predict_raw",
)
TP_NET_SIGNATURES = ("serving_default", "refine")
PIPELINE_SIGNATURES = SAP_NET_SIGNATURES + ("predict_jpeg_online",)


def signature_table(name: str, input_size: int, window: int | None = None) -> dict:
    """Concrete input specs of signature `name`: {input: (dtype, shape)} with S and N filled in."""
    inputs, _ = SIGNATURES[name]
    sizes = {"S": input_size, "N": window, "N-1": None if window is None else window - 1}
    return {
        k: (dt, tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape))
        for k, (dt, shape) in inputs.items()
    }


def default_focal(height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """The assumed focal length in pixels when none is given: max(H, W)."""
    return tf.maximum(height, width)


# ----------------------------------------------------------------------------------------------
# Pre-processing (graph ops).
# ----------------------------------------------------------------------------------------------
def decode_jpeg(data: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """One JPEG string -> (H, W, 3) float32 in 0..255.

    Raises (at run time) InvalidArgumentError naming the input `images` and the element index
    when the bytes do not start with the JPEG SOI marker (TF's own decode error names neither).
    """
    check = tf.debugging.Assert(
        tf.image.is_jpeg(data),
        [
            "input `images` element",
            index,
            "is not JPEG data (expected the JPEG SOI marker FF D8 FF at its start)",
        ],
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_jpeg(data, channels=3)
    return tf.cast(image, tf.float32)


def square_boxes(boxes: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
    """(B, 4) [x0, y0, x1, y1] (all zeros = whole image), (B, 2) H, W -> square (B, 4) boxes."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    whole = crop_geometry.image_box_tf(sizes[:, 0], sizes[:, 1])  # (B, 4)
    empty = tf.reduce_all(tf.equal(boxes, 0.0), axis=-1, keepdims=True)
    centre, side = crop_geometry.box_centre_side_tf(tf.where(empty, whole, boxes))
    return crop_geometry.square_box_tf(centre, side)


def crop_resize(image: tf.Tensor, box: tf.Tensor, input_size: int) -> tf.Tensor:
    """One (H, W, 3) image, square box (4,) -> (S, S, 3) float32 in [0, 1] (bilinear)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    centre, side = crop_geometry.box_centre_side_tf(box)
    # First and last output pixel centres in original pixel coordinates (module docstring),
    # normalised the way crop_and_resize wants them (0 = first pixel centre, 1 = last).
    corners = tf.constant([[0.0, 0.0], [input_size - 1.0, input_size - 1.0]])
    ends = crop_geometry.crop_to_source_tf(corners, centre, side, input_size)  # (2, 2)
    x_first, y_first, x_last, y_last = ends[0, 0], ends[0, 1], ends[1, 0], ends[1, 1]
    norm = tf.stack(
        [
            y_first / tf.maximum(shape[0] - 1, 1.0),
            x_first / tf.maximum(shape[1] - 1, 1.0),
            y_last / tf.maximum(shape[0] - 1, 1.0),
            x_last / tf.maximum(shape[1] - 1, 1.0),
        ]
    )
    crop = tf.image.crop_and_resize(
        image[None], norm[None], [0], [input_size, input_size], extrapolation_value=0.0
    )
    return crop[0] / 255.0


def preprocess_jpegs(images: tf.Tensor, boxes: tf.Tensor, input_size: int):
    """JPEG strings (B,) + boxes (B, 4) -> crops (B, S, S, 3), square boxes (B, 4), sizes (B, 2).

    One `map_fn` step per image: the images may differ in size.
    """

    def one(args):
        index, data, box = args
        image = decode_jpeg(data, index)
        size = tf.cast(tf.shape(image)[:2], tf.float32)  # (2,) H, W
        square = square_boxes(box[None], size[None])[0]
        return crop_resize(image, square, input_size), square, size

    index = tf.range(tf.shape(images)[0])
    spec = (
        tf.TensorSpec((input_size, input_size, 3), tf.float32),
        tf.TensorSpec((4,), tf.float32),
        tf.TensorSpec((2,), tf.float32),
    )
    return tf.map_fn(one, (index, images, tf.cast(boxes, tf.float32)), fn_output_signature=spec)


# ----------------------------------------------------------------------------------------------
# Post-processing: normalised pose -> mm and original pixels.
# ----------------------------------------------------------------------------------------------
def crop_intrinsics(focal: tf.Tensor, sizes: tf.Tensor, boxes: tf.Tensor, input_size: int):
    """Original-image camera (fx = fy = focal, centre of the image) -> network-input intrinsics.

    Returns (B, 4) fx, fy, cx, cy in network-input pixels (`crop_geometry.transform_intrinsics`
    through the crop of `boxes`).
    """
    centre, side = crop_geometry.box_centre_side_tf(boxes)
    matrix = crop_geometry.crop_affine_tf(centre, side, input_size)  # (B, 3, 3)
    principal = 0.5 * (sizes[:, ::-1] - 1.0)  # (B, 2) image centre x, y
    return crop_geometry.transform_intrinsics_tf(
        tf.concat([focal[:, None], focal[:, None], principal], axis=-1), matrix
    )


def decode_outputs(
    outputs: dict,
    boxes: tf.Tensor,
    sizes: tf.Tensor,
    focal: tf.Tensor,
    root_depth: tf.Tensor,
    input_size: int,
) -> dict:
    """SAP-Net outputs + crop geometry -> the serving outputs (module docstring)."""
    focal = tf.where(focal > 0, focal, default_focal(sizes[:, 0], sizes[:, 1]))
    root_depth = tf.where(root_depth > 0, root_depth, DEFAULT_ROOT_DEPTH_MM)
    intrinsics = crop_intrinsics(focal, sizes, boxes, input_size)  # (B, 4)
    pose_3d = tf.cast(outputs["pose_3d"], tf.float32)  # (B, J, 3) normalised
    joints_3d = pose_codec.decode_pose_3d_tf(pose_3d, intrinsics, root_depth, input_size)
    crop_px = pose_codec.denormalise_2d_tf(tf.cast(outputs["pose_2d"], tf.float32), input_size)
    centre, side = crop_geometry.box_centre_side_tf(boxes)  # (B, 2), (B,)
    joints_2d = crop_geometry.crop_to_source_tf(  # (B, J, 2) original px
        crop_px, centre[:, None], side[:, None], input_size
    )
    heatmaps = tf.cast(outputs["heatmaps"][:, -1], tf.float32)  # (B, h, h, J)
    return {
        "joints_3d_mm": joints_3d,
        "joints_3d_root_relative_mm": pose_codec.to_root_relative_mm_tf(joints_3d),
        "joints_2d_px": joints_2d,
        "confidence": tf.reduce_max(heatmaps, axis=[1, 2]),  # (B, J)
        "crop_boxes": boxes,  # (B, 4) the square crop actually used
    }


# ----------------------------------------------------------------------------------------------
# Modules with the signatures.
# ----------------------------------------------------------------------------------------------
def _hold(module: tf.Module, name: str, model: keras.Model) -> None:
    """Keep `model` on `module` without tf.Module tracking it.

    A tracked Keras model makes tf.saved_model.save serialise the Keras object graph as well
    (about twice the save time); the serving graphs need only its variables (`track_variables`).
    """
    module.__dict__[name] = model


def track_variables(model: keras.Model | tf.Module) -> list[tf.Variable]:
    """The backing tf.Variables of a Keras 3 model (or a tf.Module's own), for a tf.Module to
    track explicitly.

    tf.saved_model.save only saves variables it can reach through tracked attributes; Keras 3
    layers kept in plain containers (e.g. a sub-layer's BatchNormalization moving statistics)
    are not always reachable that way, and the save then fails with an "untracked resource"
    error. Keras's own ExportArchive lists them the same way.
    """
    return [v if isinstance(v, tf.Variable) else getattr(v, "value", v) for v in model.variables]


class TPNetServing(tf.Module):
    """TP-Net's `refine` signature: poses (B, N, J, 3) float32 mm -> pose_3d_mm (B, J, 3).

    The window length is fixed in the signature; a window of another length is rejected with an
    error naming `poses` and N (`check_window`), also when the fixed shape is bypassed.

    The SavedModel also carries the TP-Net's metadata as non-trainable variables (saved with the
    weights, no extra signature): `tp_mode` (string, "online" | "semi_online"), `tp_window`
    (int32 N) and `tp_frame_rate` (float64 frames per second the TP-Net was trained at, 0 when
    the model does not know it); `read_metadata` reads them back from a loaded SavedModel.
    """

    def __init__(self, tp_net: keras.Model):
        super().__init__()
        _hold(self, "tp_net", tp_net)
        self.tp_variables = track_variables(tp_net)
        self.window = int(tp_net.window)
        self.num_joints = int(tp_net.num_joints)
        # A client cannot tell online from semi-online windows by the signature (same shape).
        self.tp_mode = tf.Variable(str(tp_net.mode), trainable=False, name="tp_mode")
        self.tp_window = tf.Variable(self.window, dtype=tf.int32, trainable=False, name="tp_window")
        # float64: a rate such as 29.97 comes back exactly; 0 = unknown (TPNet.frame_rate None).
        rate = getattr(tp_net, "frame_rate", None)
        self.tp_frame_rate = tf.Variable(
            0.0 if rate is None else float(rate),
            dtype=tf.float64,
            trainable=False,
            name="tp_frame_rate",
        )
        spec = tf.TensorSpec((None, self.window, self.num_joints, 3), tf.float32, name="poses")
        self.refine = tf.function(self._refine, input_signature=[spec])

    def check_window(self, poses: tf.Tensor) -> tf.Tensor:
        """Run-time check of the window length with a message naming `poses` and N."""
        check = tf.debugging.assert_equal(
            tf.shape(poses)[1],
            self.window,
            message=(
                f"input `poses` must be a window of N={self.window} poses, shape "
                f"(B, {self.window}, {self.num_joints}, 3)"
            ),
        )
        with tf.control_dependencies([check]):
            return tf.ensure_shape(poses, (None, self.window, self.num_joints, 3))

    def _refine(self, poses):
        poses = self.check_window(poses)
        return {"pose_3d_mm": tf.cast(self.tp_net(poses, training=False), tf.float32)}

    def signatures(self) -> dict:
        fn = self.refine.get_concrete_function()
        return {"serving_default": fn, "refine": fn}


def read_metadata(loaded, path: str = "the SavedModel") -> dict:
    """TP-Net metadata of a loaded tp_net (or pipeline) SavedModel (`TPNetServing` variables).

    Returns:
        {"mode": str, "window": int, "frame_rate": float | None}: frame_rate is the frames per
        second the TP-Net was trained at, None when unknown (exported before it was recorded, or
        from a TPNet without one); poses fed to `refine` should come at that rate.

    Raises:
        ValueError: the SavedModel has no TP-Net metadata (exported before it was added).
    """
    # The pipeline keeps its TP-Net's metadata on the nested TPNetServing.
    source = getattr(loaded, "tp_serving", loaded)
    if not (hasattr(source, "tp_mode") and hasattr(source, "tp_window")):
        raise ValueError(
            f"{path} has no TP-Net metadata (tp_mode, tp_window); re-export it with "
            "python -m keras_pose3d.export"
        )
    rate = float(source.tp_frame_rate.numpy()) if hasattr(source, "tp_frame_rate") else 0.0
    return {
        "mode": source.tp_mode.numpy().decode("utf-8"),
        "window": int(source.tp_window.numpy()),
        "frame_rate": rate if rate > 0 else None,
    }


class SAPNetServing(tf.Module):
    """SAP-Net serving graphs (module docstring); with `tp_net` also `predict_jpeg_online`.

    Args:
        sap_net: a float32 SAPNet (or any model with its output dict and `input_size`), e.g.
            the BatchNorm-folded copy `serving.optimize.fold_batch_norms` makes.
        tp_net: optional TPNet in "online" mode for the composed pipeline (float32, or the
            reduced-precision copy of `serving.optimize.reduced_precision_tp_net`).
        jit_compile: compile the network (`network`, which every signature calls) with XLA;
            TF-Serving runs such a graph only with `--xla_cpu_compilation_enabled` on a CPU.
    """

    def __init__(
        self, sap_net: keras.Model, tp_net: keras.Model | None = None, jit_compile: bool = False
    ):
        super().__init__()
        _hold(self, "sap_net", sap_net)
        self.sap_variables = track_variables(sap_net)
        self.input_size = s = int(sap_net.input_size)
        _hold(self, "tp_net", tp_net)
        jpeg = tf.TensorSpec((None,), tf.string, name="images")
        vec = lambda n: tf.TensorSpec((None,), tf.float32, name=n)
        image = tf.TensorSpec((None, s, s, 3), tf.float32, name="images")
        self.predict_jpeg = tf.function(self._predict_jpeg, input_signature=[jpeg])
        self.predict_jpeg_boxes = tf.function(
            self._predict_jpeg_boxes,
            input_signature=[
                jpeg,
                tf.TensorSpec((None, 4), tf.float32, name="boxes"),
                vec("focal_length"),
                vec("root_depth_mm"),
            ],
        )
        self.predict_image = tf.function(
            self._predict_image, input_signature=[image, vec("focal_length"), vec("root_depth_mm")]
        )
        self.predict_raw = tf.function(self._predict_raw, input_signature=[image])
        # One traced copy of the network that every signature calls (a smaller, faster save).
        self.network = tf.function(
            self._network, input_signature=[image], jit_compile=True if jit_compile else None
        )
        if tp_net is not None:
            if tp_net.mode != "online":
                raise ValueError(
                    "the composed pipeline refines each frame from the frames before it, so it "
                    f"needs an online TP-Net. Received: mode={tp_net.mode!r}"
                )
            self.tp_serving = TPNetServing(tp_net)
            history = tf.TensorSpec(
                (None, tp_net.window - 1, tp_net.num_joints, 3), tf.float32, name="history"
            )
            self.predict_jpeg_online = tf.function(
                self._predict_jpeg_online, input_signature=[jpeg, history]
            )

    def _network(self, crops):
        out = self.sap_net(crops, training=False)
        return {k: tf.cast(out[k], tf.float32) for k in ("pose_2d", "depth", "pose_3d", "heatmaps")}

    def _run(self, crops):
        return self.network(crops)

    def _from_crops(self, crops, boxes, sizes, focal, root_depth):
        return decode_outputs(self._run(crops), boxes, sizes, focal, root_depth, self.input_size)

    def _predict_jpeg_boxes(self, images, boxes, focal_length, root_depth_mm):
        crops, square, sizes = preprocess_jpegs(images, boxes, self.input_size)
        return self._from_crops(crops, square, sizes, focal_length, root_depth_mm)

    def _predict_jpeg(self, images):
        zeros = tf.zeros(tf.shape(images), tf.float32)
        return self._predict_jpeg_boxes(images, tf.zeros([tf.shape(images)[0], 4]), zeros, zeros)

    def _predict_image(self, images, focal_length, root_depth_mm):
        # The image *is* the crop: an S x S "original" with the whole-image box.
        batch = tf.shape(images)[0]
        sizes = tf.fill([batch, 2], float(self.input_size))
        boxes = crop_geometry.image_box_tf(sizes[:, 0], sizes[:, 1])  # (B, 4)
        return self._from_crops(images, boxes, sizes, focal_length, root_depth_mm)

    def _predict_raw(self, images):
        return self._run(images)

    def _predict_jpeg_online(self, images, history):
        out = self._predict_jpeg(images)
        current = out["joints_3d_root_relative_mm"][:, None]  # (B, 1, J, 3)
        window = tf.concat([history, current], axis=1)  # (B, N, J, 3), target last
        refined = self.tp_serving.refine(window)["pose_3d_mm"]
        return dict(out, joints_3d_refined_mm=refined)

    def signatures(self) -> dict:
        sigs = {
            "serving_default": self.predict_jpeg.get_concrete_function(),
            "predict_jpeg": self.predict_jpeg.get_concrete_function(),
            "predict_jpeg_boxes": self.predict_jpeg_boxes.get_concrete_function(),
            "predict_image": self.predict_image.get_concrete_function(),
            "predict_raw": self.predict_raw.get_concrete_function(),
        }
        if self.tp_net is not None:
            sigs["predict_jpeg_online"] = self.predict_jpeg_online.get_concrete_function()
        return sigs
