"""Evaluation tables on hand-built predictions, record reading, and the evaluate entry point."""

import json
import pathlib

import numpy as np
import pytest

from keras_pose3d import metrics, skeleton
from keras_pose3d.data.readers.mpi_inf_3dhp import TEST_ACTIVITIES
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
    pred = np.stack(
        [_offset_non_root(gt[i : i + 1], offsets[i], skeleton.ROOT)[0] for i in range(8)]
    )
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
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    pred = 0.5 * gt @ rot.T + 17.0
    res = h36m.h36m_tables(pred, gt, ["Eating"] * 3, ["S9"] * 3)
    assert res["protocols"][h36m.P2_17][metrics.FRAME_MEAN] == pytest.approx(0.0, abs=1e-6)
    assert res["protocols"][h36m.P1_17][metrics.FRAME_MEAN] > 50.0
    # Bone-scaled: a half-size but otherwise exact pose is rescaled to the fixed bone sum.
    gt_rel = metrics.root_align(gt)
    s = skeleton.H36M_ZHOU_BONE_SUM_MM / skeleton.bone_lengths(gt_rel, skeleton.ZHOU_BONES).sum(
        axis=-1
    )
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
    pred = np.stack(
        [
            _offset_non_root(
                univ[i : i + 1], np.array([offsets[i], 0, 0]), skeleton.MPI3DHP17_ROOT
            )[0]
            for i in range(n)
        ]
    )
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
    from keras_pose3d.evaluation.mpi_inf_3dhp import tables_from_records as tables_mpi_inf_3dhp

    pred, univ, _, valid, acts, seqs = _3dhp_case()
    # annot3 is the subject's real size, univ_annot3 the same pose at the universal size; the
    # network's (scale-free) prediction is decoded with the annot3 root depth.
    size = 1.0 / 1.08
    to16 = skeleton.mpi3dhp17_to_mpii
    # Records hold valid frames only (the 3DHP job writes no other).
    keep = valid == 1
    meta = [
        {
            "action": TEST_ACTIVITIES[a],
            "sequence": s,
            "subject": s,
            "camera": s,
            "joints_3d_univ": to16(univ[i]),
        }
        for i, (a, s) in enumerate(zip(acts, seqs))
        if keep[i]
    ]
    arrays = {"pred_mm": to16(size * pred[keep]), "gt_mm": to16(size * univ[keep])}
    results, _ = tables_mpi_inf_3dhp(arrays, meta)
    all_row = results["mpi_inf_3dhp"]["rows"]["All"]
    assert all_row["frames"] == 5
    assert all_row[metrics.PCK3D_NAME] == pytest.approx(60.0)
    # Hand value in univ mm (MPII-16 -> 3DHP-17: 15 joints off by d, spine d / 2, pelvis 0).
    assert all_row["MPJPE"] == pytest.approx(15.5 * (3 * 102 + 2 * 200) / 5 / 17)
    assert "univ_annot3" in results["mpi_inf_3dhp"]["ground_truth"]
    assert "1.080..1.080" in results["mpi_inf_3dhp"]["scale"]
    # Without the univ key the annot3 fallback is used (errors at the annot3 size) and flagged.
    for m in meta:
        del m["joints_3d_univ"]
    results, _ = tables_mpi_inf_3dhp(arrays, meta)
    assert "NOT comparable" in results["mpi_inf_3dhp"]["ground_truth"]
    assert results["mpi_inf_3dhp"]["rows"]["All"]["MPJPE"] == pytest.approx(
        size * 15.5 * (3 * 102 + 2 * 200) / 5 / 17
    )


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
    for right, left in skeleton.SYMMETRY_BONE_PAIRS:
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
def _write_records(path, n=3, univ=True):
    """n 3DHP test records (valid frames, as the job writes them); with `univ`, universal 3D
    (joints_3d_univ = 0.9 x joints_3d). Returns the (n, 16, 3) joints_3d written."""
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
            raw = features.encode_example(
                {
                    "image_jpeg": jpeg,
                    "joints_2d": uv,
                    "visibility": np.ones(16),
                    "joints_3d": j3d,
                    "has_3d": True,
                    "intrinsics": intr,
                    "distortion": None,
                    "box": np.array([0, 0, 64, 64.0]),
                    "dataset": "mpi_inf_3dhp",
                    "subject": "TS1",
                    "sequence": "TS1",
                    "action": "Sitting",
                    "camera": "TS1",
                    "frame": i,
                    "orig_size": np.array([64, 64]),
                    "has_3d_univ": univ,
                    "joints_3d_univ": j3d * 0.9 if univ else None,
                }
            )
            w.write(raw)
    return np.stack(written)


