"""Evaluation tables on hand-built predictions, record reading, and the evaluate entry point."""

import json
import pathlib

import numpy as np
import pytest

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluation import h36m, mpi_inf_3dhp, mpii, structural
from keras_pose3d.evaluation.tables import Table, to_csv, to_markdown, write_report


def _random_poses(n, joints=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=300.0, size=(n, joints, 3)) + np.array([0.0, 0.0, 5000.0])


def _offset_non_root(gt, d, root):
    pred = gt.copy()
    mask = np.arange(gt.shape[1]) != root
    pred[:, mask] += d
    return pred


# ----------------------------------------------------------------------------------------------
# H36M.
# ----------------------------------------------------------------------------------------------
def test_h36m_known_offsets_give_known_action_and_frame_means():
    gt = _random_poses(8)
    # Directions: 2 frames with every non-root joint off by 10 mm; Walking: 6 frames, 40 mm.
    offsets = np.array([[10.0, 0, 0]] * 2 + [[0, 40.0, 0]] * 6)
    pred = np.stack([_offset_non_root(gt[i:i + 1], offsets[i], skeleton.ROOT)[0]
                     for i in range(8)])
    actions = ["Directions 1"] * 2 + ["Walking"] * 6
    res = h36m.h36m_tables(pred, gt, actions, ["S9"] * 8, ["55011271"] * 8)
    p16 = res["protocols"][h36m.P1_16]
    # 16 joints, root error 0: 15 * d / 16.
    assert p16["per_action"]["Directions"] == pytest.approx(15 * 10 / 16)
    assert p16["per_action"]["Walking"] == pytest.approx(15 * 40 / 16)
    assert p16[metrics.ACTION_MEAN] == pytest.approx((9.375 + 37.5) / 2)
    assert p16[metrics.FRAME_MEAN] == pytest.approx((2 * 9.375 + 6 * 37.5) / 8)
    # 17 joints: 15 joints off by d, spine = mean(pelvis, thorax) off by d/2, pelvis 0.
    p17 = res["protocols"][h36m.P1_17]
    assert p17["per_action"]["Walking"] == pytest.approx((15 * 40 + 20) / 17)
    assert p17[metrics.ACTION_MEAN] != pytest.approx(p17[metrics.FRAME_MEAN])
    assert list(p16["per_action"]) == ["Directions", "Walking"]  # paper column order
    assert p16["counts"] == {"Directions": 2, "Walking": 6}


def test_h36m_exclusion_is_applied_and_listed():
    gt = _random_poses(4)
    pred = gt.copy()
    pred[3] += 500.0  # would dominate the mean if it were counted
    pred[3, skeleton.ROOT] -= 0.0
    pred[3, 0] += 100.0
    cams = ["55011271", "55011271", "55011271", "54138969"]
    res = h36m.h36m_tables(pred, gt, ["Directions"] * 4, ["S11"] * 4, cams)
    assert res["n_frames"] == 3
    assert res["protocols"][h36m.P1_16][metrics.FRAME_MEAN] == pytest.approx(0.0)
    (rule,) = res["exclusions"]
    assert rule["frames_removed"] == 1 and rule["camera"] == "54138969"


def test_h36m_protocol_2_and_bone_scaled_on_similarity_copies():
    gt = _random_poses(3)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]])
    pred = 0.5 * gt @ rot.T + 17.0
    res = h36m.h36m_tables(pred, gt, ["Eating"] * 3, ["S9"] * 3)
    assert res["protocols"][h36m.P2_17][metrics.FRAME_MEAN] == pytest.approx(0.0, abs=1e-6)
    assert res["protocols"][h36m.P1_17][metrics.FRAME_MEAN] > 50.0
    # Bone-scaled: a half-size but otherwise exact pose is rescaled to the fixed bone sum.
    gt_rel = metrics.root_align(gt)
    s = skeleton.H36M_ZHOU_BONE_SUM_MM / skeleton.bone_lengths(
        gt_rel, skeleton.ZHOU_BONES).sum(axis=-1)
    gt_scaled = gt_rel * s[:, None, None]
    res = h36m.h36m_tables(0.5 * gt_scaled, gt_scaled, ["Eating"] * 3, ["S9"] * 3)
    assert res["protocols"][h36m.BONE_16][metrics.FRAME_MEAN] == pytest.approx(0.0, abs=1e-6)
    tables = h36m.h36m_markdown_tables(res)
    assert "55.5" in to_markdown(tables[0]) and "42.2" in to_markdown(tables[1])


