"""Procedural people: the embedded default dataset, rendered with exact 2D and 3D labels.

Each subject is a skeleton with human bone proportions (`skeleton.STANDARD_BONE_LENGTHS_MM`,
scaled per subject by 0.9-1.1, left and right bones exactly equal). Each sequence is a smooth
motion (sums of sinusoids in joint angles, one of a few motion styles) seen by one random
pinhole camera 3-6 m away. Every joint angle stays inside its limits by construction: elbows
and knees bend only to the legal side of Eq. 1 (`skeleton.ANGLE_LIMBS`), with margin.

The image is learnable, with the depth cues a monocular network needs: limbs are shaded
capsules drawn far to near (occlusion order), their width follows perspective and their
brightness follows depth relative to the pelvis; left limbs are blue-ish, right limbs red-ish,
the torso front carries an emblem and the head a face mark, so front/back and left/right are
visible; backgrounds are gradients, low-frequency noise and random shapes.

Frames: body frame x = the subject's left, y = up, z = forward (right-handed); the camera
frame is x right, y down, z forward (right-handed, a proper rotation away), so the Eq. 1
triple products have the same sign in both.

Subjects named `2d_*` are 2D-only: their records drop the 3D labels and intrinsics
(`has_3d` = False), like MPII, so the 2D/3D training mix can be exercised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.config import SyntheticConfig
from keras_pose3d.data import crop_geometry, features, jpeg

logger = logging.getLogger(__name__)

DATASET_NAME = "synthetic"
ORIG_SIZE = (1000, 1000)  # (h, w) of the virtual camera image
FPS = 25.0  # TP-Net's frame rate (config.TP_NET_FRAME_RATE): the sequences are rendered at it
MOTION_STYLES: tuple[str, ...] = ("walk", "squat", "wave", "reach", "dance")
# The record crops' JPEG quality (not `jpeg.DEFAULT_QUALITY`): changing it changes every
# synthetic record's bytes.
JPEG_QUALITY = 92

# Joint indices used below (MPII-16).
_J = skeleton.J
_BONE_INDEX = {bone: i for i, bone in enumerate(skeleton.BONES)}


# ----------------------------------------------------------------------------------------------
# Skeleton and poses.
# ----------------------------------------------------------------------------------------------
def subject_bone_lengths(rng: np.random.Generator) -> np.ndarray:
    """(15,) bone lengths in mm in `skeleton.BONES` order; left == right exactly.

    The standard lengths are made symmetric (mean of the pair), scaled by one factor in
    [0.9, 1.1] per subject, and varied by +-4 % per bone pair so proportions differ a little.
    """
    base = np.asarray(skeleton.STANDARD_BONE_LENGTHS_MM, np.float64).copy()
    pairs = [(_BONE_INDEX[r], _BONE_INDEX[l]) for r, l in skeleton.SYMMETRY_BONE_PAIRS]
    pairs += [
        (_BONE_INDEX[(2, 6)], _BONE_INDEX[(3, 6)]),
        (_BONE_INDEX[(12, 7)], _BONE_INDEX[(13, 7)]),
    ]
    for r, l in pairs:
        base[r] = base[l] = 0.5 * (base[r] + base[l])
    lengths = base * rng.uniform(0.9, 1.1)
    for r, l in pairs:
        factor = rng.uniform(0.96, 1.04)
        lengths[r] = lengths[l] = lengths[r] * factor
    return lengths


# Joint-angle parameters: name -> (low, high) in degrees. Every motion stays inside them.
ANGLE_RANGES: dict[str, tuple[float, float]] = {
    "lean": (-10.0, 45.0),  # torso forward bend
    "side": (-15.0, 15.0),  # torso side bend
    "twist": (-30.0, 30.0),  # shoulders about the spine
    "head_pitch": (-20.0, 30.0),
    "head_roll": (-15.0, 15.0),
    "arm_elev": (5.0, 150.0),  # upper arm from hanging (0) towards up
    "arm_azim": (-40.0, 110.0),  # 0 sideways, 90 forward, < 0 backward
    "arm_twist": (-60.0, 60.0),  # elbow bend plane about the upper arm
    "elbow": (5.0, 145.0),  # flexion
    "hip_flex": (-25.0, 110.0),  # thigh forward (> 0) / backward
    "hip_abd": (-10.0, 45.0),  # thigh outward
    "leg_twist": (-30.0, 30.0),
    "knee": (3.0, 140.0),
}
_SIDED = ("arm_elev", "arm_azim", "arm_twist", "elbow", "hip_flex", "hip_abd", "leg_twist", "knee")
PARAM_NAMES: tuple[str, ...] = ("lean", "side", "twist", "head_pitch", "head_roll") + tuple(
    f"{side}_{name}" for side in ("l", "r") for name in _SIDED
)


def _param_range(name: str) -> tuple[float, float]:
    key = name[2:] if name[:2] in ("l_", "r_") else name
    return ANGLE_RANGES[key]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / math.sqrt(float(v @ v))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~10 us per call on 3-vectors; this path renders thousands of frames.
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _limit_along(u: np.ndarray, axis: np.ndarray, max_cos: float) -> np.ndarray:
    """Keeps the angle between unit u and unit axis at least acos(max_cos), continuously."""
    c = float(u @ axis)
    if c <= max_cos:
        return u
    perp = u - c * axis
    return max_cos * axis + math.sqrt(1 - max_cos**2) * _unit(perp)


def _bend(
    joints: np.ndarray, limb: tuple, upper_dir: np.ndarray, flex: float, twist: float
) -> np.ndarray:
    """Direction of the lower limb: on the legal side of Eq. 1 by construction.

    The legal side is sign * (P_a - P_n) x (P_b - P_a) (`skeleton.ANGLE_LIMBS`); the bend plane
    is turned by `twist` (|twist| < 90 deg) about the upper limb, and the lower limb makes the
    angle `flex` (0 < flex < 180 deg) with the upper one, so the Eq. 1 product is
    |n| sin(flex) cos(twist) > 0.
    """
    _, n_idx, a_idx, _, _, sign = limb
    normal = _cross(joints[a_idx] - joints[n_idx], upper_dir)
    legal = sign * _unit(normal)
    bend = math.cos(twist) * legal + math.sin(twist) * _cross(upper_dir, legal)
    return math.cos(flex) * upper_dir + math.sin(flex) * bend


def pose_from_angles(angles: dict[str, float], bones: np.ndarray) -> np.ndarray:
    """(16, 3) body-frame joints (mm, pelvis at the origin) from joint angles in degrees.

    Args:
        angles: a value for every name in `PARAM_NAMES`.
        bones: (15,) bone lengths in `skeleton.BONES` order.
    """
    a = {k: math.radians(v) for k, v in angles.items()}
    length = {bone: bones[i] for bone, i in _BONE_INDEX.items()}
    ex, ey, ez = np.eye(3)
    joints = np.zeros((skeleton.NUM_JOINTS, 3))
    limbs = {limb[0]: limb for limb in skeleton.ANGLE_LIMBS}

    # Torso frame: side bend about z, forward lean about x (y towards z), twist about the spine.
    lean = _rot(ex, a["lean"])  # rotates y towards +z (forward)
    torso = _rot(ez, -a["side"]) @ lean
    spine = torso @ ey
    twist = _rot(spine, a["twist"]) @ torso
    tx, ty, tz = twist[:, 0], twist[:, 1], twist[:, 2]

    joints[_J["r_hip"]] = -length[(2, 6)] * ex
    joints[_J["l_hip"]] = length[(3, 6)] * ex
    joints[_J["thorax"]] = length[(7, 6)] * spine
    head = twist @ _rot(ex, a["head_pitch"]) @ _rot(ez, a["head_roll"]) @ ey
    joints[_J["upper_neck"]] = joints[_J["thorax"]] + length[(8, 7)] * head
    joints[_J["head_top"]] = joints[_J["upper_neck"]] + length[(9, 8)] * head
    droop = math.radians(10.0)  # shoulders sit a little below the thorax point
    for side, sgn, (shoulder, elbow, wrist) in (
        ("l", 1.0, (13, 14, 15)),
        ("r", -1.0, (12, 11, 10)),
    ):
        collar = _unit(sgn * math.cos(droop) * tx - math.sin(droop) * ty)
        joints[shoulder] = joints[_J["thorax"]] + length[(shoulder, 7)] * collar
        elev, azim = a[f"{side}_arm_elev"], a[f"{side}_arm_azim"]
        upper = -math.cos(elev) * ty + math.sin(elev) * (
            math.cos(azim) * sgn * tx + math.sin(azim) * tz
        )
        # Never along the collar bone: the Eq. 1 plane (and a real shoulder) needs an angle.
        upper = _limit_along(_unit(upper), collar, math.cos(math.radians(35.0)))
        joints[elbow] = joints[shoulder] + length[(elbow, shoulder)] * upper
        lower = _bend(
            joints, limbs[f"{side}_elbow"], upper, a[f"{side}_elbow"], a[f"{side}_arm_twist"]
        )
        joints[wrist] = joints[elbow] + length[(wrist, elbow)] * lower
    for side, sgn, (hip, knee, ankle) in (("l", 1.0, (3, 4, 5)), ("r", -1.0, (2, 1, 0))):
        flex, abd = a[f"{side}_hip_flex"], a[f"{side}_hip_abd"]
        thigh = math.cos(abd) * (-math.cos(flex) * ey + math.sin(flex) * ez) + math.sin(abd) * (
            sgn * ex
        )
        joints[knee] = joints[hip] + length[(knee, hip)] * thigh
        shin = _bend(
            joints, limbs[f"{side}_knee"], thigh, a[f"{side}_knee"], a[f"{side}_leg_twist"]
        )
        joints[ankle] = joints[knee] + length[(ankle, knee)] * shin
    return joints


# ----------------------------------------------------------------------------------------------
# Motion.
# ----------------------------------------------------------------------------------------------
def _style_targets(style: str, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Per-parameter (centre, amplitude) fractions of the range for a motion style."""
    t: dict[str, tuple[float, float]] = {}
    if style == "walk":
        t.update({"l_hip_flex": (0.25, 0.15), "r_hip_flex": (0.25, 0.15)})
        t.update({"l_knee": (0.2, 0.15), "r_knee": (0.2, 0.15)})
        t.update({"l_arm_azim": (0.5, 0.25), "r_arm_azim": (0.5, 0.25)})
        t.update({"l_arm_elev": (0.1, 0.05), "r_arm_elev": (0.1, 0.05)})
    elif style == "squat":
        t.update({"l_hip_flex": (0.5, 0.3), "r_hip_flex": (0.5, 0.3)})
        t.update({"l_knee": (0.5, 0.4), "r_knee": (0.5, 0.4), "lean": (0.5, 0.3)})
        t.update({"l_arm_elev": (0.45, 0.2), "r_arm_elev": (0.45, 0.2)})
        t.update({"l_arm_azim": (0.8, 0.1), "r_arm_azim": (0.8, 0.1)})
    elif style == "wave":
        side = "l" if rng.uniform() < 0.5 else "r"
        t.update({f"{side}_arm_elev": (0.75, 0.1), f"{side}_elbow": (0.5, 0.35)})
        t.update({f"{side}_arm_azim": (0.45, 0.15)})
    elif style == "reach":
        for side in ("l", "r"):
            t[f"{side}_arm_elev"] = (rng.uniform(0.3, 0.8), 0.3)
            t[f"{side}_arm_azim"] = (rng.uniform(0.3, 0.9), 0.2)
            t[f"{side}_elbow"] = (0.3, 0.25)
        t["lean"] = (0.4, 0.3)
        t["twist"] = (0.5, 0.4)
    # "dance" and all the rest: everything moves, from random centres.
    return t


