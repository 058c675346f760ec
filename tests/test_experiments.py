"""Experiments (claims 1 and 2) and the paper's analyses (Figs. 4 and 5): numeric sanity."""

import dataclasses
import importlib
import json
import pathlib

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
# Results files: every experiments/results_NAME.md is experiments.NAME.to_markdown of the JSON.
# ----------------------------------------------------------------------------------------------
EXPERIMENTS_DIR = pathlib.Path(common.__file__).resolve().parent
RESULTS_MD = sorted(EXPERIMENTS_DIR.glob("results_*.md"))


def test_there_are_results_files_to_check():
    names = {p.name for p in RESULTS_MD}
    assert {"results_temporal.md", "results_weak_supervision.md"} <= names


@pytest.mark.parametrize("md_path", RESULTS_MD, ids=[p.stem for p in RESULTS_MD])
def test_results_markdown_is_what_its_generator_writes_from_its_json(md_path):
    name = md_path.stem[len("results_") :]
    json_path = md_path.with_suffix(".json")
    assert json_path.is_file(), f"{md_path.name} has no stored {json_path.name} beside it"
    stored = json.loads(json_path.read_text(encoding="utf-8"))
    generator = importlib.import_module(f"experiments.{name}")
    assert stored["command"].startswith(f"python -m experiments.{name}")
    assert generator.to_markdown(stored).encode() == md_path.read_bytes()


def test_results_json_round_trip_and_render(tmp_path, capsys):
    results = {
        "x": np.float32(1.5),
        "n": np.int64(3),
        "curve": np.array([0.1, 2.0 / 3.0]),
        "by_seed": (4, 5),
    }
    stored = common.make_record("experiments.demo", ["--out", "a b.md"], results, 12.4, 20.6, "p")
    assert stored["command"] == "python -m experiments.demo --out 'a b.md'"
    assert stored["generator"] == "experiments.demo"
    assert stored["machine"]["cpu_count"] >= 1

    def to_markdown(st):  # reads only what JSON gives back: lists, str keys, Python floats
        r = st["results"]
        return f"{r['x']!r} {r['n']!r} {r['curve'][1]!r} {r['by_seed']!r}\n" + common.run_footer(st)

    out = tmp_path / "results_demo.md"
    md = common.write_results(stored, to_markdown, out)
    assert md.startswith("1.5 3 0.6666666666666666 [4, 5]\nWall time: 12 s (process CPU time 21 s)")
    assert md.endswith("\n\nProvenance: p\n")
    assert out.read_text() == md
    loaded = json.loads((tmp_path / "results_demo.json").read_text())
    assert loaded["results"]["curve"] == [0.1, 2.0 / 3.0]  # floats stored exactly
    out.write_text("edited by hand")
    assert common.render(tmp_path / "results_demo.json", to_markdown) == md
    assert out.read_text() == md
    with pytest.raises(ValueError, match=r"must end in \.md"):
        common.json_path_for(tmp_path / "results_demo.txt")
    capsys.readouterr()


def _ws_run(mpjpe, illegal):
    return {
        "mpjpe_action_mean": mpjpe,
        "mpjpe_frame_mean": mpjpe + 1.0,
        "pa_mpjpe_action_mean": mpjpe - 10.0,
        "symmetry_mm": [1.0, 2.0, 3.0, 4.0],
        "bone_std_mm": [2.0, 2.0, 2.0, 2.0],
        "illegal_pct": illegal,
    }


def test_weak_supervision_paired_differences_by_hand():
    from experiments import weak_supervision as ws

    names = [name for name, _ in ws.VARIANTS]
    # Two seeds; the last variant is 1.0 mm lower in seed 0 and 2.0 mm higher in seed 1.
    per_variant = {
        names[0]: [_ws_run(70.0, 5.0), _ws_run(60.0, 4.0)],
        names[1]: [_ws_run(70.0, 5.0), _ws_run(60.0, 4.0)],
        names[2]: [_ws_run(69.5, 2.0), _ws_run(59.0, 1.0)],
        names[3]: [_ws_run(69.0, 2.5), _ws_run(62.0, 1.5)],
    }
    results = {
        "config": dataclasses.asdict(dataclasses.replace(ws.Config(), seeds=(0, 1))),
        "n_train": 100,
        "n_test": 50,
        "n_labelled": [5, 6],
        "oracle": _ws_run(0.0, 3.0),
        "variants": per_variant,
    }
    paired = ws.paired_differences(results)
    assert list(paired) == names[1:]
    assert paired[names[3]]["mpjpe_action_mean"] == [-1.0, 2.0]
    assert paired[names[3]]["illegal_pct"] == [-2.5, -2.5]
    assert paired[names[1]]["symmetry_mean"] == [0.0, 0.0]
    stored = common.make_record("experiments.weak_supervision", [], results, 1.0, 1.0, "test")
    md = ws.to_markdown(json.loads(common.dumps(stored)))
    # mean 0.5, sample std sqrt(((-1.5)^2 + 1.5^2) / 1) = 2.1; lower in 1 of 2 seeds.
    assert f"| {names[3]} | MPJPE action mean (mm) | -1.0, +2.0 | +0.5 ± 2.1 | 1/2 |" in md
    assert f"| {names[3]} | % illegal elbows+knees | -2.5, -2.5 | -2.5 ± 0.0 | 2/2 |" in md
    # The main table's paired column: the same differences.
    assert f"| {names[3]} | 65.5 ± 4.9 | +0.5 ± 2.1 | 66.5 ± 4.9 |" in md
    assert "labelled 5, 6 for seeds 0, 1" in md


