"""The prediction pass and the decode to mm (keras_pose3d/models/prediction.py), shared by the
trainer's validation, evaluation and predict_sequences."""

import keras
import numpy as np
import pytest

from keras_pose3d.data import pose_codec
from keras_pose3d.models import prediction
from keras_pose3d.models.sap_net import SAPNet

S = 32


def _gt(rng, n):
    """(n, 16, 3) camera mm in front of the camera and crop intrinsics (n, 4) of the S input."""
    joints = rng.normal(0, 300, (n, 16, 3)) + [0, 0, 4500.0]
    intrinsics = np.tile([40.0, 42.0, 15.5, 16.0], (n, 1)) + rng.uniform(-2, 2, (n, 4))
    return joints, intrinsics


class _Recorder:
    """A predictor returning the encoded ground truth of the rows it is shown (found by their
    image, which holds the row number), recording every call."""

    def __init__(self, pose_norm):
        self.pose_norm = pose_norm
        self.calls = []

    def __call__(self, images, intrinsics, root_depth):
        rows = images[:, 0, 0, 0].astype(int)
        self.calls.append(rows.tolist())
        return {"pose_norm": self.pose_norm[rows], "pose_2d": self.pose_norm[rows, :, :2]}


def test_predict_batches_decodes_kept_rows_to_mm_and_skips_empty_batches():
    rng = np.random.default_rng(0)
    joints, intrinsics = _gt(rng, 6)
    pose_norm = pose_codec.encode_pose_3d(joints, intrinsics, S)
    images = (
        np.zeros((6, S, S, 3), np.float32) + np.arange(6, dtype=np.float32)[:, None, None, None]
    )
    keep = np.array([True, False, True, False, False, True])
    batches = [
        {
            "image": images[i : i + 2],
            "intrinsics": intrinsics[i : i + 2].astype(np.float32),
            "root_depth": joints[i : i + 2, 6, 2],
            "joints_3d": joints[i : i + 2],
            "keep": keep[i : i + 2],
        }
        for i in (0, 2, 4)
    ]
    predict = _Recorder(pose_norm)
    out = list(prediction.predict_batches(predict, batches, S))
    # Dropped rows never reach the model; the batch of two dropped rows is not called at all.
    assert predict.calls == [[0], [2], [5]]
    assert len(out) == 3
    rows = {k: np.concatenate([r[k] for r, _ in out]) for k in out[0][0]}
    assert sorted(rows) == ["image", "intrinsics", "joints_3d", "root_depth"]
    np.testing.assert_array_equal(rows["joints_3d"], joints[keep])
    pose_mm = np.concatenate([p["pose_mm"] for _, p in out])
    # The encoded ground truth decodes back to it (float32 intrinsics as the records store them).
    np.testing.assert_allclose(pose_mm, joints[keep], atol=0.05)
    px = np.concatenate([p["pose_2d_px"] for _, p in out])
    np.testing.assert_allclose(px, pose_codec.project_pinhole(joints, intrinsics)[keep], atol=1e-3)


def test_decode_hand_values_and_decoded_outputs_pass_through():
    # One joint at the crop centre with depth offset 0.25 (normalised), S = 32 -> half = 16.
    pose_norm = np.zeros((1, 1, 3))
    pose_norm[0, 0] = [0.5, -0.25, 0.25]
    intrinsics = np.array([[50.0, 40.0, 16.0, 15.0]])
    root = np.array([2000.0])
    pose_mm, px = prediction.decode(
        {"pose_norm": pose_norm, "pose_2d": pose_norm[..., :2]}, intrinsics, root, S
    )
    u, v = 0.5 * 16 + 16, -0.25 * 16 + 16  # 24, 12 px
    z = 2000.0 + 0.25 * 16 * 2000.0 / 50.0  # 2160 mm
    np.testing.assert_allclose(pose_mm[0, 0], [(u - 16) * z / 50, (v - 15) * z / 40, z])
    np.testing.assert_allclose(px[0, 0], [u, v])
    given = {"pose_mm": np.ones((1, 16, 3), np.float32), "pose_2d_px": np.ones((1, 16, 2))}
    pose_mm, px = prediction.decode(given, intrinsics, root, S)
    assert pose_mm.dtype == np.float64 and np.all(pose_mm == 1.0) and np.all(px == 1.0)


def test_graph_model_is_traced_once_and_follows_reloaded_weights(tmp_path):
    keras.utils.set_random_seed(1)
    model = SAPNet(
        num_stacks=1,
        num_features=8,
        hourglass_depth=1,
        depth_blocks=1,
        input_size=S,
        heatmap_size=8,
    )
    images = np.random.default_rng(1).random((3, S, S, 3)).astype(np.float32)
    model(images[:1])
    first = model.get_weights()
    graph = prediction.GraphModel(model)
    before = graph(images)["pose_3d"].numpy()
    np.testing.assert_allclose(before, model(images, training=False)["pose_3d"], atol=1e-5)
    # Other weights loaded into the same model (another batch size too): the traced function
    # uses them, without a new trace.
    model.set_weights([w * 1.5 for w in first])
    after = graph(images[:2])["pose_3d"].numpy()
    np.testing.assert_allclose(after, model(images[:2], training=False)["pose_3d"], atol=1e-5)
    assert np.abs(after - before[:2]).max() > 1e-3
    assert graph._call.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("missing", ["intrinsics", "root_depth"])
def test_predict_batches_names_a_missing_input(missing):
    batch = {"image": np.zeros((1, S, S, 3)), "intrinsics": np.ones((1, 4)), "root_depth": [1.0]}
    del batch[missing]
    with pytest.raises(KeyError, match=missing):
        list(prediction.predict_batches(_Recorder(np.zeros((1, 16, 3))), [batch], S))


def test_decode_refuses_outputs_it_cannot_read():
    with pytest.raises(ValueError, match=r"Received keys: \['pose_3d'\]"):
        prediction.decode({"pose_3d": np.zeros((1, 16, 3))}, np.ones((1, 4)), np.ones(1), S)
