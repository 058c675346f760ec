"""pipelines.person_crop: pixels, joints and intrinsics through one map."""

import numpy as np
import pytest

from keras_pose3d.data import features
from pipelines import person_crop


def _blob_image(h, w, x, y, sigma):
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img):
    g = img[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * xx).sum() / g.sum(), (g * yy).sum() / g.sum()])


@pytest.mark.parametrize("person_side, sigma", [(40 / 1.75, 2.0), (350 / 1.75, 12.0)])
def test_crop_person_moves_pixels_and_joints_together(person_side, sigma):
    # A blob at a sub-pixel joint position must land on the predicted crop pixel, both when
    # upsampling (s = 2) and when area-downsampling first (s = 64 / 350 < 1/2).
    h, w = 300, 400
    joint = np.array([[187.3, 143.6]])
    image = _blob_image(h, w, *joint[0], sigma)
    out = 80 if person_side < 100 else 64
    crop, joints_crop, _, box = person_crop.crop_person(
        image, (180.0, 150.0), person_side, out, joint
    )
    side = features.PERSON_MARGIN * person_side
    s = out / side
    expected = s * (joint - [180 - side / 2, 150 - side / 2]) - 0.5
    np.testing.assert_allclose(joints_crop, expected, atol=1e-12)
    np.testing.assert_allclose(
        box, [180 - side / 2, 150 - side / 2, 180 + side / 2, 150 + side / 2]
    )
    assert crop.shape == (out, out, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(_centroid(crop), joints_crop[0], atol=0.08)


def test_crop_person_intrinsics_project_3d_to_crop_joints():
    rng = np.random.default_rng(0)
    k = np.array([1145.0, 1143.8, 512.5, 515.5])
    points = rng.normal(0, 400, size=(16, 3)) + [100, -50, 4500]
    uv = points[:, :2] / points[:, 2:] * k[:2] + k[2:]
    image = np.zeros((1002, 1000, 3), np.uint8)
    _, joints_crop, k_crop, _ = person_crop.crop_person(image, (530.2, 480.7), 310.0, 256, uv, k)
    projected = points[:, :2] / points[:, 2:] * k_crop[:2] + k_crop[2:]
    np.testing.assert_allclose(projected, joints_crop, atol=1e-9)
    s = 256 / (1.75 * 310.0)
    np.testing.assert_allclose(k_crop[:2], s * k[:2])


def test_crop_person_pads_outside_with_zeros():
    image = np.full((50, 60, 3), 200, np.uint8)
    # Centre on the top-left corner: the top-left quarter of the crop is outside the image.
    crop, _, _, _ = person_crop.crop_person(image, (0.0, 0.0), 40 / 1.75, 40, np.zeros((16, 2)))
    assert np.all(crop[:19, :19] == 0)
    assert np.all(crop[21:, 21:] == 200)


def test_crop_person_rejects_bad_input():
    with pytest.raises(ValueError, match="person_side_px"):
        person_crop.crop_person(np.zeros((4, 4, 3), np.uint8), (2, 2), 0.0, 8, np.zeros((16, 2)))
    with pytest.raises(ValueError, match="uint8"):
        person_crop.crop_person(np.zeros((4, 4), np.uint8), (2, 2), 1.0, 8, np.zeros((16, 2)))