def sample_motion(
    rng: np.random.Generator, style: str, num_frames: int, fps: float = FPS
) -> dict[str, np.ndarray]:
    """Smooth joint-angle trajectories (degrees), each inside its `ANGLE_RANGES` range.

    Every parameter is centre + amplitude * (two sinusoids with weights summing to 1), with
    centre +- amplitude inside the range, so no frame leaves it. Frequencies 0.1-0.6 Hz.

    Returns:
        name -> (num_frames,) degrees, for every name in `PARAM_NAMES`.
    """
    targets = _style_targets(style, rng)
    t = np.arange(num_frames) / fps
    base_freq = rng.uniform(0.25, 0.6)
    out = {}
    for name in PARAM_NAMES:
        lo, hi = _param_range(name)
        if name in targets:
            c_frac, a_frac = targets[name]
        else:
            c_frac = rng.uniform(0.15, 0.45) if style != "dance" else rng.uniform(0.2, 0.8)
            a_frac = rng.uniform(0.0, 0.12) if style != "dance" else rng.uniform(0.05, 0.3)
        # Keep centre +- amplitude inside [0, 1] of the range.
        a_frac = min(a_frac, c_frac, 1.0 - c_frac)
        w = rng.uniform(0.6, 1.0)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        if style == "walk" and name.endswith(("hip_flex", "arm_azim", "knee")):
            # Legs (and arms) in antiphase, one shared gait frequency.
            phase[0] = (0.0 if name.startswith("l_") else np.pi) + (np.pi if "arm" in name else 0.0)
            wave = np.sin(2 * np.pi * base_freq * t + phase[0])
        else:
            f1, f2 = rng.uniform(0.1, 0.6, size=2)
            wave = w * np.sin(2 * np.pi * f1 * t + phase[0]) + (1 - w) * np.sin(
                2 * np.pi * f2 * t + phase[1]
            )
        out[name] = lo + (hi - lo) * (c_frac + a_frac * wave)
    return out