# ----------------------------------------------------------------------------------------------
# Frame rate.
# ----------------------------------------------------------------------------------------------
def test_resample_motion_to_10_fps_keeps_recorded_frames_and_interpolates():
    poses = np.random.default_rng(0).normal(size=(11, 17, 3))
    seq = common.Sequence("S9", "Walking_1", poses)
    assert temporal.resample_motion([seq], common.FPS)[0] is seq
    (out,) = temporal.resample_motion([seq], 10.0)
    assert (out.subject, out.name) == ("S9", "Walking_1")
    assert out.poses.shape == (5, 17, 3)  # source frames 0, 2.5, 5, 7.5, 10
    np.testing.assert_array_equal(out.poses[0::2], poses[[0, 5, 10]])
    np.testing.assert_allclose(out.poses[1], 0.5 * (poses[2] + poses[3]), rtol=1e-12)
    np.testing.assert_allclose(out.poses[3], 0.5 * (poses[7] + poses[8]), rtol=1e-12)
    with pytest.raises(ValueError, match="cannot give 50 fps"):
        temporal.resample_motion([seq], 50.0)


def test_noise_at_rate_keeps_the_correlation_time():
    noise = temporal.NoiseModel()
    assert temporal.noise_at_rate(noise, 25.0) == noise
    ten = temporal.noise_at_rate(noise, 10.0)
    assert ten.rho == pytest.approx(0.95**2.5, rel=1e-12)  # 0.8796 per 100 ms frame
    # Correlation after 200 ms: 5 frames at 25 fps, 2 at 10 fps.
    assert ten.rho**2 == pytest.approx(noise.rho**5, rel=1e-12)
    assert dataclasses.replace(ten, rho=noise.rho) == noise  # nothing else changes


def test_evaluate_scores_the_frames_at_multiples_of_200_ms():
    (stream,) = _smooth_streams(1, 40, seed=7)
    pred = stream.gt.copy()
    pred[::4, 3, 0] += 16.0  # 16 mm on one of 16 joints every 4th frame: 1 mm on those frames
    at25 = temporal.evaluate([pred], [stream], 25.0)
    # 200 ms = every 5th frame at 25 fps: frames 0, 5, ..., 35; of those, 0, 20 are hit.
    assert at25["mpjpe_200ms_frames"] == pytest.approx(2 / 8, rel=1e-9)
    assert at25["mpjpe_frame_mean"] == pytest.approx(10 / 40, rel=1e-9)
    at10 = temporal.evaluate([pred], [stream], 10.0)
    # every 2nd frame at 10 fps: 20 frames, of which 0, 4, ..., 36 (10) are hit.
    assert at10["mpjpe_200ms_frames"] == pytest.approx(10 / 20, rel=1e-9)
    assert temporal.evaluate([pred], [stream], 12.0)["mpjpe_200ms_frames"] is None
    delayed = [np.concatenate([stream.gt[:2], stream.gt[:-2]])]
    assert temporal.evaluate(delayed, [stream], 10.0)["lag_ms"] == pytest.approx(200.0, abs=10)
    assert at25["bone_std_mean_mm"] == pytest.approx(np.mean(at25["bone_std_mm"]), rel=1e-12)