def test_canonical_action_spellings():
    assert h36m.canonical_action("Photo 1") == "TakingPhoto"
    assert h36m.canonical_action("WalkDog_2") == "WalkingDog"
    assert h36m.canonical_action("WalkTogether") == "WalkingTogether"
    assert h36m.canonical_action("Sitting 2") == "Sitting"
    with pytest.raises(ValueError, match="Dancing"):
        h36m.canonical_action("Dancing")


# ----------------------------------------------------------------------------------------------
# MPI-INF-3DHP.
# ----------------------------------------------------------------------------------------------
def _3dhp_case():
    n = 6
    univ = _random_poses(n, joints=17, seed=1)
    # A different ground truth that must not be used: non-root joints 500 mm off in x.
    annot3 = _offset_non_root(univ, np.array([500.0, 0, 0]), skeleton.MPI3DHP17_ROOT)
    offsets = np.array([102.0, 102.0, 102.0, 200.0, 200.0, 999.0])  # away from thresholds
    pred = np.stack([_offset_non_root(univ[i:i + 1], np.array([offsets[i], 0, 0]),
                                      skeleton.MPI3DHP17_ROOT)[0] for i in range(n)])
    valid = np.array([1, 1, 1, 1, 1, 0])
    acts = [1, 1, 1, 3, 3, 3]
    seqs = ["TS1", "TS1", "TS3", "TS3", "TS5", "TS5"]
    return pred, univ, annot3, valid, acts, seqs


def test_3dhp_valid_frames_only_and_hand_computed_pck_auc_mpjpe():
    pred, univ, _, valid, acts, seqs = _3dhp_case()
    res = mpi_inf_3dhp.mpi3dhp_tables(pred, univ, valid, acts, seqs)
    rows = res["rows"]
    assert res["n_valid"] == 5 and res["n_invalid_dropped"] == 1
    sw = rows["Standing/Walking"]
    assert sw["MPJPE"] == pytest.approx(16 * 102.0 / 17)
    assert sw[metrics.PCK3D_NAME] == pytest.approx(100.0)
    # thresholds 0..150 step 5, strict <: 105..150 pass = 10 of 31.
    assert sw[metrics.AUC3D_NAME] == pytest.approx(100.0 * 10 / 31)
    sit = rows["Sitting"]
    assert sit["frames"] == 2  # the invalid 999 mm frame is gone
    assert sit["MPJPE"] == pytest.approx(16 * 200.0 / 17)
    assert sit[metrics.PCK3D_NAME] == pytest.approx(0.0)
    assert rows["All"]["frames"] == 5
    assert rows["All"][metrics.PCK3D_NAME] == pytest.approx(60.0)
    assert rows["All"]["MPJPE"] == pytest.approx(16 * (3 * 102 + 2 * 200) / 5 / 17)
    assert rows["green screen (TS1-2)"]["frames"] == 2
    assert rows["outdoor (TS5-6)"]["frames"] == 1
    assert rows["TS3"]["MPJPE"] == pytest.approx(16 * 151.0 / 17)


