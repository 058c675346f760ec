"""Generated videos of synthetic people walking across the frame, with their true 2D joints.

Used by the tracking tests and `benchmarks/infer_video.py`. People are drawn by the synthetic
dataset's renderer (`data.synthetic.render_person`: shaded limb capsules, torso, head) over a
smooth background, walking sideways in front of a pinhole camera; the true person box of the
serving convention is `tracking.box_from_joints` of the projected joints.
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

from keras_pose3d.data import synthetic

CAMERA_FLIP = np.diag([1.0, -1.0, -1.0])  # world y-up, facing -z -> camera y-down, z forward


def background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    grey = 120 + 40 * np.sin(xx / 90.0) + 20 * np.cos(yy / 70.0)
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)


def walkers(num_frames: int, width: int, height: int, people: int = 1, seed: int = 0):
    """Per person: (T, J, 2) px joints and (T, J, 3) camera mm, 5 m from the camera, side on.

    One person walks left to right from ~1/6 to ~5/6 of the width; with two, the first walks
    the left half rightwards and the second the right half leftwards (they never overlap).
    """
    rng = np.random.default_rng(seed)
    focal = 1.4 * height
    k = np.array([focal, focal, width / 2, height / 2])
    span_mm = 5000.0 * (width / focal) * 0.35  # +-35 % of the frame width at 5 m
    out = []
    for p in range(people):
        bones = synthetic.subject_bone_lengths(rng)
        # 10 fps: the gait these videos (and the detection tests' measured frames) were made
        # with, whatever rate the synthetic dataset renders at.
        motion = synthetic.sample_motion(rng, "walk", num_frames, fps=10.0)
        yaw = synthetic._rot(np.array([0.0, 1.0, 0.0]), np.pi / 2)  # walking along +x
        if people == 1:
            x0, x1 = -span_mm, span_mm
        else:
            x0, x1 = [(-span_mm, -0.25 * span_mm), (span_mm, 0.25 * span_mm)][p % 2]
        uv, cam = [], []
        for t in range(num_frames):
            body = synthetic.pose_from_angles({n: float(v[t]) for n, v in motion.items()}, bones)
            x = x0 + (x1 - x0) * t / max(num_frames - 1, 1)
            heading = yaw if x1 > x0 else yaw.T  # faces the way it walks
            world = body @ heading.T + np.array([x, 0.0, 0.0])
            joints_cam = world @ CAMERA_FLIP.T + np.array([0.0, 0.0, 5000.0])
            cam.append(joints_cam)
            uv.append(synthetic.project(joints_cam, k))
        out.append(
            {
                "joints_2d": np.array(uv),
                "joints_cam": np.array(cam),
                "intrinsics": k,
                "appearance": synthetic.random_appearance(rng),
            }
        )
    return out


def render_frame(people: list[dict], t: int, bg: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR of frame t, the farther person drawn first."""
    image = bg
    for person in sorted(people, key=lambda q: -q["joints_cam"][t, 6, 2]):
        image = synthetic.render_person(
            image,
            person["joints_2d"][t],
            person["joints_cam"][t],
            person["intrinsics"],
            person["appearance"],
        )
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def write_video(
    path: str | pathlib.Path,
    num_frames: int,
    width: int = 640,
    height: int = 360,
    people: int = 1,
    fps: float = 25.0,
    seed: int = 0,
) -> list[dict]:
    """Writes an mp4v video; returns `walkers(...)` (the truth)."""
    truth = walkers(num_frames, width, height, people, seed)
    bg = background(width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for t in range(num_frames):
        writer.write(render_frame(truth, t, bg))
    writer.release()
    return truth
