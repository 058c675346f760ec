"""infer.py end to end on a generated video and an image folder with a tiny SAP-Net."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d import bvh, export, infer, skeleton
from keras_pose3d.models import tp_net as tp_net_lib
from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.models.tp_net import TPNet
from tests.test_export import exported  # noqa: F401  (session fixture)

FRAMES = 6


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    sap = SAPNet(num_stacks=1, num_features=32, hourglass_depth=2, depth_blocks=2,
                 input_size=64, heatmap_size=16)
    sap(np.zeros((1, 64, 64, 3), np.float32))
    sap.save(run / export.SAP_NET_FILE)
    tp = TPNet(window=3, hidden=16)
    tp(np.zeros((1, 3, 16, 3), np.float32))
    tp.save(run / export.TP_NET_FILE)
    return run


def _video(path, frames=FRAMES, size=(80, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    assert writer.isOpened()
    for t in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        cv2.circle(image, (20 + 6 * t, 24), 8, (200, 180, 90), -1)
        writer.write(image)
    writer.release()


@pytest.mark.slow
def test_video_online_writes_json_bvh_and_render(run_dir, tmp_path):
    video = tmp_path / "in.mp4"
    _video(video)
    out = tmp_path / "out"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"0": [10, 4, 50, 44]}))
    assert infer.main(["--video", str(video), "--out", str(out), "--run", str(run_dir),
                       "--online", "--boxes", str(boxes), "--batch", "4"]) == 0
    records = [json.loads((out / "json" / f"frame_{i:06d}.json").read_text())
               for i in range(FRAMES)]
    assert not (out / "json" / f"frame_{FRAMES:06d}.json").exists()
    assert records[0]["box"] == [10.0, 4.0, 50.0, 44.0]
    assert records[1]["box"] == [-0.5, -16.5, 79.5, 63.5]  # centred square of side 80
    root_rel = np.array([r["joints_3d_root_relative_mm"] for r in records])
    absolute = np.array([r["joints_3d_mm"] for r in records])
    np.testing.assert_allclose(root_rel, absolute - absolute[:, 6:7], atol=1e-3)
    # Online refinement = TP-Net over windows of the preceding SAP-Net poses.
    tp = export.load_float32(run_dir / export.TP_NET_FILE)
    windows = tp_net_lib.make_windows(root_rel, 3, "online").astype(np.float32)
    refined = np.array([r["joints_3d_refined_mm"] for r in records])
    np.testing.assert_allclose(refined, np.asarray(tp(windows)), atol=1e-2)
    # The BVH replays the refined motion fitted to its median bone lengths, turned y-up.
    parsed = bvh.read_bvh(out / "motion.bvh")
    assert parsed.frame_time == pytest.approx(0.1)
    positions = bvh.joint_positions(parsed) @ infer.Y_UP  # back to the camera frame
    lengths = np.median(skeleton.bone_lengths(refined), axis=0)
    np.testing.assert_allclose(skeleton.bone_lengths(positions), np.broadcast_to(
        lengths, (FRAMES, 15)), rtol=1e-5, atol=1e-2)
    for child, parent in skeleton.BONES:  # directions are the refined ones
        a = refined[:, child] - refined[:, parent]
        b = positions[:, child] - positions[:, parent]
        cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    rendered = cv2.imread(str(out / "render" / "frame_000000.jpg"))
    assert rendered.shape == (48, 80 + 48, 3)
    capture = cv2.VideoCapture(str(out / "render.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


def test_image_folder_and_bad_boxes(run_dir, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"img{i}.png"), np.full((40, 30, 3), 60 * i, np.uint8))
    out = tmp_path / "out"
    result = infer.run(infer.parse_args(["--images", str(folder), "--out", str(out),
                                         "--run", str(run_dir), "--no-render"]))
    assert result["frames"] == 2 and not (out / "render").exists()
    record = json.loads((out / "json" / "frame_000001.json").read_text())
    assert record["source"] == "img1.png" and record["box"] == [-5.5, -0.5, 34.5, 39.5]
    assert "joints_3d_refined_mm" not in record
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([[0, 0, -1, 5]]))
    with pytest.raises(ValueError, match="bad.json: box 0"):
        infer.load_boxes(bad)


@pytest.mark.slow
def test_saved_model_and_tp_net_saved_model_match_run_dir(exported, tmp_path):  # noqa: F811
    """--saved-model (pipeline) + --tp-net (tp_net SavedModel) gives what --run gives."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.jpg"), rng.integers(0, 255, (36, 50, 3), np.uint8))
    args = ["--images", str(folder), "--no-render", "--online"]
    served = infer.run(infer.parse_args(args + [
        "--out", str(tmp_path / "a"), "--saved-model", str(exported["out"] / "pipeline" / "1"),
        "--tp-net", str(exported["out"] / "tp_net" / "1")]))
    local = infer.run(infer.parse_args(args + ["--out", str(tmp_path / "b"),
                                               "--run", str(exported["run"])]))
    np.testing.assert_allclose(served["motion"], local["motion"], rtol=1e-4, atol=1e-2)
    for a, b in zip(served["results"], local["results"]):
        np.testing.assert_allclose(a["joints_2d_px"], b["joints_2d_px"], atol=1e-3)


def test_online_checks_tp_net_before_any_frame(tmp_path, capsys):
    """A semi-online TP-Net fails before SAP-Net is even loaded (the run dir has none)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    semi = TPNet(window=4, mode="semi_online", hidden=8)
    semi(np.zeros((1, 4, 16, 3), np.float32))
    semi.save(tmp_path / "semi.keras")
    (tmp_path / "empty_run").mkdir()
    base = ["--images", str(folder), "--out", str(tmp_path / "o"), "--online",
            "--run", str(tmp_path / "empty_run")]
    assert infer.main(base + ["--tp-net", str(tmp_path / "semi.keras")]) == 2
    assert "needs an online TP-Net" in capsys.readouterr().err
    assert infer.main(base) == 2  # no tp_net.keras in the run dir: named, with the hint
    err = capsys.readouterr().err
    assert "empty_run/tp_net.keras not found" in err and "--tp-net" in err
    # A tp_net SavedModel reports its exported mode and window (not an assumed "online").
    export.export_tp_net(semi, tmp_path / "sm")
    refiner, window, mode = infer.load_refiner(tmp_path / "sm" / "tp_net" / "1")
    assert (window, mode) == (4, "semi_online")
    poses = np.random.default_rng(1).normal(0, 100, (2, 4, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(refiner(poses), np.asarray(semi(poses)), atol=1e-3)


def test_saved_model_without_refine_is_named(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2.0},
                           input_signature=[tf.TensorSpec((None,), tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"double": module.f})
    with pytest.raises(ValueError, match=r"other has no 'refine' signature; signatures: "
                                         r"\['double'\]"):
        infer.load_refiner(tmp_path / "other")