def test_3dhp_record_path_uses_univ_not_annot3():
    from keras_pose3d.evaluate import tables_mpi_inf_3dhp

    pred, univ, annot3, valid, acts, seqs = _3dhp_case()
    # Records are MPII-16: the MPII view of both ground truths and of the prediction.
    to16 = skeleton.mpi3dhp17_to_mpii
    meta = [{"action": mpi_inf_3dhp.ACTIVITIES[a], "sequence": s, "subject": s, "camera": s,
             "joints_3d_univ": to16(univ[i]), "valid_frame": bool(valid[i])}
            for i, (a, s) in enumerate(zip(acts, seqs))]
    arrays = {"pred_mm": to16(pred), "gt_mm": to16(annot3)}
    results, _ = tables_mpi_inf_3dhp(arrays, meta)
    all_row = results["mpi_inf_3dhp"]["rows"]["All"]
    assert all_row["frames"] == 5
    assert all_row[metrics.PCK3D_NAME] == pytest.approx(60.0)  # vs annot3 it would be 0
    assert "univ_annot3" in results["mpi_inf_3dhp"]["ground_truth"]
    # Without the univ key the annot3 fallback is used and flagged as not comparable.
    for m in meta:
        del m["joints_3d_univ"]
    results, _ = tables_mpi_inf_3dhp(arrays, meta)
    assert "NOT comparable" in results["mpi_inf_3dhp"]["ground_truth"]
    assert results["mpi_inf_3dhp"]["rows"]["All"][metrics.PCK3D_NAME] == pytest.approx(0.0)


def test_mpii_to_3dhp17_round_trip_except_spine():
    pose17 = _random_poses(2, joints=17)
    back = mpi_inf_3dhp.mpii_to_mpi3dhp17(skeleton.mpi3dhp17_to_mpii(pose17))
    others = [j for j in range(17) if j != mpi_inf_3dhp.SPINE_3DHP17]
    np.testing.assert_allclose(back[:, others], pose17[:, others])


# ----------------------------------------------------------------------------------------------
# Structural validity, MPII, writers.
# ----------------------------------------------------------------------------------------------
def test_structural_validity_hand_cases():
    base = np.zeros((16, 3))
    for j, (child, parent) in enumerate(skeleton.BONES):
        base[child] = base[parent] + np.array([0.0, 0.0, -100.0 - j])  # dummy chain
    # Make all limbs symmetric, then lengthen the right forearm by 30 mm in frame 1 only.
    seq = np.stack([base, base])
    for (right, left) in skeleton.SYMMETRY_BONE_PAIRS:
        for pose in seq:
            vec = pose[left[0]] - pose[left[1]]
            pose[right[0]] = pose[right[1]] + vec
    seq[1, 10] += (seq[1, 10] - seq[1, 11]) / np.linalg.norm(seq[1, 10] - seq[1, 11]) * 30.0
    res = structural.structural_validity(seq, ["a", "a"])
    assert res["symmetry_mm"]["forearm"] == pytest.approx(15.0)  # (0 + 30) / 2
    assert res["symmetry_mm"]["thigh"] == pytest.approx(0.0)
    # std over 2 frames of the right forearm (L, L+30) = 15; averaged with the left (0): 7.5.
    assert res["bone_std_mm"]["forearm"] == pytest.approx(7.5)
    assert structural.structural_markdown_tables(res)[0].rows[0][2] == 37.8


def test_mpii_table_hand_case():
    gt = np.zeros((2, 16, 2))
    headboxes = np.array([[[0, 0], [30, 40]]] * 2, dtype=float)  # diag 50 -> head size 30
    pred = gt.copy()
    pred[0, :, 0] = 14.9  # < 15: correct
    pred[1, :, 0] = 15.0  # = 15: wrong (strict <)
    visible = np.ones((2, 16))
    visible[1, 9] = 0  # second person's head missing
    res = mpii.mpii_tables(pred, gt, headboxes, visible)["pckh"]
    assert res["Head"] == pytest.approx(100.0)
    assert res["Ankle"] == pytest.approx(50.0)
    assert res[metrics.MEAN_UNWEIGHTED] == pytest.approx((100 + 13 * 50) / 14)
    assert res[metrics.MEAN_WEIGHTED] == pytest.approx(14 / 27 * 100)


