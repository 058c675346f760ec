"""Camera models: Human3.6M (metadata.xml), MPI-INF-3DHP (camera.calibration, .calib), projection.

Conventions (the camera files are described in `docs/datasets.md` sections 3.3, 4.2 and 4.3):

* `Camera.R_w2c` rotates world into camera coordinates and `Camera.t_centre_world` is the
  **camera centre in world coordinates, mm**: `X_cam = R_w2c (X_world - t_centre_world)`.
  Camera frame: x right, y down, z forward (OpenCV), mm.
* Distortion coefficients are kept as `k = (k1, k2, k3)` and `p = (p1, p2)` in metadata order.
  The 5-vector form used by records and `project_points` is `(k1, k2, k3, p1, p2)`.
* Two distortion models exist and they differ in the tangential terms:

  - `"h36m"` (the model under which H36M's D2_Positions were made):
    `x' = x (radial + p1 y + p2 x) + p2 r^2`, `y' = y (radial + p1 y + p2 x) + p1 r^2`.
  - `"opencv"` (3DHP test cameras TS5-6, "distortionModel OpenCV"):
    `x' = x radial + 2 p1 x y + p2 (r^2 + 2 x^2)`, `y' = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y`.

  `radial = 1 + k1 r^2 + k2 r^4 + k3 r^6` in both. With all coefficients zero both are pinhole.

Other conventions in circulation are converted at the boundary, never stored: mmpose's
`cameras.pkl` has R = camera->world and T in metres; VideoPose3D stores tangential as [p2, p1].

The three file loaders take a local path, or the file's content (`text=`) with the path it came
from for the error messages, so callers that read through another filesystem (the Beam jobs'
`tf.io.gfile`: gs://, ram://, ...) need no local copy; this module itself stays free of
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

DISTORTION_MODELS = ("h36m", "opencv")

# H36M cameras in metadata.xml order (<index2id>); the index is the `cam` of the w0 layout.
H36M_CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
H36M_NUM_SUBJECTS = 11  # w0 holds extrinsics for S1..S11, including the unreleased ones
H36M_W0_LENGTH = 6 * 4 * H36M_NUM_SUBJECTS + 9 * 4  # 264 extrinsic + 36 intrinsic numbers = 300
# The 15 evaluation actions in <actionnames> order; "Miscellaneous" (the _ALL files) is skipped.
H36M_MISC_ACTION = "Miscellaneous"

# 3DHP test-set image sizes (width, height): the .calib files do not store them.
MPI3DHP_TEST_IMAGE_SIZE: dict[str, tuple[int, int]] = {
    "TS1": (2048, 2048),
    "TS2": (2048, 2048),
    "TS3": (2048, 2048),
    "TS4": (2048, 2048),
    "TS5": (1920, 1080),
    "TS6": (1920, 1080),
}


# ----------------------------------------------------------------------------------------------
# The camera.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera (pixel intrinsics, distortion, world pose).

    Attributes:
        id: camera name, e.g. "54138969" or "TS1".
        R_w2c: (3, 3) world->camera rotation.
        t_centre_world: (3,) camera centre in world coordinates, mm.
        fx, fy, cx, cy: pixel intrinsics (0-based pixel centres as in the source data).
        k: (3,) radial k1, k2, k3.
        p: (2,) tangential p1, p2 (see the module docstring for the model).
        width, height: image size in pixels.
        distortion_model: "h36m" or "opencv".
    """

    id: str
    R_w2c: np.ndarray
    t_centre_world: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    k: np.ndarray
    p: np.ndarray
    width: int
    height: int
    distortion_model: str = "h36m"

    def __post_init__(self):
        # Arrays are copied and frozen so a shared Camera cannot be mutated by a caller.
        for name, shape in (("R_w2c", (3, 3)), ("t_centre_world", (3,)), ("k", (3,)), ("p", (2,))):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(
                    f"Camera {self.id!r}: {name} must have shape {shape}. Received: {value.shape}"
                )
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(
                f"Camera {self.id!r}: distortion_model must be one of {DISTORTION_MODELS}. "
                f"Received: {self.distortion_model!r}"
            )
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def intrinsics(self) -> np.ndarray:
        """(4,) fx, fy, cx, cy."""
        return np.array([self.fx, self.fy, self.cx, self.cy])

    @property
    def distortion(self) -> np.ndarray:
        """(5,) k1, k2, k3, p1, p2 (the record schema's order)."""
        return np.concatenate([self.k, self.p])

    @property
    def translation(self) -> np.ndarray:
        """(3,) t of `X_cam = R_w2c X_world + t`, mm (= -R_w2c @ centre)."""
        return -self.R_w2c @ self.t_centre_world

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(..., 3) world mm -> (..., 3) camera mm."""
        return world_to_camera(points_world, self.R_w2c, self.t_centre_world)

    def camera_to_world(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera mm -> (..., 3) world mm."""
        return camera_to_world(points_cam, self.R_w2c, self.t_centre_world)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points (any unit) -> (..., 2) distorted pixels."""
        return project_points(points_cam, self.intrinsics, self.distortion, self.distortion_model)

    def replace(self, **changes) -> Camera:
        """A copy with some fields changed (e.g. intrinsics adjusted to a crop)."""
        return dataclasses.replace(self, **changes)


def world_to_camera(
    points_world: np.ndarray, R_w2c: np.ndarray, t_centre_world: np.ndarray
) -> np.ndarray:
    """`X_cam = R_w2c (X_world - centre)`; points (..., 3), returns (..., 3)."""
    points = np.asarray(points_world, dtype=np.float64)
    return (points - np.asarray(t_centre_world)) @ np.asarray(R_w2c).T


def camera_to_world(
    points_cam: np.ndarray, R_w2c: np.ndarray, t_centre_world: np.ndarray
) -> np.ndarray:
    """Inverse of `world_to_camera`: `X_world = R_w2c^T X_cam + centre`."""
    points = np.asarray(points_cam, dtype=np.float64)
    return points @ np.asarray(R_w2c) + np.asarray(t_centre_world)


def _check_model(model: str) -> None:
    if model not in DISTORTION_MODELS:
        raise ValueError(
            f"distortion model must be one of {DISTORTION_MODELS}. Received: {model!r}"
        )


def _broadcast_params(params: np.ndarray, points_rank: int) -> np.ndarray:
    # Parameters are (..., P) over the leading batch dims of points (B, ..., 3); insert singleton
    # axes before the last one until ranks match so (B, 4) works with (B, J, 3).
    while params.ndim < points_rank:
        params = np.expand_dims(params, -2)
    return params


def project_points(
    points_cam: np.ndarray,
    intrinsics: np.ndarray,
    distortion: np.ndarray | None = None,
    model: str = "h36m",
) -> np.ndarray:
    """Projects camera-frame points to distorted pixels (NumPy, float64).

    Args:
        points_cam: (..., 3) camera-frame points; any unit (only ratios X/Z, Y/Z matter).
        intrinsics: (4,) or (B, 4) fx, fy, cx, cy; a leading B matches points' first axis.
        distortion: (5,) or (B, 5) k1, k2, k3, p1, p2, or None for pinhole.
        model: "h36m" or "opencv" (module docstring).

    Returns:
        (..., 2) pixel coordinates u, v.
    """
    _check_model(model)
    points = np.asarray(points_cam, dtype=np.float64)
    if points.shape[-1] != 3:
        raise ValueError(f"points_cam must end in 3 coordinates. Received shape {points.shape}")
    intr = _broadcast_params(np.asarray(intrinsics, dtype=np.float64), points.ndim)
    if distortion is None:
        distortion = np.zeros(5)
    dist = _broadcast_params(np.asarray(distortion, dtype=np.float64), points.ndim)
    x = points[..., 0] / points[..., 2]
    y = points[..., 1] / points[..., 2]
    k1, k2, k3, p1, p2 = (dist[..., i] for i in range(5))
    x_d, y_d = _distort(x, y, k1, k2, k3, p1, p2, model)
    u = intr[..., 0] * x_d + intr[..., 2]
    v = intr[..., 1] * y_d + intr[..., 3]
    return np.stack([u, v], axis=-1)


def _distort(x, y, k1, k2, k3, p1, p2, model):
    # Shared by NumPy and TF: only arithmetic, so the two versions cannot drift apart.
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    if model == "h36m":
        tan = p1 * y + p2 * x
        return x * (radial + tan) + p2 * r2, y * (radial + tan) + p1 * r2
    return (
        x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
        y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
    )


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """`Rx(rx) @ Ry(ry) @ Rz(rz)` (radians): H36M's world->camera rotation from w0 angles."""
    cx_, sx = np.cos(rx), np.sin(rx)
    cy_, sy = np.cos(ry), np.sin(ry)
    cz, sz = np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx_, -sx], [0, sx, cx_]])
    r_y = np.array([[cy_, 0, sy], [0, 1, 0], [-sy, 0, cy_]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_x @ r_y @ r_z


# ----------------------------------------------------------------------------------------------
# Human3.6M metadata.xml.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class H36MMetadata:
    """What loaders need from metadata.xml.

    Attributes:
        cameras: (subject, camera_id) -> Camera, e.g. ("S1", "54138969"); all 11 subjects.
        mapping: subject -> list of (action_name, [file prefix of sub-action 1, 2]) in
            <mapping> order, e.g. ("Eating", ["Eating 2", "Eating"]) for S1. Includes the
            "Miscellaneous" (_ALL) action; see `action_sequences`.
        frames: (subject, file prefix) -> video frame counts per camera, `camera_ids` order.
        camera_ids: <index2id>, the w0 camera order.
        action_names: <actionnames> (1-based action index i is action_names[i - 1]).
        resolutions: (subject, camera_id) -> (width, height) from the <mapping> size row.
        train_subjects, val_subjects, test_subjects: the file's own server split ("S1", ...);
            not the paper's protocol split (train S1 S5 S6 S7 S8, test S9 S11).
        path: where it was read from.
    """

    cameras: dict
    mapping: dict
    frames: dict
    camera_ids: tuple
    action_names: tuple
    resolutions: dict
    train_subjects: tuple
    val_subjects: tuple
    test_subjects: tuple
    path: str = ""

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(self.mapping)

    def action_sequences(self, subject: str, include_misc: bool = False) -> list[tuple[str, str]]:
        """(action_name, file prefix) for every sequence of a subject, misc (_ALL) excluded."""
        if subject not in self.mapping:
            raise KeyError(
                f"{self.path}: subject {subject!r} not in <mapping>; known: {list(self.mapping)}"
            )
        return [
            (action, prefix)
            for action, prefixes in self.mapping[subject]
            if include_misc or action != H36M_MISC_ACTION
            for prefix in prefixes
        ]


def _err(path, tag, what) -> ValueError:
    return ValueError(f"{path}: <{tag}> {what}")


def _numbers(text: str | None, path, tag) -> np.ndarray:
    # MATLAB-style "[1 2 3;4 5 6]" -> rows; a ';' starts a new row.
    if text is None:
        raise _err(path, tag, "is empty")
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    rows = [r.split() for r in body.split(";")]
    try:
        values = [[float(v) for v in r] for r in rows]
    except ValueError as e:
        raise _err(path, tag, f"holds a non-number ({e}): {text[:60]!r}") from None
    if len({len(r) for r in values}) != 1:
        raise _err(path, tag, f"has ragged rows: {text[:60]!r}")
    arr = np.array(values)
    return arr[0] if arr.shape[0] == 1 else arr


def _find(root, tag, path):
    node = root.find(tag)
    if node is None:
        raise _err(path, tag, "is missing")
    return node


def _subject_list(root, tag, path) -> tuple[str, ...]:
    values = np.atleast_1d(_numbers(_find(root, tag, path).text, path, tag))
    return tuple(f"S{int(v)}" for v in values)


def _cameras_from_w0(w0: np.ndarray, camera_ids, resolutions, path) -> dict:
    if w0.shape != (H36M_W0_LENGTH,):
        raise _err(path, "w0", f"must hold {H36M_W0_LENGTH} numbers. Received: {w0.size}")
    cameras = {}
    n_cam = len(camera_ids)
    for c, cam_id in enumerate(camera_ids):
        intr = w0[6 * n_cam * H36M_NUM_SUBJECTS + 9 * c :][:9]
        fx, fy, cx, cy = intr[:4]
        for s in range(H36M_NUM_SUBJECTS):
            rx, ry, rz, tx, ty, tz = w0[6 * (c * H36M_NUM_SUBJECTS + s) :][:6]
            subject = f"S{s + 1}"
            # Fallback when a (generated) file lacks the size row: docs/datasets.md 3.3's rule.
            default = (1000, 1002) if c in (0, 3) else (1000, 1000)
            width, height = resolutions.get((subject, cam_id), default)
            cameras[(subject, cam_id)] = Camera(
                id=cam_id,
                R_w2c=rotation_xyz(rx, ry, rz),
                t_centre_world=(tx, ty, tz),
                fx=fx,
                fy=fy,
                cx=cx,
                cy=cy,
                k=intr[4:7],
                p=intr[7:9],
                width=width,
                height=height,
                distortion_model="h36m",
            )
    return cameras


def _read_text(path: str, text: str | bytes | None) -> str:
    """The loader's input: `text` when given (bytes are UTF-8), else the local file `path`."""
    if text is None:
        return pathlib.Path(path).read_text(encoding="utf-8")
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    return text


def load_h36m_metadata(path: str | os.PathLike, *, text: str | bytes | None = None) -> H36MMetadata:
    """Parses the official Human3.6M metadata.xml.

    Args:
        path: the metadata.xml file: read from local disk when `text` is None, else only
            named in errors and kept as `H36MMetadata.path` (any URL, e.g. gs://.../x.xml).
        text: the file's content (str or bytes), e.g. read through tf.io.gfile.

    Returns:
        H36MMetadata. Raises ValueError naming the file and the tag on malformed input.
    """
    path = os.fspath(path)
    try:
        # Bytes go to the XML parser as they are, so it honours the file's declared encoding.
        data = pathlib.Path(path).read_bytes() if text is None else text
        root = ET.fromstring(data)
    except (ET.ParseError, OSError) as e:
        raise ValueError(f"{path}: cannot parse as XML: {e}") from None

    camera_ids = tuple(
        (item.text or "").strip()
        for item in _find(root, "dbcameras/index2id", path).findall("item")
    )
    if not camera_ids or any(not c for c in camera_ids):
        raise _err(path, "index2id", f"must list camera ids. Received: {camera_ids}")
    action_names = tuple(
        (i.text or "").strip() for i in _find(root, "actionnames", path).findall("item")
    )

    # <mapping>: header row (Action, subaction, S1..S11), 2 rows per action, then a second
    # header (subject names) and a row of per-camera "[h w;h w;...]" image sizes.
    rows = [
        [(td.text or "").strip() for td in tr.findall("td")]
        for tr in _find(root, "mapping", path).findall("tr")
    ]
    if not rows or rows[0][:2] != ["Action", "subaction"]:
        raise _err(path, "mapping", "must start with an 'Action', 'subaction', S... header row")
    subjects = rows[0][2:]
    mapping: dict[str, list] = {s: [] for s in subjects}
    resolutions: dict[tuple[str, str], tuple[int, int]] = {}
    seq_rows = []
    for row in rows[1:]:
        if len(row) != 2 + len(subjects):
            raise _err(
                path, "mapping", f"row has {len(row)} cells, expected {2 + len(subjects)}: {row}"
            )
        if row[0].isdigit() and row[1].isdigit():
            seq_rows.append(row)
        elif row[0] == "" and row[2].startswith("["):
            for s, cell in zip(subjects, row[2:]):
                sizes = _numbers(cell, path, "mapping")  # (cams, 2) = height, width
                if sizes.shape != (len(camera_ids), 2):
                    raise _err(
                        path,
                        "mapping",
                        f"size cell for {s} must be {len(camera_ids)}x2 [h w]. Received: {cell!r}",
                    )
                for cam_id, (h, w) in zip(camera_ids, sizes):
                    resolutions[(s, cam_id)] = (int(w), int(h))
    by_action: dict[int, list] = {}
    for row in seq_rows:
        by_action.setdefault(int(row[0]), []).append(row)
    for action, action_rows in by_action.items():
        if not 1 <= action <= len(action_names):
            raise _err(
                path,
                "mapping",
                f"action index {action} outside <actionnames> (1..{len(action_names)})",
            )
        action_rows.sort(key=lambda r: int(r[1]))
        for i, s in enumerate(subjects):
            mapping[s].append((action_names[action - 1], [r[2 + i] for r in action_rows]))

    # <frames>: one row per subject, a leading empty cell, then one "[c1 c2 c3 c4 total]" per
    # <mapping> sequence row, in the same order.
    frames: dict[tuple[str, str], tuple[int, ...]] = {}
    frame_rows = _find(root, "frames", path).findall("tr")
    if len(frame_rows) != len(subjects):
        raise _err(
            path,
            "frames",
            f"has {len(frame_rows)} rows, expected one per subject ({len(subjects)})",
        )
    for s, tr in zip(subjects, frame_rows):
        cells = [td.text for td in tr.findall("td")][1:]
        if len(cells) != len(seq_rows):
            raise _err(
                path,
                "frames",
                f"row for {s} has {len(cells)} sequence cells, expected {len(seq_rows)}",
            )
        column = subjects.index(s)
        for row, cell in zip(seq_rows, cells):
            counts = np.atleast_1d(_numbers(cell, path, "frames"))
            if counts.size < len(camera_ids):
                raise _err(
                    path,
                    "frames",
                    f"cell for {s} {row[2 + column]!r} has "
                    f"{counts.size} numbers, expected >= {len(camera_ids)}",
                )
            frames[(s, row[2 + column])] = tuple(int(c) for c in counts[: len(camera_ids)])

    w0 = np.atleast_1d(_numbers(_find(root, "w0", path).text, path, "w0"))
    cameras = _cameras_from_w0(w0, camera_ids, resolutions, path)
    return H36MMetadata(
        cameras=cameras,
        mapping=mapping,
        frames=frames,
        camera_ids=camera_ids,
        action_names=action_names,
        resolutions=resolutions,
        train_subjects=_subject_list(root, "train_subjects", path),
        val_subjects=_subject_list(root, "val_subjects", path),
        test_subjects=_subject_list(root, "test_subjects", path),
        path=path,
    )


def load_h36m_cameras(metadata_xml_path: str | os.PathLike) -> dict[tuple[str, str], Camera]:
    """(subject e.g. "S1", camera id e.g. "54138969") -> Camera, from metadata.xml's <w0>."""
    return load_h36m_metadata(metadata_xml_path).cameras


# ----------------------------------------------------------------------------------------------
# MPI-INF-3DHP training cameras: camera.calibration ("Skeletool Camera Calibration File V1.0").
# ----------------------------------------------------------------------------------------------
_SKELETOOL_HEADER = "Skeletool Camera Calibration File"


def load_3dhp_calibration(
    path: str | os.PathLike, *, text: str | bytes | None = None
) -> dict[str, Camera]:
    """Parses a 3DHP training `camera.calibration` into camera name ("0".."13") -> Camera.

    Lines are parsed by keyword (real lines carry trailing spaces). `intrinsic` is a row-major
    4x4 K, `extrinsic` a row-major 4x4 world->camera [R|t] with t in mm. No distortion.

    Args:
        path: the file: read from local disk when `text` is None, else only named in errors.
        text: the file's content (str or UTF-8 bytes), e.g. read through tf.io.gfile.
    """
    path = os.fspath(path)
    lines = _read_text(path, text).splitlines()
    if not lines or not lines[0].strip().startswith(_SKELETOOL_HEADER):
        raise ValueError(
            f"{path}: first line must be {_SKELETOOL_HEADER!r}. "
            f"Received: {lines[0] if lines else ''!r}"
        )
    blocks: list[dict[str, list[str]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        key, values = parts[0], parts[1:]
        if key == "name":
            blocks.append({"name": values, "_line": [str(lineno)]})
        elif not blocks:
            raise ValueError(f"{path}:{lineno}: field {key!r} before any 'name' line")
        else:
            blocks[-1][key] = values
    cameras = {}
    for block in blocks:
        where = f"{path}:{block['_line'][0]} (camera {' '.join(block['name'])})"
        for key, n in (("size", 2), ("intrinsic", 16), ("extrinsic", 16)):
            if key not in block:
                raise ValueError(f"{where}: missing field {key!r}")
            if len(block[key]) != n:
                raise ValueError(
                    f"{where}: field {key!r} must have {n} numbers. Received: {len(block[key])}"
                )
        try:
            K = np.array(block["intrinsic"], dtype=np.float64).reshape(4, 4)
            E = np.array(block["extrinsic"], dtype=np.float64).reshape(4, 4)
            width, height = (int(float(v)) for v in block["size"])
        except ValueError as e:
            raise ValueError(f"{where}: non-numeric value: {e}") from None
        R = E[:3, :3]
        name = block["name"][0]
        cameras[name] = Camera(
            id=name,
            R_w2c=R,
            t_centre_world=-R.T @ E[:3, 3],
            fx=K[0, 0],
            fy=K[1, 1],
            cx=K[0, 2],
            cy=K[1, 2],
            k=np.zeros(3),
            p=np.zeros(2),
            width=width,
            height=height,
            distortion_model="h36m",  # all zero: pinhole
        )
    if not cameras:
        raise ValueError(f"{path}: no 'name' blocks found")
    return cameras


# ----------------------------------------------------------------------------------------------
# MPI-INF-3DHP test cameras: .calib ("tc camera calibration v0.3").
# ----------------------------------------------------------------------------------------------
_TC_HEADER = "tc camera calibration"


def load_3dhp_test_calib(
    path: str | os.PathLike, image_size: tuple[int, int], *, text: str | bytes | None = None
) -> list[Camera]:
    """Parses an official 3DHP test `.calib` file into Cameras (one per `camera` entry).

    Pixel intrinsics: `fx = f_mm / sensor_w_mm * W`, `fy = fx * pixelAspect` (y / x),
    `cx = W/2 + offset_x_mm * W / sensor_w_mm`, `cy = H/2 + offset_y_mm * H / sensor_h_mm`
    (positive offsets move right and down). `distortion` is OpenCV [k1, k2, p1, p2, k3].
    Pose: `origin` (camera centre, mm), `up` and `right` world vectors; the camera frame is
    x = right, y = -up, z = x cross y (forward). The pose convention is derived, not verified
    against world-frame ground truth (the test annotations are camera-frame).

    Args:
        path: the .calib file: read from local disk when `text` is None, else only named in
            errors.
        image_size: (width, height) px; the file does not store it (MPI3DHP_TEST_IMAGE_SIZE).
        text: the file's content (str or UTF-8 bytes), e.g. read through tf.io.gfile.
    """
    path = os.fspath(path)
    lines = _read_text(path, text).splitlines()
    if not lines or not lines[0].strip().startswith(_TC_HEADER):
        raise ValueError(
            f"{path}: first line must start with {_TC_HEADER!r}. "
            f"Received: {lines[0] if lines else ''!r}"
        )
    entries: list[dict[str, list[str]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.split("#", 1)[0]  # strip "# in mm" comments
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "camera":
            entries.append({"camera": parts[1:], "_line": [str(lineno)]})
        elif entries:
            entries[-1][parts[0]] = parts[1:]
    if not entries:
        raise ValueError(f"{path}: no 'camera' entries found")
    width, height = (int(v) for v in image_size)
    cameras = []
    for entry in entries:
        where = f"{path}:{entry['_line'][0]} (camera {' '.join(entry['camera'])})"
        expected = {
            "sensorSize": 2,
            "focalLength": 1,
            "pixelAspect": 1,
            "centerOffset": 2,
            "distortion": 5,
            "origin": 3,
            "up": 3,
            "right": 3,
        }
        values = {}
        for key, n in expected.items():
            if key not in entry:
                raise ValueError(f"{where}: missing field {key!r}")
            try:
                values[key] = np.array(entry[key], dtype=np.float64)
            except ValueError:
                raise ValueError(f"{where}: field {key!r} is not numeric: {entry[key]}") from None
            if values[key].size != n:
                raise ValueError(
                    f"{where}: field {key!r} must have {n} numbers. Received: {values[key].size}"
                )
        model = (entry.get("distortionModel") or ["OpenCV"])[0]
        if model.lower() != "opencv":
            raise ValueError(f"{where}: distortionModel must be 'OpenCV'. Received: {model!r}")
        sensor_w, sensor_h = values["sensorSize"]
        fx = values["focalLength"][0] / sensor_w * width
        fy = fx * values["pixelAspect"][0]
        cx = width / 2.0 + values["centerOffset"][0] / sensor_w * width
        cy = height / 2.0 + values["centerOffset"][1] / sensor_h * height
        k1, k2, p1, p2, k3 = values["distortion"]
        right = values["right"] / np.linalg.norm(values["right"])
        down = -values["up"]
        forward = np.cross(right, down)
        forward /= np.linalg.norm(forward)
        down = np.cross(forward, right)  # re-orthogonalise: up and right are rounded
        cameras.append(
            Camera(
                id=entry["camera"][-1] if entry["camera"] else "",
                R_w2c=np.stack([right, down, forward]),
                t_centre_world=values["origin"],
                fx=fx,
                fy=fy,
                cx=cx,
                cy=cy,
                k=(k1, k2, k3),
                p=(p1, p2),
                width=width,
                height=height,
                distortion_model="opencv",
            )
        )
    return cameras