def test_read_record_meta_names_the_file_of_a_record_of_another_schema(tmp_path):
    import tensorflow as tf

    from keras_pose3d.evaluation.records import read_record_meta

    path = tmp_path / "val-00000.tfrecord"
    _write_records(path, n=1)
    raw = next(tf.data.TFRecordDataset([str(path)]).as_numpy_iterator())
    example = tf.train.Example.FromString(raw)
    del example.features.feature["meta/frame"]
    bad = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(bad)) as w:
        w.write(example.SerializeToString())
    with pytest.raises(ValueError, match=rf"{bad}: record 0: record has no feature 'meta/frame'"):
        read_record_meta([str(bad)])


def test_read_record_meta_and_perfect_predictor(tmp_path):
    from keras_pose3d.data import pose_codec
    from keras_pose3d.evaluation.predictors import run_predictions
    from keras_pose3d.evaluation.records import read_record_meta

    path = tmp_path / "val-00000.tfrecord"
    j3d = _write_records(path)
    meta = read_record_meta([str(path)])
    assert [m["frame"] for m in meta] == [0, 1, 2]
    assert [m["camera"] for m in meta] == ["TS1"] * 3 and all(m["has_3d"] for m in meta)
    assert all("joints_3d_univ" in m for m in meta)
    # The record stores float32: compare with the written values rounded the same way.
    for m, want in zip(meta, j3d):
        np.testing.assert_array_equal(m["joints_3d_univ"], (want * 0.9).astype(np.float32))

    # Records without universal 3D carry no joints_3d_univ field (the annot3 fallback).
    _write_records(path, univ=False)
    assert not any("joints_3d_univ" in m for m in read_record_meta([str(path)]))

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
    from keras_pose3d.models.sap_net import SAPNet
    from pipelines.synthetic_to_tfrecord import ensure_synthetic_dataset

    tmp = tmp_path_factory.mktemp("eval_run")
    data_dir = tmp / "data"
    ensure_synthetic_dataset(
        data_dir,
        num_shards=1,
        num_subjects=3,
        sequences_per_subject=1,
        frames_per_sequence=4,
        crop_size=48,
        num_2d_subjects=1,
        num_validation_subjects=1,
    )
    run = tmp / "run"
    run.mkdir()
    cfg = Config(
        train=TrainConfig(stages=(StageConfig("s", 1, 1e-3, ("heatmap",)),)),
        data=DataConfig(
            data_dir=str(data_dir), generate_synthetic=True, input_size=32, heatmap_size=8
        ),
    )
    (run / "config.yaml").write_text(cfg.to_yaml())
    keras.utils.set_random_seed(0)
    model = SAPNet(
        num_stacks=1,
        num_features=8,
        hourglass_depth=1,
        depth_blocks=1,
        input_size=32,
        heatmap_size=8,
    )
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
    for inputs, targets in make_validation_dataset(
        files, input_size=32, heatmap_size=8, batch_size=4
    ).as_numpy_iterator():
        pred = pose_codec.decode_pose_3d(
            np.asarray(model(inputs["image"])["pose_3d"]),
            targets["intrinsics"],
            targets["root_depth"],
            32,
        )
        gt = targets["joints_3d"].astype(np.float64)
        pred = pred - pred[:, skeleton.ROOT : skeleton.ROOT + 1]
        gt = gt - gt[:, skeleton.ROOT : skeleton.ROOT + 1]
        errors.append(np.linalg.norm(pred - gt, axis=-1).mean(axis=-1))
    errors = np.concatenate(errors)
    assert report["protocol_1"][metrics.FRAME_MEAN] == pytest.approx(errors.mean(), rel=1e-4)
    # The written predictions, scored again without the model, give the same tables.
    again = tmp_path / "again"
    assert (
        main(
            [
                "--dataset",
                "synthetic",
                "--predictions",
                str(out / "synthetic_predictions.npz"),
                "--records",
                *files,
                "--out",
                str(again),
            ]
        )
        == 0
    )
    rescored = json.loads((again / "synthetic.json").read_text())["synthetic"]
    assert rescored["protocol_1"] == pytest.approx(report["protocol_1"])
    assert rescored["protocol_2"] == pytest.approx(report["protocol_2"])


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