# ----------------------------------------------------------------------------------------------
# Camera.
# ----------------------------------------------------------------------------------------------
def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) world -> camera rotation (camera x right, y down, z forward; world y up)."""
    forward = _unit(target - position)
    right = _unit(_cross(forward, np.array([0.0, 1.0, 0.0])))
    down = _cross(forward, right)
    return np.stack([right, down, forward])


def random_camera(
    rng: np.random.Generator, elevation_deg: tuple[float, float] = (-5.0, 30.0)
) -> dict[str, np.ndarray]:
    """A pinhole camera 3-6 m from the person, random yaw, elevation uniform in `elevation_deg`.

    Returns:
        {"rotation": (3, 3) world -> camera, "position": (3,) mm, "intrinsics": (4,) fx, fy,
        cx, cy in px of the ORIG_SIZE image}.
    """
    distance = rng.uniform(3000.0, 6000.0)
    yaw = rng.uniform(0, 2 * np.pi)
    elevation = math.radians(rng.uniform(*elevation_deg))
    target = np.array([rng.uniform(-100, 100), rng.uniform(-100, 200), rng.uniform(-100, 100)])
    offset = distance * np.array(
        [
            math.cos(elevation) * math.sin(yaw),
            math.sin(elevation),
            math.cos(elevation) * math.cos(yaw),
        ]
    )
    position = target + offset
    focal = rng.uniform(900.0, 1400.0)
    h, w = ORIG_SIZE
    intrinsics = np.array(
        [
            focal,
            focal * rng.uniform(0.995, 1.005),
            w / 2 + rng.uniform(-20, 20),
            h / 2 + rng.uniform(-20, 20),
        ]
    )
    return {"rotation": look_at(position, target), "position": position, "intrinsics": intrinsics}


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(..., 3) camera mm -> (..., 2) px with (4,) fx, fy, cx, cy (no distortion)."""
    k = np.asarray(intrinsics, np.float64)
    return points_cam[..., :2] / points_cam[..., 2:3] * k[:2] + k[2:]


