"""Experiments (claims 1 and 2) and the paper's analyses (Figs. 4 and 5): numeric sanity."""

import dataclasses

import numpy as np
import pytest

from experiments import common, temporal
from keras_pose3d import skeleton
from tests.conftest import require_realdata


def _smooth_streams(count, length, seed):
    """Smooth synthetic root-relative MPII-16 trajectories (mm) at 25 fps around one body."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).normal(scale=250.0, size=(1, 16, 3))  # shared "skeleton"
    t = np.arange(length)[:, None, None] / common.FPS
    out = []
    for i in range(count):
        amp = rng.uniform(20.0, 80.0, size=(1, 16, 3))
        freq = rng.uniform(0.2, 1.0, size=(1, 16, 3))
        phase = rng.uniform(0, 2 * np.pi, size=(1, 16, 3))
        gt = base + amp * np.sin(2 * np.pi * freq * t + phase)
        gt = gt - gt[:, skeleton.ROOT : skeleton.ROOT + 1]
        out.append(temporal.Stream(f"seq{i}", "Walking", gt))
    return out


# ----------------------------------------------------------------------------------------------
# Claim 2 building blocks.
# ----------------------------------------------------------------------------------------------
def test_noise_model_hits_its_target_and_is_depth_heavy():
    streams = _smooth_streams(3, 500, seed=0)
    noise = temporal.NoiseModel(kind="independent", target_mpjpe=55.5)
    rng = np.random.default_rng(0)
    sigma = noise.calibrate([noise.unit_draw(s.gt, rng) for s in streams])
    noisy = temporal.noisy_copy(streams, noise, sigma, rng)  # a fresh draw
    gt = np.concatenate([s.gt for s in streams])
    err = noisy - gt
    achieved = np.linalg.norm(err, axis=-1).mean()
    assert achieved == pytest.approx(55.5, rel=0.10)
    assert np.all(err[:, skeleton.ROOT] == 0.0)
    ratio = np.abs(err[..., 2]).mean() / np.abs(err[..., 0]).mean()
    assert 2.0 < ratio < 3.0  # depth_ratio 2.5, outliers isotropic
    # The AR(1) part makes consecutive errors correlated: corr ~ 0.7 * 0.95 + 0 white.
    e = err[:, 1, 0]
    lag1 = np.corrcoef(e[1:], e[:-1])[0, 1]
    assert 0.5 < lag1 < 0.8
    # Independent joints: a wrist's error does not follow its elbow's.
    wrist, elbow = skeleton.J["r_wrist"], skeleton.J["r_elbow"]
    assert abs(np.corrcoef(err[:, wrist, 0], err[:, elbow, 0])[0, 1]) < 0.15
    with pytest.raises(ValueError, match="kind"):
        temporal.NoiseModel(kind="gaussian")


def test_limb_error_propagates_bone_rotations_down_the_chain():
    gt = _smooth_streams(1, 50, seed=5)[0].gt
    rng = np.random.default_rng(1)
    omega = rng.normal(size=gt.shape)
    err = temporal.limb_error(omega, gt)
    # Hand reference: the right wrist moves by every bone rotation on its chain
    # pelvis -> thorax -> r_shoulder -> r_elbow -> r_wrist, scaled by the same constant.
    chain = [skeleton.J[n] for n in ("thorax", "r_shoulder", "r_elbow", "r_wrist")]
    parents = [skeleton.ROOT] + chain[:-1]
    expected = sum(np.cross(omega[:, j], gt[:, j] - gt[:, p]) for j, p in zip(chain, parents))
    elbow_expected = expected - np.cross(omega[:, chain[-1]], gt[:, chain[-1]] - gt[:, chain[-2]])
    scale = expected[0, 0] / err[0, chain[-1], 0]
    np.testing.assert_allclose(err[:, chain[-1]] * scale, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(err[:, chain[-2]] * scale, elbow_expected, rtol=1e-9, atol=1e-9)
    assert np.all(err[:, skeleton.ROOT] == 0.0)
    # The constant: sqrt of the mean over non-root joints of sum_chain 2/3 |bone|^2.
    var = np.zeros(skeleton.NUM_JOINTS)
    for j in temporal.CHAIN_ORDER:
        p = skeleton.MPII_PARENTS[j]
        var[j] = var[p] + 2.0 / 3.0 * np.mean(np.sum((gt[:, j] - gt[:, p]) ** 2, axis=-1))
    assert scale == pytest.approx(np.sqrt(np.mean(np.delete(var, skeleton.ROOT))), rel=1e-9)
    # Small rotations keep bone lengths to first order: length changes << joint displacements.
    small = temporal.limb_error(1e-3 * omega, gt) * scale
    thigh = (skeleton.J["r_knee"], skeleton.J["r_hip"])
    length = np.linalg.norm(gt[:, thigh[0]] - gt[:, thigh[1]], axis=-1)
    moved = gt + small
    dlen = np.abs(np.linalg.norm(moved[:, thigh[0]] - moved[:, thigh[1]], axis=-1) - length)
    assert dlen.max() < 0.01 * np.linalg.norm(small[:, thigh[0]], axis=-1).mean()


def test_limb_noise_is_correlated_along_limbs_and_hits_its_target():
    streams = _smooth_streams(3, 500, seed=0)
    noise = temporal.NoiseModel(kind="limb", target_mpjpe=55.5)
    rng = np.random.default_rng(0)
    sigma = noise.calibrate([noise.unit_draw(s.gt, rng) for s in streams])
    noisy = temporal.noisy_copy(streams, noise, sigma, rng)
    err = noisy - np.concatenate([s.gt for s in streams])
    assert np.linalg.norm(err, axis=-1).mean() == pytest.approx(55.5, rel=0.10)
    assert np.all(err[:, skeleton.ROOT] == 0.0)
    wrist, elbow = skeleton.J["r_wrist"], skeleton.J["r_elbow"]
    assert np.corrcoef(err[:, wrist, 0], err[:, elbow, 0])[0, 1] > 0.25  # 0.34 here
    # Extremities err more than the joints next to the root.
    assert (
        np.linalg.norm(err[:, wrist], axis=-1).mean()
        > 1.3 * np.linalg.norm(err[:, skeleton.J["r_hip"]], axis=-1).mean()
    )


def test_lag_and_acceleration_error_hand_cases():
    gt = _smooth_streams(2, 300, seed=1)
    gts = [s.gt for s in gt]
    delayed = [np.concatenate([g[:2], g[:-2]]) for g in gts]  # output trails by 2 frames
    assert temporal.lag_frames(delayed, gts) == pytest.approx(2.0, abs=0.1)
    assert temporal.lag_frames(gts, gts) == pytest.approx(0.0, abs=1e-6)
    g = gts[0]
    assert temporal.acceleration_error(g + 5.0, g) == pytest.approx(0.0, abs=1e-9)
    t = np.arange(len(g), dtype=float)[:, None, None]
    quad = g + np.concatenate([np.zeros((len(g), 16, 2)), 0.5 * t**2 * np.ones((1, 16, 1))], -1)
    assert temporal.acceleration_error(quad, g) == pytest.approx(1.0)  # d2(t^2/2) = 1 in z


def test_tp_net_beats_raw_on_smooth_synthetic_motion():
    train = _smooth_streams(8, 800, seed=2)
    test = _smooth_streams(2, 400, seed=3)
    # White noise only: any working temporal model must beat the raw poses.
    noise = temporal.NoiseModel(
        kind="independent", target_mpjpe=50.0, corr_share=0.0, outlier_prob=0.0
    )
    cfg = dataclasses.replace(
        temporal.QUICK,
        noise=noise,
        runs=(temporal.TPRun("independent", 4, "online"),),
        hidden=256,
        max_epochs=12,
        epoch_windows=5600,
        patience=12,
        batch=128,
        learning_rate=3e-3,
        tune_frames=800,
    )
    res = temporal.run(cfg, train, test, log=lambda *_: None)
    assert res["n_fit_frames"] == 7 * 800 and res["n_val_frames"] == 800  # every 5th held out
    rows = res["noises"]["independent"]["rows"]
    raw = rows["raw per-frame poses"]["mpjpe_frame_mean"]
    assert raw == pytest.approx(50.0, rel=0.10)
    assert rows["TP-Net online N=4"]["mpjpe_frame_mean"] < 0.9 * raw
    ma = next(k for k in rows if k.startswith("moving average"))
    assert rows[ma]["mpjpe_frame_mean"] < raw
    assert rows[ma]["lag_ms"] > 0  # a causal average trails the motion
    info = res["noises"]["independent"]["curves"]["TP-Net online N=4"]
    assert len(info["val_curve"]) == 12
    assert info["best_epoch"] == int(np.argmin(info["val_curve"])) + 1
    assert info["val_curve"][-1] < 0.9 * raw  # validation on held-out noisy sequences
    stored = common.make_record("experiments.temporal", ["--x"], res, 1.0, 2.0, "test")
    md = temporal.to_markdown(stored)
    assert "| TP-Net online N=4 | " in md and "`python -m experiments.temporal --x`" in md


def test_split_validation_holds_out_every_nth_stream():
    streams = _smooth_streams(7, 10, seed=0)
    fit, val = temporal.split_validation(streams, 3)
    assert [s.name for s in val] == ["seq2", "seq5"]
    assert [s.name for s in fit] == ["seq0", "seq1", "seq3", "seq4", "seq6"]
    with pytest.raises(ValueError, match="every=9"):
        temporal.split_validation(streams, 9)


def test_window_latency_counts_the_future_frames_tp_net_reads():
    from keras_pose3d.data.windows import make_windows

    assert [temporal.window_latency(n, "semi_online") for n in (4, 10, 20)] == [1, 4, 9]
    assert [temporal.window_latency(n, "online") for n in (4, 10, 20)] == [0, 0, 0]
    # Independent count: the latest frame each window gathers, minus its target frame, on a
    # sequence long enough that the middle windows are unpadded.
    frames = np.arange(60, dtype=np.float32)[:, None, None] * np.ones((60, 2, 3), np.float32)
    for mode in ("online", "semi_online"):
        for n in (3, 4, 10):
            ids = make_windows(frames, n, mode)[..., 0, 0]  # (T, N) frame ids
            future = int((ids.max(axis=1) - np.arange(60))[25:35].max())
            assert temporal.window_latency(n, mode) == future, (mode, n)


def test_window_index_never_crosses_sequences():
    # Sequences of 5 and 3 frames, concatenated: rows index the flat array, each padded at its
    # own ends.
    np.testing.assert_array_equal(
        temporal._window_index([5, 3], 3, "online"),
        [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [5, 5, 5], [5, 5, 6], [5, 6, 7]],
    )
    np.testing.assert_array_equal(
        temporal._window_index([2, 2], 4, "semi_online"),
        [[0, 0, 0, 1], [0, 0, 1, 1], [2, 2, 2, 3], [2, 2, 3, 3]],
    )


def test_classic_refiners_return_function_and_latency():
    streams = _smooth_streams(2, 120, seed=4)
    rng = np.random.default_rng(0)
    gts = [s.gt for s in streams]
    noisy = [g + rng.normal(0, 20, g.shape) for g in gts]
    refiners = temporal.classic_refiners(noisy, gts)
    assert len(refiners) == 3
    for name, value in refiners.items():
        fn, latency = value  # exactly (function, latency): the documented 2-tuple
        out = fn(noisy[0])
        assert out.shape == noisy[0].shape
        if name.startswith("Savitzky-Golay"):
            window = int(name.split("w=")[1].split(",")[0])
            assert latency == window // 2  # a centred window needs its right half
        else:
            assert latency == 0  # causal filters


@pytest.mark.slow
def test_temporal_quick_run(tmp_path):
    require_realdata("h36m_motion", "S1.npz")
    require_realdata("h36m", "metadata.xml")
    import keras

    out, saved = tmp_path / "t.md", tmp_path / "tp.keras"
    res = temporal.main(["--quick", "--out", str(out), "--save-tp-net", str(saved)])
    assert set(res["noises"]) == {"limb", "independent"}
    for noise_res in res["noises"].values():
        rows = noise_res["rows"]
        raw = rows["raw per-frame poses"]["mpjpe_frame_mean"]
        assert raw == pytest.approx(55.5, rel=0.10)  # calibrated on the fit set
        sg = next(k for k in rows if k.startswith("Savitzky"))
        assert rows[sg]["mpjpe_frame_mean"] < raw
        assert rows[sg]["latency"] == int(sg.split("w=")[1].split(",")[0]) // 2
    semi = res["noises"]["independent"]["rows"]["TP-Net semi_online N=4"]
    assert semi["latency"] == 1  # from window_latency, not written by hand
    # Limb noise keeps bone lengths better than independent noise (same MPJPE).
    limb_raw = res["noises"]["limb"]["rows"]["raw per-frame poses"]
    ind_raw = res["noises"]["independent"]["rows"]["raw per-frame poses"]
    assert np.mean(limb_raw["bone_std_mm"]) < np.mean(ind_raw["bone_std_mm"])
    model = keras.saving.load_model(saved)  # the direct online TP-Net (Fig. 5's input)
    assert model.window == 4 and model.mode == "online"
    text = out.read_text()
    assert (
        text.splitlines()[2] == f"Command: `python -m experiments.temporal --quick --out {out} "
        f"--save-tp-net {saved}`"
    )


# ----------------------------------------------------------------------------------------------
# Claim 1 building blocks (real cameras and motion).
# ----------------------------------------------------------------------------------------------
def test_oracle_depth_reconstructs_real_motion_exactly():
    require_realdata("h36m_motion", "S9.npz")
    require_realdata("h36m", "metadata.xml")
    from experiments import weak_supervision as ws

    seqs = common.load_motion(("S9",), every=50, max_sequences=2)
    cams = common.load_cameras()
    data = ws.build_samples(seqs, cams, np.random.default_rng(0))
    assert len(np.unique(data["stream"])) == 2 * 4  # 4 real cameras per sequence
    assert not data["outside"].any()
    pred = common.depth_to_camera_mm(
        data["z"], data["scale"], data["root_depth"], data["fx"], data["rays"]
    )
    np.testing.assert_allclose(pred, data["gt_mm"], atol=0.05)
    # Depth distance from the cameras as documented: 4.3-6.6 m.
    assert 4000 < data["root_depth"].min() and data["root_depth"].max() < 7000
    # Bone lengths survive the placement (the real skeleton's thigh is 442.9 mm).
    thigh = skeleton.bone_lengths(data["gt_mm"], [(1, 2)])
    np.testing.assert_allclose(thigh, 442.9, atol=0.1)
    lab = ws.split_labelled(data, 0.25, np.random.default_rng(0))
    assert len(np.unique(data["stream"][lab])) == 2


def test_load_motion_drops_duplicated_s5_sequences():
    require_realdata("h36m_motion", "S5.npz")
    names = {s.name for s in common.load_motion(("S5",), every=100)}
    assert not names & set(common.DUPLICATED["S5"])
    assert "Walking_1" in names


@pytest.mark.slow
def test_weak_supervision_quick_run(tmp_path):
    require_realdata("h36m_motion", "S1.npz")
    from experiments import weak_supervision as ws

    out = tmp_path / "ws.md"
    res = ws.main(["--quick", "--out", str(out)])
    assert set(res["variants"]) == {name for name, _ in ws.VARIANTS}
    for runs in res["variants"].values():
        assert 20.0 < runs[0]["mpjpe_action_mean"] < 300.0
    assert res["oracle"]["mpjpe_frame_mean"] < 0.1
    text = out.read_text()
    assert "python -m experiments.weak_supervision --quick" in text


# ----------------------------------------------------------------------------------------------
# Figs. 4 and 5.
# ----------------------------------------------------------------------------------------------
def test_loss_surfaces_synthetic_pose(tmp_path):
    from keras_pose3d.evaluation import loss_surface as ls

    pose = ls.synthetic_pose()
    s = ls.loss_surfaces(pose, n=21)
    assert np.ptp(s["2d"], axis=0).max() == pytest.approx(0.0, abs=1e-7)  # flat in depth
    assert np.all(s["2d+sym"] >= s["2d"] - 1e-6)
    assert np.all(s["2d+sym+angle"] >= s["2d+sym"] - 1e-6)
    iz, ix = np.unravel_index(np.argmin(s["3d"]), s["3d"].shape)
    assert (iz, ix) == (10, 10)  # the 3D loss has its minimum at the truth (grid centre)
    assert s["2d+sym+angle"][10, 10] == pytest.approx(0.0, abs=1e-6)
    out = tmp_path / "fig4.png"
    ls.plot(s, pose, str(out), "test")
    assert out.stat().st_size > 10_000


def test_loss_surface_real_pose_angle_term_separates_the_mirror():
    require_realdata("h36m_motion", "S9.npz")
    from keras_pose3d.evaluation import loss_surface as ls

    pose = ls.real_pose()
    info = ls.summary(ls.loss_surfaces(pose, n=41), pose)
    assert info["valley_illegal"]
    assert info["2d+sym+angle"]["valley"] > 10 * info["2d+sym"]["valley"]


def test_loss_surface_run_falls_back_to_synthetic_and_summarises(tmp_path, capsys):
    from keras_pose3d.evaluation import loss_surface as ls

    out = tmp_path / "figs" / "fig4.png"  # the parent folder does not exist yet
    res = ls.run(out, pose="realdata", grid=11, lambda_s=0.5, motion_dir=tmp_path / "absent")
    printed = capsys.readouterr().out
    assert f"real motion absent under {tmp_path / 'absent'}" in printed
    assert res["source"] == "synthetic pose"
    assert f"wrote {out} (synthetic pose)" in printed
    assert out.stat().st_size > 10_000
    pose = ls.synthetic_pose()
    for key, value in ls.loss_surfaces(pose, n=11, lambda_s=0.5).items():
        np.testing.assert_array_equal(res["surfaces"][key], value)
    info = res["summary"]
    # Only the left elbow moves: at the valley the 3D loss is its squared distance to the truth,
    # the 2D loss its squared x offset (y stays true); both vanish at the truth (grid centre).
    d = np.asarray(info["valley_elbow"]) - pose[ls.L_ELBOW]
    assert d[1] == 0.0 and np.hypot(d[0], d[2]) >= 0.1
    assert info["3d"]["valley"] == pytest.approx(np.sum(d**2), rel=1e-5)
    assert info["2d"]["valley"] == pytest.approx(d[0] ** 2, rel=1e-5)
    assert info["3d"]["truth"] == pytest.approx(0.0, abs=1e-6)
    assert info["2d"]["truth"] == pytest.approx(0.0, abs=1e-6)
    want = info["2d"]["valley"] + 0.5 * info["sym"]["valley"]
    assert info["2d+sym"]["valley"] == pytest.approx(want, rel=1e-5)


def test_loss_surface_main(tmp_path, capsys):
    from keras_pose3d.evaluation import loss_surface as ls

    out = tmp_path / "fig4.png"
    assert ls.main(["--pose", "synthetic", "--grid", "5", "--out", str(out)]) == 0
    assert f"wrote {out} (synthetic pose)" in capsys.readouterr().out
    assert out.stat().st_size > 10_000
    bad = tmp_path / "bad.png"
    assert ls.main(["--pose", "synthetic", "--grid", "1", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: grid must be >= 2") and "Received: 1" in err
    assert not bad.exists()
    with pytest.raises(ValueError, match="pose must be one of"):
        ls.run(bad, pose="h36m")


def test_sensitivity_matches_finite_differences():
    import keras

    from keras_pose3d.evaluation.sensitivity import sample_windows, sensitivity
    from keras_pose3d.models.tp_net import TPNet

    keras.utils.set_random_seed(0)
    model = TPNet(window=4, mode="online", hidden=16)
    windows = sample_windows(4, "online", count=2)
    sens = sensitivity(model, windows, batch=2)  # (16, 4, 16)
    assert sens.shape == (16, 4, 16)
    # One block by central differences (the ReLU net is piecewise linear, so a 1 mm step is
    # exact away from kinks): output joint 10 w.r.t. input frame 3 joint 11.
    eps = 1.0
    blocks = []
    for w in windows:
        jac = np.zeros((3, 3))
        for c in range(3):
            plus, minus = w.copy(), w.copy()
            plus[3, 11, c] += eps
            minus[3, 11, c] -= eps
            diff = model(plus[None]).numpy()[0, 10] - model(minus[None]).numpy()[0, 10]
            jac[:, c] = diff / (2 * eps)
        blocks.append(np.linalg.norm(jac))
    assert sens[10, 3, 11] == pytest.approx(np.mean(blocks), rel=0.02)
