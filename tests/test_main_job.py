"""The main job's stage-by-stage table (keras_pose3d/evaluation/main_job_table.py), on poses whose
figures are known by construction."""

import numpy as np
import pytest

from keras_pose3d import skeleton
from keras_pose3d.data import synthetic
from keras_pose3d.evaluation import main_job_table as main_job


def _legal_pose(seed=0):
    rng = np.random.default_rng(seed)
    bones = synthetic.subject_bone_lengths(rng)
    angles = {n: 0.5 * sum(synthetic._param_range(n)) for n in synthetic.PARAM_NAMES}
    return synthetic.pose_from_angles(angles, bones)  # (16, 3) mm, legal, left == right


def test_pose_row_hand_values():
    gt = np.stack([_legal_pose(0)] * 4)  # (4, 16, 3): two sequences of two frames
    sequence = np.array([0, 0, 1, 1])
    pred = gt.copy()
    pred[:, skeleton.J["r_wrist"]] += [30.0, 40.0, 0.0]  # 50 mm off on one joint of 16
    row = main_job.pose_row("x", pred, gt, sequence)
    assert row.mpjpe == pytest.approx(50.0 / 16)
    # Only the right forearm changed length: |L - R| = |forearm' - forearm| on that pair alone.
    fore = skeleton.bone_lengths(pred[:1], [(10, 11)])[0, 0]
    fore_gt = skeleton.bone_lengths(gt[:1], [(15, 14)])[0, 0]
    np.testing.assert_allclose(row.lr_diff, [0.0, abs(fore - fore_gt), 0.0, 0.0], atol=1e-6)
    # Constant poses within each sequence: no bone-length variation over time.
    np.testing.assert_allclose(row.bone_std, 0.0, atol=1e-9)
    assert row.illegal_pct == 0.0


def test_scaled_pose_has_zero_pa_mpjpe():
    gt = np.stack([_legal_pose(0)] * 2)
    root = gt[:, skeleton.ROOT : skeleton.ROOT + 1]
    pred = root + 1.1 * (gt - root)  # 10 % larger about the pelvis
    row = main_job.pose_row("x", pred, gt, np.array([0, 0]))
    expected = 0.1 * np.mean(np.linalg.norm(gt - root, axis=-1))
    assert row.mpjpe == pytest.approx(expected)
    assert row.pa_mpjpe == pytest.approx(0.0, abs=1e-6)