# ----------------------------------------------------------------------------------------------
# 3DHP: predictions decoded at annot3 scale are scored at univ_annot3 scale (issue 12).
# ----------------------------------------------------------------------------------------------
def _3dhp_records_case(s, pred_err_mm):
    """Records whose univ_annot3 is s x annot3 (about the camera centre), and a prediction
    decoded with the annot3 root depth (what run_predictions does) that is annot3 plus
    `pred_err_mm` on every non-root joint: a scale-free network output seen at annot3 scale."""
    n = 4
    annot3 = _random_poses(n, joints=16, seed=7)  # MPII-16 camera mm, as records store it
    pred = _offset_non_root(annot3, pred_err_mm, skeleton.ROOT)
    univ = s * annot3
    meta = [
        {
            "action": "Sitting",
            "sequence": f"TS{1 + i % 2}",
            "subject": "TS1",
            "camera": "0",
            "joints_3d_univ": univ[i],
        }
        for i in range(n)
    ]
    return {"pred_mm": pred, "gt_mm": annot3}, meta


@pytest.mark.parametrize("s", [0.9, 1.1])
def test_3dhp_error_does_not_depend_on_the_subject_scale(s):
    from keras_pose3d.evaluation.mpi_inf_3dhp import tables_from_records as tables_mpi_inf_3dhp

    def all_row(scale, err):
        arrays, meta = _3dhp_records_case(scale, np.array(err))
        return tables_mpi_inf_3dhp(arrays, meta)[0]["mpi_inf_3dhp"]["rows"]["All"]

    # A perfect (scale-free) prediction is perfect whatever the subject's size.
    perfect = all_row(s, [0.0, 0.0, 0.0])
    assert perfect["MPJPE"] == pytest.approx(0.0, abs=1e-9)
    assert perfect[metrics.PCK3D_NAME] == pytest.approx(100.0)
    # An imperfect one: the error is the s = 1 error seen at the universal size, i.e. s times
    # it in mm (PCK unchanged away from the 150 mm threshold); annot3 scale gives ~|1-s| x pose.
    ref, got = all_row(1.0, [0.0, 60.0, 0.0]), all_row(s, [0.0, 60.0, 0.0])
    # 3DHP-17: 15 joints 60 mm off, spine (mean of pelvis and thorax) 30 mm, pelvis 0.
    assert ref["MPJPE"] == pytest.approx((15 * 60.0 + 30.0) / 17)
    assert got["MPJPE"] == pytest.approx(s * ref["MPJPE"])
    assert got[metrics.PCK3D_NAME] == pytest.approx(ref[metrics.PCK3D_NAME]) == 100.0
    # Every PCK-14 joint is s x 60 mm off: 54 mm passes 55..150 (20 of 31), 66 mm 70..150 (17).
    assert got[metrics.AUC3D_NAME] == pytest.approx(100.0 * (20 if s < 1 else 17) / 31)


# ----------------------------------------------------------------------------------------------
# MPII on records: every annotated joint counts, inside the crop or not (issue 12).
# ----------------------------------------------------------------------------------------------
def _write_tompson_gt(path, gt_1based, headboxes, missing, pred=None):
    import scipy.io

    mdict = {
        "pos_gt_src": np.transpose(gt_1based, (1, 2, 0)),
        "headboxes_src": np.transpose(headboxes, (1, 2, 0)),
        "jnt_missing": missing.T.astype(np.uint8),
        "dataset_joints": np.array(
            [
                [
                    "rank",
                    "rkne",
                    "rhip",
                    "lhip",
                    "lkne",
                    "lank",
                    "pelv",
                    "thor",
                    "neck",
                    "head",
                    "rwri",
                    "relb",
                    "rsho",
                    "lsho",
                    "lelb",
                    "lwri",
                ]
            ],
            dtype=object,
        ),
    }
    if pred is not None:
        mdict["pos_pred_src"] = np.transpose(pred, (1, 2, 0))
    scipy.io.savemat(str(path), mdict)


