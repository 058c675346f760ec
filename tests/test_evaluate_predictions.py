"""Scoring stored predictions without a model: `evaluate --predictions` (MPII and 3D)."""

import json

import h5py
import numpy as np
import pytest
import scipy.io

from keras_pose3d import metrics, skeleton
from keras_pose3d.evaluate import main
from keras_pose3d.evaluation import predictions_file
from keras_pose3d.evaluation.records import read_record_meta, record_id
from tests.conftest import require_realdata

LAYOUTS = {"N x 16 x 2": (0, 1, 2), "16 x 2 x N": (1, 2, 0), "2 x 16 x N": (2, 1, 0)}


def _table_row(text: str, label: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {label} |")]
    return [c.strip() for c in line.strip("|").split("|")][1:]


def _evaluate(dataset, predictions, out, *, mpii_gt=None, records=None, key=None) -> int:
    """`python -m keras_pose3d.evaluate --predictions ...`: the exit code."""
    argv = ["--dataset", dataset, "--predictions", str(predictions), "--out", str(out)]
    for flag, value in (("--mpii-gt", mpii_gt), ("--records", records), ("--predictions-key", key)):
        if value is not None:
            argv += [flag, str(value)]
    return main(argv)


def _write(path, key, arr):
    if path.suffix == ".mat":
        scipy.io.savemat(str(path), {key: arr})
    else:
        with h5py.File(path, "w") as f:
            f[key] = arr


@pytest.mark.realdata
@pytest.mark.parametrize("suffix", [".mat", ".h5"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_tompson_predictions_file_table_equals_metrics_pckh(tmp_path, capsys, suffix, layout):
    gt_path = require_realdata("mpii", "mpii_val_gt_tompson_format.mat")
    mat = scipy.io.loadmat(str(gt_path))
    pred = np.transpose(mat["pos_pred_src"], (2, 0, 1))  # (N, 16, 2), Tompson's own predictions
    gt = np.transpose(mat["pos_gt_src"], (2, 0, 1))
    boxes = np.transpose(mat["headboxes_src"], (2, 0, 1))
    visible = 1 - mat["jnt_missing"].T
    path = tmp_path / f"tompson_{layout.replace(' ', '')}{suffix}"
    _write(path, "preds", np.transpose(pred, LAYOUTS[layout]))
    out = tmp_path / "out"
    assert _evaluate("mpii", path, out, mpii_gt=gt_path) == 0
    printed = capsys.readouterr().out
    per_joint = metrics.pckh(pred, gt, boxes, visible)  # the reference: metrics on the arrays
    count = visible.sum(axis=0)
    # Per joint, as printed (two decimals).
    for j, name in enumerate(skeleton.MPII_JOINTS):
        assert _table_row(printed, name)[:2] == [f"{per_joint[j]:.2f}", str(count[j])]
    # The published row: pairs pooled (weighted by annotated joints), weighted and plain means.
    want = []
    for _, idx in skeleton.PCKH_PARTS:
        idx = list(idx)
        want.append(np.sum(per_joint[idx] * count[idx]) / count[idx].sum())
    keep = [j for j in range(16) if j not in (6, 7)]
    want.append(np.sum(per_joint[keep] * count[keep]) / count[keep].sum())
    want.append(np.mean(per_joint[keep]))
    assert _table_row(printed, path.name) == [f"{v:.2f}" for v in want]
    header = [c.strip() for c in printed.split("| method |")[1].splitlines()[0].split("|")][:-1]
    assert header == [
        "Head",
        "Sho",
        "Elb",
        "Wri",
        "Hip",
        "Knee",
        "Ank",
        "Mean",
        "Mean (unweighted)",
    ]
    assert f"stored {layout}" in printed
    assert _table_row((out / "mpii.md").read_text(), path.name) == [f"{v:.2f}" for v in want]
    report = json.loads((out / "mpii.json").read_text())["mpii"]
    assert report["pckh"][metrics.MEAN_WEIGHTED] == pytest.approx(want[7], abs=1e-9)
    assert report["n_persons"] == 2958


def _tiny_gt(tmp_path, n=3):
    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 400, size=(n, 16, 2))
    boxes = np.tile(np.array([[[0.0, 0.0], [30.0, 40.0]]]), (n, 1, 1))  # head size 30 px
    scipy.io.savemat(
        str(tmp_path / "gt.mat"),
        {
            "pos_gt_src": np.transpose(gt, (1, 2, 0)),
            "headboxes_src": np.transpose(boxes, (1, 2, 0)),
            "jnt_missing": np.zeros((16, n), np.uint8),
        },
    )
    return gt, tmp_path / "gt.mat"


def test_mpii_predictions_hand_case_and_refusals(tmp_path, capsys):
    gt, gt_path = _tiny_gt(tmp_path)
    pred = gt.copy()
    pred[0, :, 0] += 14.99  # < 15 px: correct
    pred[1, :, 1] -= 15.0  # = 15 px: wrong (strict)
    path = tmp_path / "p.h5"
    _write(path, "preds", pred)
    out = tmp_path / "o"
    assert _evaluate("mpii", path, out, mpii_gt=gt_path) == 0
    row = _table_row(capsys.readouterr().out, "p.h5")
    assert row == ["66.67"] * 9
    # Refused: a layout that is none of the three, with the file, key and shape named.
    bad = tmp_path / "bad.mat"
    _write(bad, "preds", np.zeros((16, 3, 2)))
    assert _evaluate("mpii", bad, out, mpii_gt=gt_path) == 2
    err = capsys.readouterr().err
    assert f"{bad}: key 'preds' has shape (16, 3, 2)" in err and "N x 16 x 2" in err
    # Another key name, the wrong key, and non-finite values.
    _write(tmp_path / "k.mat", "pred_joints", np.transpose(pred, (2, 1, 0)))
    assert _evaluate("mpii", tmp_path / "k.mat", out, mpii_gt=gt_path) == 2
    assert "key 'preds' missing; keys: ['pred_joints']" in capsys.readouterr().err
    assert _evaluate("mpii", tmp_path / "k.mat", out, mpii_gt=gt_path, key="pred_joints") == 0
    assert _table_row(capsys.readouterr().out, "k.mat") == ["66.67"] * 9
    pred[2, 3, 0] = np.nan
    _write(path, "preds", pred)
    assert _evaluate("mpii", path, out, mpii_gt=gt_path) == 2
    assert "non-finite values at (row, joint, xy) [[2, 3, 0]]" in capsys.readouterr().err


def test_mpii_layout_ambiguous_for_two_rows_is_refused(tmp_path):
    path = tmp_path / "p.h5"
    _write(path, "preds", np.zeros((2, 16, 2)))
    with pytest.raises(ValueError, match="ambiguous"):
        predictions_file.load_mpii_predictions(path, num_rows=2)


# ----------------------------------------------------------------------------------------------
# 3D: an .npz keyed by record id, scored against the records' ground truth.
# ----------------------------------------------------------------------------------------------
def test_3d_predictions_npz_by_record_id(tmp_path, capsys):
    from tests.test_evaluate import _write_records

    rec = tmp_path / "val-00000.tfrecord"
    j3d = _write_records(rec, n=4)  # 3DHP records, univ = 0.9 x annot3
    meta = read_record_meta([str(rec)])
    ids = [record_id(m) for m in meta]
    assert ids == [f"mpi_inf_3dhp/TS1/TS1/TS1/{i}" for i in range(4)]
    gt = np.stack([m["joints_3d"] for m in meta])  # float32 values as stored
    off = np.zeros_like(gt)
    off[:, [j for j in range(16) if j != skeleton.ROOT], 0] = 100.0
    # Stored in another order than the records; poses at the annot3 size (the default scale).
    order = [2, 0, 3, 1]
    npz = predictions_file.save_pose_predictions(
        tmp_path / "p.npz", [ids[k] for k in order], (gt + off)[order]
    )
    out = tmp_path / "o"
    assert _evaluate("mpi_inf_3dhp", npz, out, records=rec) == 0
    rows = json.loads((out / "mpi_inf_3dhp.json").read_text())["mpi_inf_3dhp"]["rows"]
    # Every record scored; at the univ size: 90 mm on 15 joints, 45 on the spine.
    assert rows["All"]["frames"] == 4
    assert rows["All"]["MPJPE"] == pytest.approx((15 * 90.0 + 45.0) / 17, rel=1e-5)
    # Poses declared at the univ size are used as they are.
    npz = predictions_file.save_pose_predictions(
        tmp_path / "u.npz", ids, 0.9 * (gt + off), pose_scale="univ"
    )
    assert _evaluate("mpi_inf_3dhp", npz, out, records=rec) == 0
    rows = json.loads((out / "mpi_inf_3dhp.json").read_text())["mpi_inf_3dhp"]["rows"]
    assert rows["All"]["MPJPE"] == pytest.approx((15 * 90.0 + 45.0) / 17, rel=1e-5)
    capsys.readouterr()
    # "univ" means nothing for another dataset: refused, naming the file.
    assert _evaluate("h36m", npz, out, records=rec) == 2
    assert f"{npz}: pose_scale 'univ'" in capsys.readouterr().err
    # A missing record id is refused, naming it.
    npz = predictions_file.save_pose_predictions(tmp_path / "m.npz", ids[:3], gt[:3])
    assert _evaluate("mpi_inf_3dhp", npz, out, records=rec) == 2
    err = capsys.readouterr().err
    assert "1 records have no prediction (e.g. ['mpi_inf_3dhp/TS1/TS1/TS1/3'])" in err
    assert np.allclose(j3d, gt, atol=1e-3)


def _write_mat73(path, key, matlab_array):
    """A MATLAB v7.3 file: HDF5 with MATLAB's 128-byte header in a 512-byte user block; HDF5
    stores MATLAB's column-major array with its axes reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f[key] = np.ascontiguousarray(np.transpose(matlab_array))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")


def test_mpii_predictions_matlab_v73_file(tmp_path):
    gt, _ = _tiny_gt(tmp_path)
    pred = gt.copy()
    pred[0, :, 0] += 20.0  # wrong
    path = tmp_path / "p73.mat"
    _write_mat73(path, "preds", np.transpose(pred, (1, 2, 0)))  # MATLAB 16 x 2 x N
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(str(path))  # scipy refuses v7.3: the h5py path is taken
    got, layout = predictions_file.load_mpii_predictions(path, num_rows=3)
    assert layout == "16 x 2 x N"
    np.testing.assert_array_equal(got, pred)


def test_unreadable_files_are_refused_by_name(tmp_path, capsys):
    """Corrupt or truncated predictions and ground-truth files: exit 2 naming the file."""
    _, gt_path = _tiny_gt(tmp_path)
    garbage = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    for name in ("g.mat", "g.h5", "t.mat"):
        (tmp_path / name).write_bytes(garbage if name[0] == "g" else b"MATLAB 5.0 MAT-file")
        assert _evaluate("mpii", tmp_path / name, tmp_path / "o", mpii_gt=gt_path) == 2
        assert f"error: {tmp_path / name}: not a readable" in capsys.readouterr().err
    assert _evaluate("mpii", tmp_path / "g.h5", tmp_path / "o", mpii_gt=tmp_path / "t.mat") == 2
    assert (
        f"error: {tmp_path / 't.mat'}: not a readable MATLAB .mat file" in capsys.readouterr().err
    )
    (tmp_path / "g.npz").write_bytes(garbage)
    with pytest.raises(ValueError, match=r"g\.npz: not a readable \.npz file"):
        predictions_file.load_pose_predictions(tmp_path / "g.npz")


def test_flag_combinations_refused_before_any_file_is_read(tmp_path, capsys):
    """runner.evaluate checks the flags: --predictions excludes a model, else --run is needed."""
    absent = str(tmp_path / "absent.npz")  # never opened: the flags are refused first
    for extra in (["--run", str(tmp_path)], ["--saved-model", str(tmp_path)]):
        assert main(["--dataset", "synthetic", "--predictions", absent, *extra]) == 2
        err = capsys.readouterr().err
        assert err == "error: --predictions scores a stored file: give no --run/--saved-model\n"
    assert main(["--dataset", "synthetic", "--records", absent]) == 2
    err = capsys.readouterr().err
    assert err == "error: give --run RUN_DIR (a model to evaluate) or --predictions FILE\n"
    # MPII without --run: the missing ground-truth flags are named first.
    assert main(["--dataset", "mpii"]) == 2
    assert capsys.readouterr().err.startswith("error: --dataset mpii needs --mpii-gt")