def test_bone_std_is_per_sequence_then_averaged():
    base = _legal_pose(1)
    thigh = skeleton.J["r_knee"], skeleton.J["r_hip"]
    direction = base[thigh[0]] - base[thigh[1]]
    direction /= np.linalg.norm(direction)
    frames = []
    for stretch in (0.0, 20.0, 0.0, 0.0):  # sequence 0: right thigh +0 / +20 mm; sequence 1: 0
        pose = base.copy()
        pose[[0, 1]] += stretch * direction  # knee and ankle move together: only the thigh grows
        frames.append(pose)
    pred = np.stack(frames)
    row = main_job.pose_row("x", pred, np.stack([base] * 4), np.array([0, 0, 1, 1]))
    # Thigh std: right 10 mm (population std of 0, 20) in sequence 0, 0 in sequence 1; the limb
    # figure averages left and right (5 mm), then the two sequences (2.5 mm).
    np.testing.assert_allclose(row.bone_std, [0.0, 0.0, 2.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(row.lr_diff, [0.0, 0.0, 5.0, 0.0], atol=1e-6)


def test_illegal_knee_is_counted():
    gt = _legal_pose(2)[None]
    pred = gt.copy()
    knee, ankle = skeleton.J["l_knee"], skeleton.J["l_ankle"]
    hip = skeleton.J["l_hip"]
    # Reflect the ankle through the hip-knee line's plane with the body's sideways axis: the
    # knee bends the other way, Eq. 1's sign flips for l_knee only (1 of 4 limbs: 25 %).
    thigh = gt[0, knee] - gt[0, hip]
    thigh /= np.linalg.norm(thigh)
    shin = gt[0, ankle] - gt[0, knee]
    along = (shin @ thigh) * thigh
    pred[0, ankle] = gt[0, knee] + 2 * along - shin
    row = main_job.pose_row("x", pred, gt, np.array([0]))
    assert row.illegal_pct == pytest.approx(25.0)


def test_table_lists_rows_and_rejects_bad_shapes():
    gt = np.stack([_legal_pose(0)] * 2)
    rows = [main_job.pose_row(n, gt, gt, np.array([0, 0])) for n in ("untrained", "after TP-Net")]
    text = main_job.format_table(rows)
    assert text.splitlines()[2].startswith("| untrained | 0.0 | 0.0 | 0.0 |")
    assert text.splitlines()[3].startswith("| after TP-Net |")
    with pytest.raises(ValueError, match="must be"):
        main_job.pose_row("bad", gt[:, :15], gt, np.array([0, 0]))


def _row(name, mpjpe, illegal, lr, bone=30.0, pa=None):
    return {
        "name": name,
        "mpjpe": mpjpe,
        "pa_mpjpe": mpjpe - 10 if pa is None else pa,
        "illegal_pct": illegal,
        "lr_diff_mean": lr,
        "bone_std_mean": bone,
    }


def _seed_rows(final, control, filtered, tp):
    return [
        _row("untrained", 2000.0, 40.0, 900.0),
        _row("after structure", final[0] + 1, final[1], final[2]),
        _row("after symmetry", *final),
        _row(main_job.control_row_name("structure"), control[0] + 1, control[1], control[2]),
        _row(main_job.control_row_name("symmetry"), *control),
        _row("SAP-Net + causal moving average (3 frames)", *filtered),
        _row(main_job.TP_NET_ROW, *tp),
    ]


def test_effects_are_the_paired_differences_between_arms():
    rows = _seed_rows(
        (150.0, 6.0, 50.0), (152.0, 8.0, 55.0), (145.0, 5.0, 48.0), (138.0, 3.0, 40.0)
    )
    got = main_job.effects(rows, "symmetry")
    assert got["structure_vs_control"]["mpjpe"] == -2.0
    assert got["structure_vs_control"]["illegal_pct"] == -2.0
    assert got["structure_vs_control"]["lr_diff_mean"] == -5.0
    assert got["tp_net_vs_sap_net"]["mpjpe"] == -12.0
    assert got["tp_net_vs_filter"]["mpjpe"] == -7.0
    assert got["tp_net_vs_filter"]["illegal_pct"] == -2.0
    # An arm that is absent leaves its differences out.
    assert set(main_job.effects(rows[:3], "symmetry")) == set()


def test_seeds_summary_counts_the_seeds_in_which_each_difference_holds(tmp_path):
    import json

    from experiments import main_job_seeds

    runs = [
        {
            "seed": 0,
            "wall_s": 600.0,
            "split": "test",
            "rows": _seed_rows(
                (150.0, 6.0, 50.0), (152.0, 8.0, 55.0), (145.0, 5.0, 48.0), (138.0, 3.0, 40.0)
            ),
        },
        {
            "seed": 1,
            "wall_s": 610.0,
            "split": "test",
            "rows": _seed_rows(
                (130.0, 9.0, 60.0), (128.0, 10.0, 58.0), (126.0, 7.0, 55.0), (127.0, 4.0, 50.0)
            ),
        },
    ]
    stored = {
        "command": "python -m experiments.main_job_seeds --seeds 2",
        "config": "configs/quickstart.yaml",
        "overrides": [],
        "cpu": "a CPU",
        "cpu_flags": "avx2",
        "cores": 2,
        "runs": runs,
    }
    s = main_job_seeds.summarise(stored)
    assert s["per_row"]["after symmetry"]["mpjpe"] == [150.0, 130.0]
    assert s["paired"]["structure_vs_control"]["mpjpe"] == [-2.0, 2.0]
    assert s["paired"]["tp_net_vs_filter"]["mpjpe"] == [-7.0, 1.0]
    # Means: SAP-Net 140 mm (goal <= 140 holds), 7.5 % illegal (<= 8 holds). Structure minus
    # control: % illegal -2 and -1 (holds in both seeds), L/R -5 and +2 (fails in seed 1).
    assert s["goals"]["SAP-Net (after symmetry) <= 140 mm, mean"] is True
    assert s["goals"]["SAP-Net <= 8 % illegal, mean"] is True
    assert s["goals"]["structure arm below control in % illegal, every seed"] is True
    assert s["goals"]["structure arm below control in L/R diff, every seed"] is False
    assert s["goals"]["structure arm no worse than control in MPJPE, mean"] is True
    assert s["goals"]["TP-Net >= 10 mm below SAP-Net, mean"] is False  # -12 and -3: mean -7.5
    assert s["goals"]["TP-Net below the filter arm in MPJPE, mean"] is True  # mean -3
    text = main_job_seeds.to_markdown(stored)
    assert "| after symmetry | 140.0 ± 14.1 |" in text
    assert (
        "| structure losses: paper stages minus control arm (equal training) | 0.0 ± 2.8 (1/2) |"
        in text
    )
    # --render rewrites the Markdown from the JSON alone, byte for byte.
    path = tmp_path / "results_main_job_seeds.json"
    md = main_job_seeds.write(stored, path)
    first = md.read_text()
    md.write_text("edited by hand")
    assert main_job_seeds.main(["--render", str(path)]) == 0
    assert md.read_text() == first and json.loads(path.read_text()) == stored
