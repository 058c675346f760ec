"""crop_geometry: the square-crop map by hand, its inverse, intrinsics through it, boxes, and the
NumPy and TensorFlow twins agreeing."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.data import crop_geometry as cg


def test_crop_affine_hand_computed():
    # side 40 around (50, 60): edges x0 = 30, y0 = 40; scale 80 / 40 = 2, u = 2 (x - 30) - 0.5.
    m = cg.crop_affine((50.0, 60.0), 40.0, 80)
    np.testing.assert_allclose(m, [[2, 0, -60.5], [0, 2, -80.5], [0, 0, 1]])
    # The box centre lands on the crop centre (S - 1) / 2 = 39.5, its edges on the crop edges.
    np.testing.assert_allclose(
        cg.transform_points([[50, 60], [30, 40], [70, 80]], m),
        [[39.5, 39.5], [-0.5, -0.5], [79.5, 79.5]],
    )


def test_rotation_and_flip_by_hand():
    # s = 1 about (10, 10) into a 21 px crop (centre 10): a point 5 px right of the centre.
    p = [[15.0, 10.0]]
    # 90 degrees counter-clockwise on screen: right of the centre goes up (y down).
    m = cg.crop_affine((10.0, 10.0), 21.0, 21, rotation_deg=90.0)
    np.testing.assert_allclose(cg.transform_points(p, m), [[10.0, 5.0]], atol=1e-12)
    # Mirror: x' = S - 1 - x.
    m = cg.crop_affine((10.0, 10.0), 21.0, 21, flip=True)
    np.testing.assert_allclose(cg.transform_points(p, m), [[5.0, 10.0]], atol=1e-12)


def test_boxes():
    np.testing.assert_allclose(cg.square_box((50.0, 60.0), 40.0), [30, 40, 70, 80])
    centre, side = cg.box_centre_side([[0.0, 10.0, 20.0, 60.0]])  # 20 wide, 50 high
    np.testing.assert_allclose(centre, [[10.0, 35.0]])
    np.testing.assert_allclose(side, [50.0])
    np.testing.assert_allclose(cg.image_box(480, 640), [-0.5, -0.5, 639.5, 479.5])
    joints = np.array([[10.0, 20.0], [30.0, 100.0], [20.0, 50.0]])
    centre, side = cg.person_box(joints)
    np.testing.assert_allclose(centre, [20.0, 60.0])
    assert side == pytest.approx(1.2 * 80.0)
    with pytest.raises(ValueError, match=r"Received shape \(0, 2\)"):
        cg.person_box(np.zeros((0, 2)))


def test_crop_to_source_inverts_the_crop():
    rng = np.random.default_rng(0)
    centre = rng.uniform(100, 500, size=(5, 1, 2))
    side = rng.uniform(50, 400, size=(5, 1))
    points = rng.uniform(0, 1000, size=(5, 16, 2))
    m = cg.crop_affine(centre[:, 0], side[:, 0], 64)  # (5, 3, 3)
    crop = cg.transform_points(points, m[:, None])
    np.testing.assert_allclose(cg.crop_to_source(crop, centre, side, 64), points, atol=1e-9)


def test_intrinsics_project_3d_onto_the_cropped_2d():
    rng = np.random.default_rng(1)
    k = np.array([1145.0, 1143.8, 512.5, 515.4])
    xyz = np.stack([rng.uniform(-800, 800, 16), rng.uniform(-900, 900, 16), np.full(16, 5000.0)], 1)
    uv = xyz[:, :2] / xyz[:, 2:] * k[:2] + k[2:]
    m = cg.crop_affine((530.2, 480.7), 540.0, 256)
    k_crop = cg.transform_intrinsics(k, m)
    projected = xyz[:, :2] / xyz[:, 2:] * k_crop[:2] + k_crop[2:]
    np.testing.assert_allclose(projected, cg.transform_points(uv, m), atol=1e-9)
    # Unknown intrinsics (zeros, MPII) stay zeros, also through a flip.
    np.testing.assert_array_equal(cg.transform_intrinsics(np.zeros(4), m), np.zeros(4))
    flipped = cg.crop_affine((530.2, 480.7), 540.0, 256, flip=True)
    assert cg.transform_intrinsics(k, flipped)[0] == pytest.approx(k[0] * 256 / 540.0)


def test_stored_to_input_is_the_central_person_box():
    # A 175 x 140 stored crop, margin 1.75: the person box is 100 px around (87, 69.5).
    m = cg.stored_to_input_affine([140, 175], 50, margin=1.75)
    np.testing.assert_allclose(m, cg.crop_affine((87.0, 69.5), 100.0, 50), atol=1e-12)
    m = cg.stored_to_input_affine([140, 175], 50, 1.75, scale=1.25, rotation_deg=20.0, flip=True)
    want = cg.crop_affine((87.0, 69.5), 125.0, 50, rotation_deg=20.0, flip=True)
    np.testing.assert_allclose(m, want, atol=1e-12)


@pytest.mark.parametrize("rotation, flip", [(0.0, False), (-27.0, True)])
def test_tensorflow_twin_equals_numpy(rotation, flip):
    rng = np.random.default_rng(2)
    centre, side = rng.uniform(50, 300, size=(3, 2)), rng.uniform(40, 200, size=3)
    points = rng.uniform(0, 400, size=(3, 16, 2))
    k = np.concatenate([np.full((3, 2), 800.0), rng.uniform(100, 300, (3, 2))], axis=1)
    m_np = cg.crop_affine(centre, side, 32, rotation, flip)
    m_tf = cg.crop_affine_tf(centre, side, 32, rotation, flip)
    assert m_tf.dtype == tf.float32
    np.testing.assert_allclose(m_tf.numpy(), m_np, rtol=1e-5, atol=1e-4)
    pairs = [
        (cg.transform_points(points, m_np[:, None]), cg.transform_points_tf(points, m_tf[:, None])),
        (cg.transform_intrinsics(k, m_np), cg.transform_intrinsics_tf(k, m_tf)),
        (
            cg.crop_to_source(points, centre[:, None], side[:, None], 32),
            cg.crop_to_source_tf(points, centre[:, None], side[:, None], 32),
        ),
        (cg.square_box(centre, side), cg.square_box_tf(centre, side)),
        (cg.image_box(side, side + 1), cg.image_box_tf(side, side + 1)),
        (
            cg.stored_to_input_affine([60, 70], 32, 1.75, 1.1, rotation, flip),
            cg.stored_to_input_affine_tf([60, 70], 32, 1.75, 1.1, rotation, flip),
        ),
    ]
    for want, got in pairs:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=2e-3)


def test_importing_it_does_not_load_tensorflow():
    code = (
        "import sys; from keras_pose3d.data import crop_geometry as cg; "
        "cg.crop_affine((1.0, 2.0), 3.0, 4); assert 'tensorflow' not in sys.modules"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