def test_frame_rate_summary_and_markdown_from_stored_results():
    from experiments import frame_rate

    def rate(fps, raw, tp20, tp4, euro):
        row = {"pa_mpjpe": 1.0, "bone_std_mean_mm": 2.0, "lag_ms": 3.0, "latency": 0}

        def r(v):
            return dict(row, mpjpe_frame_mean=v + 0.5, mpjpe_200ms_frames=v)

        cfg = dataclasses.asdict(
            dataclasses.replace(
                frame_rate.DEFAULT,
                frame_rate=fps,
                noise=temporal.noise_at_rate(frame_rate.DEFAULT.noise, fps),
            )
        )
        curve = {"val_curve": [50.0, 49.0], "best_epoch": 2, "train_s": 10.0, "train_cpu_s": 15.0}
        return {
            "config": cfg,
            "n_fit_frames": int(4 * fps),
            "n_val_frames": int(fps),
            "n_test_frames": int(2 * fps),
            "noises": {
                "limb": {
                    "rows": {
                        "raw per-frame poses": r(raw),
                        f"1-Euro (fc={euro} Hz, beta=0.0)": r(raw - 5.0),
                        "TP-Net online N=20": r(tp20),
                        "TP-Net online N=4": r(tp4),
                    },
                    "curves": {"TP-Net online N=20": curve},
                }
            },
            "wall_s": 1.0,
            "cpu_s": 2.0,
        }

    results = {
        "seeds": [0, 1],
        "frame_rates": [25.0, 10.0],
        "runs": {
            # Seed 0: 10 fps gains 4 mm more at N = 20; seed 1: 1 mm less.
            "0": {"25": rate(25.0, 55.0, 50.0, 48.0, 1.0), "10": rate(10.0, 56.0, 47.0, 49.0, 2.0)},
            "1": {"25": rate(25.0, 54.0, 48.0, 47.0, 1.0), "10": rate(10.0, 55.0, 50.0, 48.0, 1.0)},
        },
    }
    s = frame_rate.summary(results)
    assert list(s) == [20, 4]
    assert s[20]["25"] == {"raw": [55.0, 54.0], "tp_net": [50.0, 48.0], "gain": [-5.0, -6.0]}
    assert s[20]["10"]["gain"] == [-9.0, -5.0]
    stored = common.make_record("experiments.frame_rate", [], results, 3.0, 4.0, "test")
    md = frame_rate.to_markdown(json.loads(common.dumps(stored)))
    # 10 - 25 fps: TP-Net -3, +2 (mean -0.5, std 3.5); gain -4, +1 (mean -1.5, std 3.5).
    assert (
        "| 20 | 54.5 -> 49.0 (-5.5) | 55.5 -> 48.5 (-7.0) | -0.5 ± 3.5 (-3.0, +2.0) "
        "| -1.5 ± 3.5 (-4.0, +1.0) | 1/2 |"
    ) in md
    assert "| 10 | TP-Net online N=20 | 2000 ms | 49.0 ± 2.1 | 48.5 ± 2.1 |" in md
    assert "| 25 | TP-Net online N=20 | 800 ms | 49.5 ± 1.4 | 49.0 ± 1.4 |" in md
    # Filters tuned differently per seed are one row (by method), their parameters listed.
    assert "| 10 | 1-Euro |  | 51.0 ± 0.7 | 50.5 ± 0.7 |" in md
    assert "seed 0 10 fps: 1-Euro (fc=2.0 Hz, beta=0.0)" in md
    assert "correlation time of 0.78 s" in md


@pytest.mark.slow
def test_frame_rate_quick_run_writes_a_json_its_markdown_renders_from(tmp_path):
    require_realdata("h36m_motion", "S1.npz")
    require_realdata("h36m", "metadata.xml")
    from experiments import frame_rate

    out = tmp_path / "results_frame_rate.md"
    res = frame_rate.main(["--quick", "--out", str(out)])
    at25, at10 = res["runs"]["0"]["25"], res["runs"]["0"]["10"]
    # The same sequences: 10 fps keeps floor((T - 1) / 2.5) + 1 of every T frames.
    assert at10["n_test_frames"] == pytest.approx(0.4 * at25["n_test_frames"], rel=0.01)
    assert at10["config"]["noise"]["rho"] == pytest.approx(0.95**2.5)
    for r in (at25, at10):
        raw = r["noises"]["limb"]["rows"]["raw per-frame poses"]
        assert raw["mpjpe_frame_mean"] == pytest.approx(55.5, rel=0.10)
    stored = json.loads((tmp_path / "results_frame_rate.json").read_text())
    assert stored["command"] == f"python -m experiments.frame_rate --quick --out {out}"
    assert stored["results"]["runs"]["0"]["10"]["n_fit_frames"] == at10["n_fit_frames"]
    assert frame_rate.to_markdown(stored) == out.read_text()


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


def test_tp_net_width_paired_differences_by_hand():
    """experiments.tp_net_width: each narrower width minus the widest, per seed, by hand."""
    from experiments import tp_net_width as tw

    def rows(**mpjpe):
        return {
            "rows": {tw.row_name(int(w[1:])): {"mpjpe_frame_mean": v} for w, v in mpjpe.items()}
        }

    results = {
        "seeds": [0, 1],
        "widths": [4096, 1024, 2048],
        "runs": {
            "0": rows(w4096=48.0, w2048=48.5, w1024=47.0),
            "1": rows(w4096=50.0, w2048=49.0, w1024=51.5),
        },
    }
    diffs = tw.paired(results)
    assert list(diffs) == [1024, 2048]
    np.testing.assert_allclose(diffs[1024], [-1.0, 1.5])
    np.testing.assert_allclose(diffs[2048], [0.5, -1.0])