def test_table_writers(tmp_path):
    t = Table("Table X: demo, mm", ["a", "b"], [["row", 1.234], ["none", None]], ["note"])
    md = to_markdown(t)
    assert "| row | 1.2 |" in md and "| none | – |" in md and "- note" in md
    assert to_csv(t) == "a,b\nrow,1.234\nnone,\n"
    paths = write_report([t], {"x": np.float32(1.5), "nan": float("nan")}, tmp_path, "demo")
    assert json.loads(pathlib.Path(paths["json"]).read_text()) == {"x": 1.5, "nan": None}
    assert pathlib.Path(paths["csv"][0]).read_text() == to_csv(t)
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Table("bad", ["a", "b"], [["only one"]])


# ----------------------------------------------------------------------------------------------
# Records -> predictions -> tables (a perfect predictor gives 0 mm).
# ----------------------------------------------------------------------------------------------
def _write_records(path, n=3, extra=True):
    import cv2
    import tensorflow as tf

    from keras_pose3d.data import features

    rng = np.random.default_rng(3)
    jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
    intr = np.array([60.0, 60.0, 31.5, 31.5])
    written = []
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(n):
            j3d = rng.normal(scale=150.0, size=(16, 3)) + np.array([0, 0, 3000.0])
            written.append(j3d)
            uv = j3d[:, :2] / j3d[:, 2:] * intr[:2] + intr[2:]
            raw = features.encode_example({
                "image_jpeg": jpeg, "joints_2d": uv, "visibility": np.ones(16),
                "joints_3d": j3d, "has_3d": True, "intrinsics": intr, "distortion": None,
                "box": np.array([0, 0, 64, 64.0]), "dataset": "mpi_inf_3dhp", "subject": "TS1",
                "sequence": "TS1", "action": "Sitting", "camera": "TS1", "frame": i,
                "orig_size": np.array([64, 64]),
            })
            ex = tf.train.Example.FromString(raw)
            if extra:
                ex.features.feature["joints_3d_univ"].float_list.value.extend(
                    (j3d * 0.9).reshape(-1).tolist())
                ex.features.feature["valid_frame"].int64_list.value.append(int(i != 1))
            w.write(ex.SerializeToString())
    return np.stack(written)


def test_read_record_meta_and_perfect_predictor(tmp_path):
    from keras_pose3d.data import pose_codec
    from keras_pose3d.evaluate import read_record_meta, run_predictions

    path = tmp_path / "val-00000.tfrecord"
    j3d = _write_records(path)
    meta = read_record_meta([str(path)])
    assert [m["frame"] for m in meta] == [0, 1, 2]
    assert [m["valid_frame"] for m in meta] == [True, False, True]
    # The record stores float32: compare with the written values rounded the same way.
    for m, want in zip(meta, j3d):
        np.testing.assert_array_equal(m["joints_3d_univ"], (want * 0.9).astype(np.float32))

    # A perfect predictor: the encoded ground truth of the (single) batch, fed through the real
    # decoding path of run_predictions.
    from keras_pose3d.data.dataset import make_validation_dataset

    ds = make_validation_dataset([str(path)], input_size=32, heatmap_size=8, batch_size=8)
    _, targets = next(ds.as_numpy_iterator())
    encoded = pose_codec.encode_pose_3d(targets["joints_3d"], targets["intrinsics"], 32)

    def perfect(images, intrinsics, root_depth):
        return {"pose_norm": encoded, "pose_2d": encoded[..., :2]}

    arrays = run_predictions(perfect, [str(path)], 32, 8, batch_size=8)
    np.testing.assert_allclose(arrays["pred_mm"], arrays["gt_mm"], atol=1e-2)


