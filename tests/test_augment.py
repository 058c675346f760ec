"""augment: the affine by hand, labels stay on the dots, 3D/intrinsics consistency, flip twice,
eager == tf.data.map, colour ranges, and real frames whose labels stay on the body."""

import json
import pickle

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import skeleton
from keras_pose3d.data import augment, crop_geometry, features, pose_codec
from tests.conftest import require_realdata

PERM = np.array(skeleton.FLIP_PERMUTATION)


def _dot_scene(side=112, radius=2):
    """A black stored crop with one distinctly coloured dot per joint, and the joint labels."""
    rng = np.random.default_rng(0)
    centre = (side - 1) / 2
    person = side / features.PERSON_MARGIN
    # Joints on a 4 x 4 lattice inside the person region, away from each other.
    grid = np.linspace(-0.25, 0.25, 4) * person
    joints = np.array([[centre + gx, centre + gy] for gy in grid for gx in grid], np.float32)
    joints += rng.uniform(-1.0, 1.0, size=joints.shape).astype(np.float32)
    colours = np.array(
        [[(j * 53) % 256, (j * 97 + 80) % 256, 255 - (j * 29) % 256] for j in range(16)], np.uint8
    )
    image = np.zeros((side, side, 3), np.uint8)
    yy, xx = np.mgrid[0:side, 0:side]
    for j, (x, y) in enumerate(joints):
        image[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = colours[j]
    return image, joints, colours


def _scene_3d(rng):
    """3D joints with fx = fy crop intrinsics whose pinhole projection gives the 2D labels."""
    j2d = rng.uniform(20, 92, size=(16, 2)).astype(np.float32)
    z = rng.uniform(3500, 4500, size=16)
    intr = np.array([300.0, 300.0, 50.0, 60.0])
    xyz = np.stack(
        [(j2d[:, 0] - intr[2]) * z / intr[0], (j2d[:, 1] - intr[3]) * z / intr[1], z], -1
    )
    return j2d, xyz.astype(np.float32), intr.astype(np.float32)


def _aug(image, j2d, vis, j3d, intr, **kw):
    out = augment.crop_and_augment(image, j2d, vis, j3d, intr, **kw)
    return {k: v.numpy() for k, v in out.items()}


def test_affine_by_hand():
    # Stored 112 px, person region 112 / 1.75 = 64 px -> input 64 px: s = 1.
    m = augment.crop_affine([112, 112], 64).numpy()
    pts = np.array([[55.5, 55.5], [65.5, 55.5]], np.float32)
    np.testing.assert_allclose(
        crop_geometry.transform_points_tf(pts, m).numpy(), [[31.5, 31.5], [41.5, 31.5]], atol=1e-5
    )
    # 90 degrees counter-clockwise on screen: a point right of the centre moves up.
    m = augment.crop_affine([112, 112], 64, rotation_deg=90.0).numpy()
    np.testing.assert_allclose(
        crop_geometry.transform_points_tf(pts, m).numpy(), [[31.5, 31.5], [31.5, 21.5]], atol=1e-4
    )
    # scale 2 halves distances; flip mirrors x about the input centre.
    m = augment.crop_affine([112, 112], 64, scale=2.0, flip=True).numpy()
    np.testing.assert_allclose(
        crop_geometry.transform_points_tf(pts, m).numpy(), [[31.5, 31.5], [26.5, 31.5]], atol=1e-5
    )


@pytest.mark.parametrize(
    "scale,rotation,flip",
    [(1.0, 0.0, False), (1.2, 25.0, True), (0.8, -30.0, False), (1.25, 30.0, True)],
)
def test_labels_stay_on_the_dots(scale, rotation, flip):
    image, joints, colours = _dot_scene()
    out = _aug(
        image,
        joints,
        np.ones(16, np.float32),
        np.zeros((16, 3), np.float32),
        np.zeros(4, np.float32),
        input_size=64,
        scale=scale,
        rotation_deg=rotation,
        flip=flip,
    )
    assert np.all(out["visibility"] == 1)
    src = PERM if flip else np.arange(16)
    for j in range(16):
        x, y = np.round(out["joints_2d"][j]).astype(int)
        pixel = out["image"][y, x] * 255.0
        # The nearest dot colour at the label is the colour of the joint it came from.
        nearest = np.argmin(np.abs(colours.astype(float) - pixel).sum(-1))
        assert nearest == src[j], (j, pixel, colours[src[j]])
        np.testing.assert_allclose(pixel, colours[src[j]], atol=40)


def test_projection_of_augmented_3d_matches_augmented_2d():
    rng = np.random.default_rng(3)
    j2d, j3d, intr = _scene_3d(rng)
    image = np.zeros((112, 112, 3), np.uint8)
    for scale, rot, flip in [(1.0, 0.0, False), (1.2, 25.0, True), (0.8, -17.0, False)]:
        out = _aug(
            image,
            j2d,
            np.ones(16, np.float32),
            j3d,
            intr,
            input_size=64,
            scale=scale,
            rotation_deg=rot,
            flip=flip,
        )
        proj = pose_codec.project_pinhole(out["joints_3d"], out["intrinsics"])
        np.testing.assert_allclose(proj, out["joints_2d"], atol=2e-3)
        # Root depth is kept; fx scales with the zoom (s = 64 / (64 * scale)).
        assert out["joints_3d"][skeleton.ROOT, 2] == pytest.approx(
            j3d[PERM[skeleton.ROOT] if flip else skeleton.ROOT, 2]
        )
        assert out["intrinsics"][0] == pytest.approx(intr[0] / scale, rel=1e-5)
        # Bone lengths in mm are unchanged (a rigid motion / mirror).
        bones = np.array(skeleton.BONES)
        src = j3d[PERM] if flip else j3d
        np.testing.assert_allclose(
            np.linalg.norm(out["joints_3d"][bones[:, 0]] - out["joints_3d"][bones[:, 1]], axis=-1),
            np.linalg.norm(src[bones[:, 0]] - src[bones[:, 1]], axis=-1),
            rtol=1e-5,
        )


def test_depth_target_is_invariant_to_rotation():
    j2d, j3d, intr = _scene_3d(np.random.default_rng(4))
    image = np.zeros((112, 112, 3), np.uint8)
    kw = {"input_size": 64, "scale": 1.1}
    plain = _aug(image, j2d, np.ones(16, np.float32), j3d, intr, rotation_deg=0.0, **kw)
    rot = _aug(image, j2d, np.ones(16, np.float32), j3d, intr, rotation_deg=28.0, **kw)
    np.testing.assert_allclose(
        pose_codec.depth_target(rot["joints_3d"], rot["intrinsics"], 64),
        pose_codec.depth_target(plain["joints_3d"], plain["intrinsics"], 64),
        rtol=1e-5,
    )


def test_flip_twice_is_identity():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    j2d, j3d, intr = _scene_3d(rng)
    j2d = j2d * 0.4  # inside the 40 px image
    vis = (rng.uniform(size=16) > 0.3).astype(np.float32)
    # margin 1 and S = stored side: the affine is exactly the mirror.
    kw = {"input_size": 40, "flip": True, "margin": 1.0}
    once = _aug(image, j2d, vis, j3d, intr, **kw)
    twice = _aug(
        once["image"],
        once["joints_2d"],
        once["visibility"],
        once["joints_3d"],
        once["intrinsics"],
        **kw,
    )
    np.testing.assert_allclose(once["image"], image[:, ::-1] / 255.0, atol=1e-6)
    np.testing.assert_allclose(twice["image"], image / 255.0, atol=1e-6)
    np.testing.assert_allclose(twice["joints_2d"], j2d, atol=1e-4)
    np.testing.assert_array_equal(twice["visibility"], vis)
    np.testing.assert_allclose(twice["joints_3d"], j3d, atol=1e-3)
    np.testing.assert_allclose(twice["intrinsics"], intr, atol=1e-4)
    # One flip: x mirrored AND left/right swapped.
    np.testing.assert_allclose(once["joints_2d"][:, 0], 39.0 - j2d[PERM, 0], atol=1e-4)
    np.testing.assert_array_equal(once["visibility"], vis[PERM])
    np.testing.assert_allclose(once["joints_3d"], j3d[PERM] * [-1, 1, 1], atol=1e-3)


def test_joints_leaving_the_input_lose_visibility():
    image = np.zeros((112, 112, 3), np.uint8)
    j2d = np.full((16, 2), 55.5, np.float32)
    j2d[0] = [10.0, 55.5]  # 45.5 px left of the centre: outside a 64 px input at s = 1
    j2d[1] = [30.0, 55.5]  # 25.5 px: inside
    out = _aug(
        image,
        j2d,
        np.ones(16, np.float32),
        np.zeros((16, 3), np.float32),
        np.zeros(4, np.float32),
        input_size=64,
    )
    assert out["visibility"][0] == 0 and out["visibility"][1] == 1
    np.testing.assert_array_equal(out["intrinsics"], np.zeros(4))  # unknown stays unknown


def test_colour_jitter_ranges_and_determinism():
    image = tf.fill([4, 4, 3], 0.5)
    out = augment.colour_jitter(image, tf.constant([1, 2])).numpy()
    factors = out[0, 0] / 0.5
    assert np.all((factors >= 0.6) & (factors <= 1.4)) and len(set(factors.round(6))) == 3
    np.testing.assert_allclose(out, np.broadcast_to(out[0, 0], out.shape))
    np.testing.assert_array_equal(out, augment.colour_jitter(image, tf.constant([1, 2])).numpy())
    same = augment.colour_jitter(image, tf.constant([1, 2]), channel_scale=(1.0, 1.0)).numpy()
    np.testing.assert_allclose(same, 0.5)
    bright = augment.colour_jitter(
        tf.fill([4, 4, 3], 0.9), tf.constant([3, 4]), channel_scale=(1.4, 1.4)
    ).numpy()
    assert bright.max() == 1.0  # clipped


def test_sampled_params_follow_the_recipe():
    params = [augment.sample_augment_params(tf.constant([7, i])) for i in range(400)]
    scale = np.array([p["scale"].numpy() for p in params])
    rot = np.array([p["rotation_deg"].numpy() for p in params])
    flip = np.array([p["flip"].numpy() for p in params])
    assert scale.min() >= 0.75 and scale.max() <= 1.25 and scale.std() > 0.1
    assert np.abs(rot).max() <= 30.0
    assert 0.3 < np.mean(rot != 0) < 0.5  # rotation with probability 0.4
    assert 0.4 < flip.mean() < 0.6


def test_eager_equals_tf_data_map():
    image, joints, _ = _dot_scene()
    _, j3d, intr = _scene_3d(np.random.default_rng(6))
    vis = np.ones(16, np.float32)

    def fn(seed):
        p = augment.sample_augment_params(seed)
        out = augment.crop_and_augment(
            image,
            joints,
            vis,
            j3d,
            intr,
            input_size=32,
            scale=p["scale"],
            rotation_deg=p["rotation_deg"],
            flip=p["flip"],
        )
        out["image"] = augment.colour_jitter(
            out["image"], seed, brightness=0.1, contrast=0.2, saturation=0.2
        )
        return out

    seeds = np.array([[0, i] for i in range(4)], np.int64)
    mapped = list(tf.data.Dataset.from_tensor_slices(seeds).map(fn))
    for seed, got in zip(seeds, mapped):
        eager = fn(tf.constant(seed))
        for key in eager:
            np.testing.assert_allclose(got[key].numpy(), eager[key].numpy(), atol=1e-5, err_msg=key)
    # Both flip branches run inside the graph.
    for flag in (False, True):
        ds = tf.data.Dataset.from_tensors(flag).map(
            lambda f: augment.crop_and_augment(
                image, joints, vis, j3d, intr, input_size=32, flip=f
            )["joints_2d"]
        )
        eager = augment.crop_and_augment(image, joints, vis, j3d, intr, input_size=32, flip=flag)
        np.testing.assert_allclose(next(iter(ds)).numpy(), eager["joints_2d"].numpy(), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Real frames: H36M (2D + 3D + camera) and MPII (2D), stored crop built here with cv2.
# ----------------------------------------------------------------------------------------------
STORED = 224  # stored crop side; the person region is 128 px


def _stored_crop(image, j2d, vis):
    """A PERSON_MARGIN stored crop around the visible joints' box (1.2 x its longer side)."""
    pts = j2d[vis > 0]
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    side = 1.2 * float(np.max(hi - lo)) * features.PERSON_MARGIN
    k = STORED / side
    # Pixel-area map: p_crop = k (p + 0.5 - (centre - side / 2)) - 0.5.
    a = np.array(
        [
            [k, 0, k * (0.5 - centre[0] + side / 2) - 0.5],
            [0, k, k * (0.5 - centre[1] + side / 2) - 0.5],
        ]
    )
    crop = cv2.warpAffine(image, a, (STORED, STORED), flags=cv2.INTER_LINEAR)
    return crop, a


def _real_samples():
    base = require_realdata("mmpose_samples")
    out = []
    h36m = np.load(base / "h36m" / "test_h36m_body3d.npz")
    with open(base / "h36m" / "cameras.pkl", "rb") as fh:
        cams = pickle.load(fh)
    idx = np.array(skeleton.MPII_FROM_H36M17)
    for i, name in enumerate(h36m["imgname"]):
        subject, cam = name.split("/")[0], name.split(".")[-2].split("_")[0]
        c = cams[(subject, cam)]
        f, pp = np.ravel(c["f"]), np.ravel(c["c"])
        out.append(
            {
                "image": cv2.imread(str(base / "h36m" / name))[..., ::-1],
                "j2d": h36m["part"][i, idx, :2],
                "vis": np.ones(16),
                "j3d": h36m["S"][i, idx, :3] * 1000.0,
                "intr": np.array([f[0], f[1], pp[0], pp[1]]),
            }
        )
    with open(base / "mpii" / "test_mpii.json") as fh:
        mpii = json.load(fh)
    for rec in mpii:
        j2d = np.array(rec["joints"], float) - 1.0  # 1-based in the file
        vis = (np.array(rec["joints_vis"]) > 0) & (j2d[:, 0] >= 0)
        out.append(
            {
                "image": cv2.imread(str(base / "mpii" / rec["image"]))[..., ::-1],
                "j2d": j2d,
                "vis": vis.astype(float),
                "j3d": None,
                "intr": None,
            }
        )
    return out


def _ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.realdata
def test_real_labels_stay_on_the_body():
    """Criterion: (1) augmented 2D == composed affine (crop then augmentation) applied to the
    original labels; (2) the 9 x 9 patch around each augmented joint equals the patch that
    cv2 warps straight from the original frame with that composed affine (NCC > 0.9); (3) on
    H36M, the augmented 3D projected with the augmented intrinsics lands within 3 px of the
    augmented 2D labels (the rest is lens distortion, 1-2 px in the original frames)."""
    size = 128
    checked = 0
    for n, sample in enumerate(_real_samples()):
        crop, a = _stored_crop(sample["image"], sample["j2d"], sample["vis"])
        a3 = np.vstack([a, [0, 0, 1]])
        j2d_crop = sample["j2d"] @ a[:, :2].T + a[:, 2]
        has_3d = sample["j3d"] is not None
        intr = None
        if has_3d:
            fx, fy, cx, cy = sample["intr"]
            pp = np.array([cx, cy]) @ a[:, :2].T + a[:, 2]
            intr = np.array([fx * a[0, 0], fy * a[1, 1], pp[0], pp[1]])
        record = features.encode_example(
            {
                "image_jpeg": cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[
                    1
                ].tobytes(),
                "joints_2d": j2d_crop,
                "visibility": sample["vis"],
                "joints_3d": sample["j3d"],
                "has_3d": has_3d,
                "intrinsics": intr,
                "box": [0, 0, 1, 1],
                "frame": 0,
                "orig_size": sample["image"].shape[:2],
            }
        )
        parsed = features.parse_example(tf.constant(record))
        stored = parsed["image"].numpy()
        for scale, rot, flip in [(1.0, 0.0, False), (1.2, 20.0, True), (0.8, -25.0, False)]:
            out = _aug(
                parsed["image"],
                parsed["joints_2d"],
                parsed["visibility"],
                parsed["joints_3d"],
                parsed["intrinsics"],
                input_size=size,
                scale=scale,
                rotation_deg=rot,
                flip=flip,
            )
            total = out["matrix"].astype(float) @ a3  # original frame -> network input
            src = PERM if flip else np.arange(16)
            expect = sample["j2d"][src] @ total[:2, :2].T + total[:2, 2]
            np.testing.assert_allclose(out["joints_2d"], expect, atol=0.05)
            direct = (
                cv2.warpAffine(
                    stored, out["matrix"][:2].astype(float), (size, size), flags=cv2.INTER_LINEAR
                )
                / 255.0
            )
            for j in range(16):
                x, y = np.round(out["joints_2d"][j]).astype(int)
                if out["visibility"][j] == 0 or not (4 <= x < size - 4 and 4 <= y < size - 4):
                    continue
                got = out["image"][y - 4 : y + 5, x - 4 : x + 5]
                ref = direct[y - 4 : y + 5, x - 4 : x + 5]
                if ref.std() < 0.02:  # flat patch: NCC undefined
                    continue
                assert _ncc(got, ref) > 0.95, (n, j, scale, rot, flip, _ncc(got, ref))
                checked += 1
            if has_3d:
                proj = pose_codec.project_pinhole(out["joints_3d"], out["intrinsics"])
                err = np.abs(proj - out["joints_2d"]).max()
                assert err < 3.0, (n, err)
    assert checked > 100  # most joints of the 9 frames were compared