# ----------------------------------------------------------------------------------------------
# Rendering.
# ----------------------------------------------------------------------------------------------
# Limb radii (mm) per bone (child, parent); the torso and head are drawn separately.
_LIMB_RADIUS_MM: dict[tuple[int, int], float] = {
    (0, 1): 55.0,
    (5, 4): 55.0,  # shins
    (1, 2): 75.0,
    (4, 3): 75.0,  # thighs
    (10, 11): 38.0,
    (15, 14): 38.0,  # forearms
    (11, 12): 48.0,
    (14, 13): 48.0,  # upper arms
    (8, 7): 45.0,  # neck
}
_LEFT_BONES = {(5, 4), (4, 3), (15, 14), (14, 13)}
_RIGHT_BONES = {(0, 1), (1, 2), (10, 11), (11, 12)}
_LOWER_BONES = {(0, 1), (5, 4), (10, 11), (15, 14)}
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
_SCALE = 1 << _SHIFT


def _hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees) -> RGB float 0..255."""
    pixel = np.array([[[h / 2.0, s * 255.0, v * 255.0]]], np.float32).astype(np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def random_appearance(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Clothing colours: left limbs blue family, right limbs red/orange family (so left and
    right are told apart by colour), torso/neck a free colour, skin tone for the head."""
    return {
        "left": _hsv_colour(rng.uniform(195, 245), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.9)),
        "right": _hsv_colour(
            rng.uniform(-10, 30) % 360, rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.9)
        ),
        "torso": _hsv_colour(rng.uniform(60, 170), rng.uniform(0.3, 0.8), rng.uniform(0.4, 0.8)),
        "emblem": _hsv_colour(rng.uniform(40, 60), 0.9, 1.0),
        "head": _hsv_colour(rng.uniform(15, 35), rng.uniform(0.3, 0.6), rng.uniform(0.55, 0.9)),
    }


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: a gradient, low-frequency noise and random shapes."""
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = math.cos(angle) * xx + math.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)
    image = c0 + (c1 - c0) * ramp[..., None]
    cells = int(rng.integers(3, 9))
    noise = rng.normal(0, rng.uniform(10, 45), size=(cells, cells, 3))
    image += cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        p = rng.uniform(-0.2, 1.2, size=4) * size
        if kind == 0:
            cv2.rectangle(image, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, -1)
        elif kind == 1:
            radius = int(rng.uniform(0.05, 0.3) * size)
            cv2.circle(image, (int(p[0]), int(p[1])), radius, colour, -1, cv2.LINE_AA)
        else:
            thickness = int(rng.integers(1, max(2, size // 16)))
            cv2.line(
                image,
                (int(p[0]), int(p[1])),
                (int(p[2]), int(p[3])),
                colour,
                thickness,
                cv2.LINE_AA,
            )
    return image


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return math.floor(p[0] * _SCALE + 0.5), math.floor(p[1] * _SCALE + 0.5)


def _capsule(image, p0, p1, radius_px, colour) -> None:
    """A shaded cylinder: dark rim, mid tone, bright core (round caps come from cv2)."""
    a, b = _fixed(p0), _fixed(p1)
    r, g, bl = (float(v) for v in colour)
    for width, tone in ((1.0, 0.62), (0.68, 0.85), (0.32, 1.05)):
        thickness = max(1, int(2 * radius_px * width + 0.5))
        c = (min(r * tone, 255.0), min(g * tone, 255.0), min(bl * tone, 255.0))
        cv2.line(image, a, b, c, thickness, cv2.LINE_AA, _SHIFT)


def _depth_tone(z: float, z_root: float) -> float:
    # Nearer than the pelvis: brighter; farther: darker (about +-25 % per 600 mm).
    return min(max(1.0 - 0.42 * float(z - z_root) / 1000.0, 0.55), 1.4)


def render_person(
    background: np.ndarray,
    joints_2d: np.ndarray,
    joints_cam: np.ndarray,
    intrinsics: np.ndarray,
    appearance: dict[str, np.ndarray],
) -> np.ndarray:
    """Draws a person over a copy of `background`, far to near.

    Args:
        background: (S, S, 3) uint8.
        joints_2d: (16, 2) crop px (the projection of joints_cam).
        joints_cam: (16, 3) camera mm (depths set widths, brightness and drawing order).
        intrinsics: (4,) crop intrinsics (sets px per mm).
        appearance: `random_appearance` colours.

    Returns:
        (S, S, 3) uint8 RGB.
    """
    image = background.copy()
    fx = float(intrinsics[0])
    z = joints_cam[:, 2]
    z_root = float(z[skeleton.ROOT])
    items: list[tuple[float, Any]] = []

    for bone, radius in _LIMB_RADIUS_MM.items():
        child, parent = bone
        zm = 0.5 * (z[child] + z[parent])
        if bone in _LEFT_BONES:
            colour = appearance["left"]
        elif bone in _RIGHT_BONES:
            colour = appearance["right"]
        else:
            colour = appearance["torso"]
        if bone in _LOWER_BONES:  # forearm/shin a shade lighter: the elbow/knee shows
            colour = np.clip(colour * 1.18 + 12, 0, 255)
        colour = colour * _depth_tone(zm, z_root)
        radius_px = radius * fx / zm
        items.append((zm, ("capsule", joints_2d[child], joints_2d[parent], radius_px, colour)))

    # Torso: quad of shoulders and hips, plus a front emblem when it faces the camera.
    quad = [_J["r_shoulder"], _J["l_shoulder"], _J["l_hip"], _J["r_hip"]]
    z_torso = float(np.mean(z[quad]))
    right_vec = joints_cam[_J["r_shoulder"]] - joints_cam[_J["l_shoulder"]]
    up_vec = joints_cam[_J["thorax"]] - joints_cam[_J["pelvis"]]
    front = _cross(right_vec, up_vec)  # right x up = forward of the body (body's front)
    centre = np.mean(joints_cam[quad], axis=0)
    norms = math.sqrt(float(front @ front) * float(centre @ centre))
    # > 0 when the chest faces the camera (0 for a degenerate torso).
    facing = float(-(front @ centre) / norms) if norms > 0 else 0.0
    torso_colour = appearance["torso"] * _depth_tone(z_torso, z_root) * (0.8 + 0.25 * facing)
    items.append((z_torso, ("torso", joints_2d[quad], torso_colour, facing)))

    # Head: a disc centred between the upper neck and the head top; face mark when facing.
    head_centre_cam = joints_cam[_J["upper_neck"]] + 0.45 * (
        joints_cam[_J["head_top"]] - joints_cam[_J["upper_neck"]]
    )
    head_radius_mm = 0.75 * np.linalg.norm(
        joints_cam[_J["head_top"]] - joints_cam[_J["upper_neck"]]
    )
    zh = float(head_centre_cam[2])
    items.append(
        (
            zh,
            (
                "head",
                project(head_centre_cam, intrinsics),
                head_radius_mm * fx / zh,
                appearance["head"] * _depth_tone(zh, z_root),
                facing,
            ),
        )
    )

    for _, item in sorted(items, key=lambda it: -it[0]):  # far to near
        kind = item[0]
        if kind == "capsule":
            _capsule(image, item[1], item[2], item[3], item[4])
        elif kind == "torso":
            pts = np.round(item[1] * _SCALE).astype(np.int32)
            cv2.fillConvexPoly(
                image, pts, tuple(float(v) for v in np.clip(item[2], 0, 255)), cv2.LINE_AA, _SHIFT
            )
            if item[3] > 0.15:
                centre = (
                    np.mean(item[1], axis=0)
                    + 0.25 * (item[1][0] + item[1][1] - item[1][2] - item[1][3]) / 2
                )
                size = 0.18 * np.linalg.norm(item[1][0] - item[1][1]) * item[3]
                cv2.circle(
                    image,
                    _fixed(centre),
                    max(1, round(size * _SCALE)),
                    tuple(float(v) for v in appearance["emblem"]),
                    -1,
                    cv2.LINE_AA,
                    _SHIFT,
                )
        else:
            _, centre, radius_px, colour, facing_head = item
            radius = max(1, round(radius_px * _SCALE))
            cv2.circle(
                image,
                _fixed(centre),
                radius,
                tuple(float(v) for v in np.clip(colour * 0.7, 0, 255)),
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
            cv2.circle(
                image,
                _fixed(centre),
                max(1, int(radius * 0.8)),
                tuple(float(v) for v in np.clip(colour, 0, 255)),
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
            if facing_head > 0.15:  # eyes-level dark band: the face is towards the camera
                cv2.circle(
                    image,
                    _fixed(centre),
                    max(1, int(radius * 0.3)),
                    (40.0, 30.0, 30.0),
                    -1,
                    cv2.LINE_AA,
                    _SHIFT,
                )
    return image


# ----------------------------------------------------------------------------------------------
# Sequences -> records.
# ----------------------------------------------------------------------------------------------
def crop_box(joints_2d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Square crop (centre, side) around projected joints: PERSON_MARGIN x the person box
    (`crop_geometry.person_box`, the H36M convention), centre jittered by up to 4 % of the
    person side. The jitter must stay below the 0.1 margin on each side, or joints leave the
    un-augmented network input (half the person side around the centre)."""
    centre, person_side = crop_geometry.person_box(joints_2d)
    side = features.PERSON_MARGIN * person_side
    centre = centre + rng.uniform(-0.04, 0.04, size=2) * person_side
    return centre, side


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # One independent stream per (seed, subject, sequence, ...): workers need no shared state.
    return np.random.default_rng([seed, *keys])