# ----------------------------------------------------------------------------------------------
# The command line on a tiny run directory (quickstart layout: no --records).
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import keras

    from keras_pose3d.config import Config, DataConfig, StageConfig, TrainConfig
    from keras_pose3d.data.synthetic import ensure_synthetic_dataset
    from keras_pose3d.models.sap_net import SAPNet

    tmp = tmp_path_factory.mktemp("eval_run")
    data_dir = tmp / "data"
    ensure_synthetic_dataset(data_dir, num_shards=1, num_subjects=3, sequences_per_subject=1,
                             frames_per_sequence=4, crop_size=48, num_2d_subjects=1,
                             num_validation_subjects=1)
    run = tmp / "run"
    run.mkdir()
    cfg = Config(train=TrainConfig(stages=(StageConfig("s", 1, 1e-3, ("heatmap",)),)),
                 data=DataConfig(data_dir=str(data_dir), generate_synthetic=True, input_size=32,
                                 heatmap_size=8))
    (run / "config.yaml").write_text(cfg.to_yaml())
    keras.utils.set_random_seed(0)
    model = SAPNet(num_stacks=1, num_features=8, hourglass_depth=1, depth_blocks=1,
                   input_size=32, heatmap_size=8)
    model(np.zeros((1, 32, 32, 3), np.float32))
    model.save(run / "sap_net.keras")
    return run, data_dir, model


@pytest.mark.slow
def test_evaluate_main_without_records_uses_the_config_validation_shards(tiny_run, tmp_path):
    from keras_pose3d.data import pose_codec
    from keras_pose3d.data.dataset import make_validation_dataset
    from keras_pose3d.evaluate import main

    run, data_dir, model = tiny_run
    out = tmp_path / "eval"
    assert main(["--run", str(run), "--dataset", "synthetic", "--out", str(out)]) == 0
    report = json.loads((out / "synthetic.json").read_text())["synthetic"]

    import tensorflow as tf

    files = sorted(str(f) for f in data_dir.glob("validation-*.tfrecord"))
    n = sum(1 for f in files for _ in tf.data.TFRecordDataset(f))
    assert n > 0 and report["n_frames"] == n
    assert sum(report["frames"].values()) == n
    # Recompute Protocol 1 by hand: decode the model's output, root-align, mean joint distance.
    errors = []
    for inputs, targets in make_validation_dataset(files, input_size=32, heatmap_size=8,
                                                   batch_size=4).as_numpy_iterator():
        pred = pose_codec.decode_pose_3d(np.asarray(model(inputs["image"])["pose_3d"]),
                                         targets["intrinsics"], targets["root_depth"], 32)
        gt = targets["joints_3d"].astype(np.float64)
        pred = pred - pred[:, skeleton.ROOT:skeleton.ROOT + 1]
        gt = gt - gt[:, skeleton.ROOT:skeleton.ROOT + 1]
        errors.append(np.linalg.norm(pred - gt, axis=-1).mean(axis=-1))
    errors = np.concatenate(errors)
    assert report["protocol_1"][metrics.FRAME_MEAN] == pytest.approx(errors.mean(), rel=1e-4)


@pytest.mark.slow
def test_evaluate_refuses_records_of_another_dataset(tiny_run, tmp_path, capsys):
    from keras_pose3d.evaluate import main

    run, data_dir, _ = tiny_run
    shard = min(data_dir.glob("validation-*.tfrecord"))
    rc = main(["--run", str(run), "--dataset", "h36m", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"records {shard} hold meta/dataset 'synthetic', --dataset h36m expects 'h36m'" in err


def test_evaluate_mpii_needs_ground_truth_before_anything_else(tmp_path, capsys):
    from keras_pose3d.evaluate import main

    # The run directory does not even exist: the missing MPII files are reported first.
    assert main(["--run", str(tmp_path / "nope"), "--dataset", "mpii"]) == 2
    assert "--mpii-gt" in capsys.readouterr().err