def test_mpii_records_count_annotated_joints_outside_the_crop(tmp_path):
    import h5py

    from keras_pose3d.data.features import PERSON_MARGIN
    from keras_pose3d.evaluation.mpii import tables_from_records as tables_mpii

    size = 64  # network input S
    # Two persons; stored crop boxes (original 0-based px, crop edges) of side 175 and 350.
    boxes = np.array([[100.0, 50.0, 275.0, 225.0], [400.0, 0.0, 750.0, 350.0]])
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    scale = size * PERSON_MARGIN / (boxes[:, 2] - boxes[:, 0])  # input px per original px

    def to_input(p0):  # original 0-based px -> input px (stored crop, then centre 1/1.75)
        return scale[:, None, None] * (p0 - centre[:, None]) + (size - 1) / 2.0

    rng = np.random.default_rng(5)
    gt0 = (
        centre[:, None]
        + rng.uniform(-40, 40, size=(2, 16, 2)) * np.array([[1.0], [2.0]])[:, :, None]
    )
    gt0[0, 0] = centre[0] + [0.0, 130.0]  # right ankle of person 0: annotated, outside the input
    gt1 = gt0 + 1.0  # MPII / Tompson ground truth is 1-based
    headboxes = np.array([[[0.0, 0.0], [30.0, 40.0]], [[0.0, 0.0], [60.0, 80.0]]])
    head = 0.6 * 50.0 * np.array([1.0, 2.0])  # 30 and 60 px: threshold 15 and 30 px
    missing = np.zeros((2, 16))
    missing[1, 9] = 1  # person 1's head top is not annotated
    # Predictions (original px): 0.5 threshold minus 0.5 px off, the right ankle clipped to the
    # input's border; person 0's head top 14.5 px LEFT of the truth, so a lost 0/1-based shift
    # (1 px) would make it wrong.
    pred0 = gt0 + (0.5 * head[:, None, None] - 0.5) * np.array([0.6, 0.8])
    pred0[0, 9] = gt0[0, 9] - [14.5, 0.0]
    pred_in = to_input(pred0)
    pred_in[0, 0] = np.clip(to_input(gt0)[0, 0], 0, size - 1)
    gt_in = to_input(gt0)
    inside = np.all((gt_in >= 0) & (gt_in <= size - 1), axis=-1)
    visibility = ((missing == 0) & inside).astype(float)  # what the records hold
    assert visibility[0, 0] == 0 and missing[0, 0] == 0

    _write_tompson_gt(tmp_path / "gt.mat", gt1, headboxes, missing)
    with h5py.File(tmp_path / "valid.h5", "w") as f:
        f["index"] = np.array([11.0, 12.0])
        f["person"] = np.array([0.0, 1.0])
    meta = [
        {"frame": 12, "sequence": "b.jpg/1", "box": boxes[1]},  # record order != row order
        {"frame": 11, "sequence": "a.jpg/0", "box": boxes[0]},
    ]
    arrays = {
        "pred_px": pred_in[::-1],
        "gt_px": gt_in[::-1],
        "visibility": visibility[::-1],
        "input_size": size,
    }
    results, _ = tables_mpii(arrays, meta, str(tmp_path / "gt.mat"), str(tmp_path / "valid.h5"))
    res = results["mpii"]["pckh"]
    # Right ankle: person 0 wrong (clipped at the border, ~100 px off), person 1 right: 1 of 2;
    # left ankle 2 of 2 -> Ankle 3 of 4 annotated ankles.
    assert res["Ankle"] == pytest.approx(75.0)
    assert res["Head"] == pytest.approx(100.0)  # 1 of 1 annotated head top, 14.5 < 15 px
    for part in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee"):
        assert res[part] == pytest.approx(100.0)
    # Per joint, the protocol's definition on original 1-based pixels.
    pred_orig = (pred_in - (size - 1) / 2.0) / scale[:, None, None] + centre[:, None]
    assert np.linalg.norm(pred_orig[0, 0] - gt0[0, 0]) > 50.0
    want = metrics.pckh(pred_orig + 1.0, gt1, headboxes, 1 - missing)
    keep = [j for j in range(16) if j not in metrics.PCKH_EXCLUDED]
    assert res[metrics.MEAN_UNWEIGHTED] == pytest.approx(np.mean(want[keep]))
    counts = (1 - missing).sum(0)
    assert res[metrics.MEAN_WEIGHTED] == pytest.approx(
        np.sum(want[keep] * counts[keep]) / counts[keep].sum()
    )
    assert res[metrics.MEAN_WEIGHTED] == pytest.approx(100.0 * 26 / 27)


def test_input_to_original_inverts_the_pipeline_and_augment_crops():
    """Round trip: original px -> stored crop (crop_geometry) -> input (augment) -> back."""
    from keras_pose3d.data import augment, crop_geometry
    from keras_pose3d.data.features import PERSON_MARGIN
    from keras_pose3d.evaluation.crop import input_to_original

    rng = np.random.default_rng(2)
    orig = rng.uniform(0, 1000, size=(16, 2))
    centre, person_side, stored, size = (512.3, 377.9), 311.0, 448, 64
    side = PERSON_MARGIN * person_side
    crop_m = crop_geometry.crop_affine(centre, side, stored)
    in_crop = orig @ crop_m[:2, :2].T + crop_m[:2, 2]
    m = augment.crop_affine([stored, stored], size)
    q = np.asarray(crop_geometry.transform_points_tf(in_crop, m), np.float64)
    box = np.array(
        [centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2]
    )
    back = input_to_original(q[None], box[None], size)[0]
    np.testing.assert_allclose(back, orig, atol=2e-3)  # float32 in augment: ~1e-4 input px
    with pytest.raises(ValueError, match="x1 > x0"):
        input_to_original(q[None], box[None, [2, 1, 0, 3]], size)