def generate_sequence(
    params: SyntheticConfig, subject_index: int, sequence_index: int
) -> Iterator[tuple[str, str, dict]]:
    """Renders one sequence. Yields (split, item_id, PoseRecord) per frame, deterministically.

    Subject bones come from (seed, subject); motion, camera, appearance variation and
    background from (seed, subject, sequence).
    """
    split, subject, has_3d = params.subjects()[subject_index]
    bones = subject_bone_lengths(_rng(params.seed, subject_index))
    appearance = random_appearance(_rng(params.seed, subject_index, 10_000))
    rng = _rng(params.seed, subject_index, sequence_index)
    style = MOTION_STYLES[int(rng.integers(len(MOTION_STYLES)))]
    sequence = f"{style}_{sequence_index:02d}"
    motion = sample_motion(rng, style, params.frames_per_sequence)
    camera = random_camera(rng, (params.min_elevation_deg, params.max_elevation_deg))
    background = random_background(rng, params.crop_size)
    heading = rng.uniform(0, 2 * np.pi)
    heading_rate = rng.uniform(-0.3, 0.3)  # rad/s: the person slowly turns
    sway = rng.uniform(0, 120, size=3)
    sway_freq = rng.uniform(0.1, 0.4, size=3)
    noise_sigma = rng.uniform(1.0, 6.0)
    s = params.crop_size
    # Sensor noise: one field per sequence, a random window of it per frame (fresh Gaussian
    # noise per frame costs more than the rendering itself).
    pad = 32
    noise_bank = np.round(rng.normal(0, noise_sigma, (s + pad, s + pad, 3))).astype(np.int16)

    for frame in range(params.frames_per_sequence):
        t = frame / FPS
        angles = {name: float(values[frame]) for name, values in motion.items()}
        body = pose_from_angles(angles, bones)  # (16, 3) body frame
        yaw = heading + heading_rate * t
        world_rot = _rot(np.array([0.0, 1.0, 0.0]), yaw)
        root = sway * np.sin(2 * np.pi * sway_freq * t)
        world = body @ world_rot.T + root
        joints_cam = (world - camera["position"]) @ camera["rotation"].T  # (16, 3)
        uv = project(joints_cam, camera["intrinsics"])
        centre, side = crop_box(uv, rng)
        box = crop_geometry.square_box(centre, side)
        k_crop = crop_geometry.transform_intrinsics(
            camera["intrinsics"], crop_geometry.crop_affine(centre, side, s)
        )
        joints_2d = project(joints_cam, k_crop)
        image = render_person(background, joints_2d, joints_cam, k_crop, appearance)
        oy, ox = rng.integers(0, pad + 1, size=2)
        noisy = image.astype(np.int16) + noise_bank[oy : oy + s, ox : ox + s]
        image = np.clip(noisy, 0, 255).astype(np.uint8)
        inside = np.all((joints_2d >= -0.5) & (joints_2d <= s - 0.5), axis=1)
        record = {
            "image_jpeg": jpeg.encode_jpeg(image, quality=JPEG_QUALITY),
            "joints_2d": joints_2d,
            "visibility": inside.astype(np.float32),
            "joints_3d": joints_cam if has_3d else None,
            "has_3d": has_3d,
            "intrinsics": k_crop if has_3d else None,
            "distortion": None,
            "box": box,
            "dataset": DATASET_NAME,
            "subject": subject,
            "sequence": sequence,
            "action": style,
            "camera": "cam0",
            "frame": frame,
            "orig_size": ORIG_SIZE,
        }
        yield split, f"{subject}/{sequence}/{frame}", record


def list_sequences(params: SyntheticConfig) -> list[tuple[int, int]]:
    """[(subject_index, sequence_index)] for every sequence of the dataset."""
    return [(i, k) for i in range(params.num_subjects) for k in range(params.sequences_per_subject)]
