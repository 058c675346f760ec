"""The trainer: distributed mixed-precision steps, stage switches, resume, the NaN guard."""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.config import from_dict
from keras_pose3d.training import objective
from keras_pose3d.training import trainer as kp_trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from pipelines import synthetic_to_tfrecord

    out = tmp_path_factory.mktemp("synthetic")
    # 1 3D training subject, 1 2D-only, 1 validation: enough for mixed batches.
    synthetic_to_tfrecord.ensure_synthetic_dataset(
        out,
        num_shards=1,
        num_subjects=3,
        sequences_per_subject=1,
        frames_per_sequence=12,
        crop_size=48,
        seed=3,
        num_2d_subjects=1,
        num_validation_subjects=1,
    )
    return out


@pytest.fixture(autouse=True)
def _reset_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _config(data_dir, run_dir, stages, precision="float32", batch=4, **train):
    return from_dict(
        {
            "data": {
                "train_files": [f"{data_dir}/train-*.tfrecord"],
                "val_files": [f"{data_dir}/validation-*.tfrecord"],
                "input_size": 32,
                "heatmap_size": 8,
                "shuffle_buffer": 16,
                "val_examples": 8,
            },
            "model": {"num_stacks": 1, "num_features": 16, "hourglass_depth": 1, "depth_blocks": 1},
            "train": {
                "batch_size": batch,
                "run_dir": str(run_dir),
                "log_every": 1,
                "checkpoint_every": 2,
                "eval_every": 1000,
                "stages": stages,
                **train,
            },
            "runtime": {"precision": precision},
            "export": {"enabled": False},
            "eval": {"enabled": False},
        }
    )


ALL = ["heatmap", "depth", "geometric", "illegal_angle", "symmetry"]


def _weights(layer):
    return [v.numpy().copy() for v in layer.weights]


def _changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_two_steps_on_two_replicas_with_mixed_bfloat16(tiny_data, tmp_path, mirrored_strategy):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "all", "steps": 2, "learning_rate": 1e-3, "losses": ALL}],
        precision="mixed_bfloat16",
    )
    strategy = mirrored_strategy
    log = []
    tr = kp_trainer.Trainer(cfg, strategy=strategy, progress=log.append)
    assert tr.num_replicas == 2
    assert tr.model.hourglass.compute_dtype == "bfloat16"
    before = _weights(tr.model)
    result = tr.run_stage(0, cfg.train.stages[0])
    assert result.steps == 2
    assert set(result.final_losses) == set(ALL)
    assert all(np.isfinite(v) for v in result.final_losses.values())
    assert _changed(before, _weights(tr.model))
    out = tr.model(tf.zeros((1, 32, 32, 3)))
    assert all(v.dtype == tf.float32 for v in out.values())
    assert any("step 2/2" in line for line in log)


def test_two_replicas_apply_the_same_update_as_one(tiny_data, tmp_path, mirrored_strategy):
    """Losses are divided by the global batch: 2 replicas must not double the step."""
    stages = [
        {
            "name": "d",
            "steps": 1,
            "learning_rate": 1e-2,
            "optimizer": "sgd",
            "losses": ["depth"],
            "trainable": ["depth"],
        }
    ]
    rng = np.random.default_rng(0)
    h = 2  # two identical halves: each replica's BatchNorm statistics equal the full batch's
    half_inputs = {"image": rng.random((h, 32, 32, 3), np.float32)}
    half_targets = {
        "heatmaps": np.zeros((h, 8, 8, 16), np.float32),
        "visibility": np.ones((h, 16), np.float32),
        "pose_2d": rng.uniform(-0.5, 0.5, (h, 16, 2)).astype(np.float32),
        "depth": rng.uniform(-0.3, 0.3, (h, 16)).astype(np.float32),
        "has_3d": np.ones((h,), np.float32),
    }
    twice = lambda d: {k: np.concatenate([v, v]) for k, v in d.items()}
    inputs, targets = twice(half_inputs), twice(half_targets)
    updates = []
    for strategy in (tf.distribute.OneDeviceStrategy("CPU:0"), mirrored_strategy):
        keras.utils.set_random_seed(1)
        cfg = _config(tiny_data, tmp_path / f"r{len(updates)}", stages)
        tr = kp_trainer.Trainer(cfg, strategy=strategy, progress=lambda *_: None)
        stage = cfg.train.stages[0]
        kp_trainer._set_trainable(tr.model, stage)
        with strategy.scope():
            opt = kp_trainer._make_optimizer(stage, "float32")
            opt.build(tr.model.trainable_variables)
        step = tr._make_step(stage, opt)
        before = [v.numpy().copy() for v in tr.model.depth_regressor.trainable_weights]
        ds = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
        step(iter(strategy.experimental_distribute_dataset(ds)))
        after = [v.numpy() for v in tr.model.depth_regressor.trainable_weights]
        updates.append(np.concatenate([(a - c).ravel() for a, c in zip(after, before)]))
    assert np.linalg.norm(updates[0]) > 0
    # A per-replica mean would apply twice this update.
    np.testing.assert_allclose(updates[1], updates[0], rtol=1e-4, atol=1e-7)


def test_cosine_stage_rate_follows_the_half_cosine():
    """lr_schedule "cosine": lr(k) = lr0 * (1 + cos(pi * k / steps)) / 2, driven by the
    optimizer's step counter (restored with the optimizer, so a resumed stage continues it)."""
    from keras_pose3d.config import StageConfig

    stage = StageConfig("s", 100, 2.0e-3, ("heatmap",), lr_schedule="cosine")
    opt = kp_trainer._make_optimizer(stage, "float32")
    for k, expected in (
        (0, 2.0e-3),
        (25, 2.0e-3 * (1 + math.cos(math.pi / 4)) / 2),
        (50, 1e-3),
        (100, 0.0),
    ):
        opt.iterations.assign(k)
        assert float(opt.learning_rate) == pytest.approx(expected, abs=1e-9)
    constant = kp_trainer._make_optimizer(StageConfig("c", 100, 2.0e-3, ("heatmap",)), "float32")
    constant.iterations.assign(50)
    assert float(constant.learning_rate) == pytest.approx(2.0e-3)


def test_stage_switch_turns_losses_and_parts_on_and_off(tiny_data, tmp_path):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [
            {
                "name": "hg",
                "steps": 2,
                "learning_rate": 1e-3,
                "losses": ["heatmap"],
                "trainable": ["hourglass"],
            },
            {
                "name": "dep",
                "steps": 2,
                "learning_rate": 1e-3,
                "losses": ["depth"],
                "trainable": ["depth"],
                "samples": "3d_only",
            },
        ],
    )
    tr = kp_trainer.Trainer(
        cfg, strategy=tf.distribute.OneDeviceStrategy("CPU:0"), progress=lambda *_: None
    )
    hg0, dep0 = _weights(tr.model.hourglass), _weights(tr.model.depth_regressor)
    r1 = tr.run_stage(0, cfg.train.stages[0])
    hg1, dep1 = _weights(tr.model.hourglass), _weights(tr.model.depth_regressor)
    assert set(r1.final_losses) == {"heatmap"}
    assert _changed(hg0, hg1) and not _changed(dep0, dep1)
    r2 = tr.run_stage(1, cfg.train.stages[1])
    assert set(r2.final_losses) == {"depth"}
    assert not _changed(hg1, _weights(tr.model.hourglass))
    assert _changed(dep1, _weights(tr.model.depth_regressor))


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_data, tmp_path_factory):
    """One run killed after step 4 of stage b's 6 (checkpoints every 2 steps, validation after
    every step), then run again; what the two resume tests below check, recorded as it happened.

    One scenario for both tests: each run of it traces a train step per stage, most of its
    ~28 s on 2 cores (two scenarios took 54 s).
    """
    root = tmp_path_factory.mktemp("resume")
    run_dir = root / "run"
    stages = [
        {"name": "a", "steps": 2, "learning_rate": 1e-3, "losses": ["heatmap"]},
        {"name": "b", "steps": 6, "learning_rate": 1e-3, "losses": ["heatmap", "depth"]},
    ]
    cfg = _config(tiny_data, run_dir, stages, eval_every=1)
    batches = {"first": [], "resumed": []}
    current = {"run": "first"}
    real = objective.per_sample_terms

    def spy(outputs, targets, names, loss_cfg):
        if "depth" in names:  # stage b

            def record(pose_2d):
                batches[current["run"]].append(pose_2d.numpy().copy())
                return 0

            tf.py_function(record, [targets["pose_2d"]], tf.int32)
        return real(outputs, targets, names, loss_cfg)

    def kill_at_b4(line):
        if line.startswith("[b 2/2] step 4/6"):
            raise _Killed(line)

    log, snapshot = [], {}

    def watch(line):
        log.append(line)
        if "resumed from" in line:
            snapshot["weights"] = {v.path: v.numpy().copy() for v in tr.model.weights}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(objective, "per_sample_terms", spy)
        with pytest.raises(_Killed):
            kp_trainer.Trainer(cfg, progress=kill_at_b4).fit()
        completed = json.loads((run_dir / "state.json").read_text())["completed"]
        before = json.loads((run_dir / "metrics.json").read_text())["validation"]
        latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints" / "01_b"))
        # The resume's saves rotate this checkpoint out (max_to_keep=2): the tests read a copy.
        kept = root / "killed_checkpoint"
        kept.mkdir()
        for f in pathlib.Path(latest).parent.glob(pathlib.Path(latest).name + ".*"):
            shutil.copy(f, kept / f.name)
        current["run"] = "resumed"
        tr = kp_trainer.Trainer(cfg, progress=watch)
        metrics = tr.fit()
    return types.SimpleNamespace(
        cfg=cfg,
        run_dir=run_dir,
        completed_after_kill=completed,
        validation_before=before,
        latest=latest,
        latest_copy=str(kept / pathlib.Path(latest).name),
        batches=batches,
        log=log,
        snapshot=snapshot,
        metrics=metrics,
    )


def test_killed_run_resumes_from_its_checkpoint(killed_and_resumed):
    run = killed_and_resumed
    assert run.completed_after_kill == ["a"]
    assert run.latest.endswith("-2")  # checkpoint_every=2: the last save before the kill
    saved = tf.train.load_checkpoint(run.latest_copy)
    log, snapshot = run.log, run.snapshot
    assert any(line.startswith("[a] already completed") for line in log)
    assert any("resumed from" in line and "at step 2/6" in line for line in log)
    steps_after = [line for line in log if line.startswith("[b 2/2] step")]
    assert steps_after[0].startswith("[b 2/2] step 3/6") and steps_after[-1].startswith(
        "[b 2/2] step 6/6"
    )
    # The weights right after the restore are those stored in the checkpoint.
    ckpt_values = {k: saved.get_tensor(k) for k in saved.get_variable_to_shape_map()}
    model_keys = [k for k in ckpt_values if k.startswith("model/") and "OPTIMIZER" not in k]
    restored = list(snapshot["weights"].values())
    matched = 0
    for key in model_keys:
        value = ckpt_values[key]
        if any(r.shape == value.shape and np.array_equal(r, value) for r in restored):
            matched += 1
    assert matched == len(model_keys) > 0
    # Every weight is in the checkpoint (Keras 3 list-held layers once escaped it, and a resume
    # silently re-initialised them): a fresh model restored from it through the object graph
    # (trainable weights are stored under the optimizer's path) equals the resumed one.
    fresh = kp_trainer.build_model(run.cfg)
    tf.train.Checkpoint(model=fresh).read(run.latest_copy).expect_partial()
    assert len(fresh.weights) == len(snapshot["weights"])
    for v in fresh.weights:
        np.testing.assert_array_equal(v.numpy(), snapshot["weights"][v.path], err_msg=v.path)
    assert json.loads((run.run_dir / "state.json").read_text())["completed"] == ["a", "b"]
    assert np.isfinite(run.metrics["final_mpjpe_mm"])
    assert (run.run_dir / "sap_net.keras").exists()


def test_nan_guard_names_the_loss_term_and_keeps_the_last_checkpoint(
    tiny_data, tmp_path, monkeypatch
):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "s", "steps": 6, "learning_rate": 1e-3, "losses": ["heatmap", "symmetry"]}],
    )
    real = objective.per_sample_terms

    def poisoned(outputs, targets, names, loss_cfg):
        terms = real(outputs, targets, names, loss_cfg)
        values, mask = terms["symmetry"]
        # Finite for the first traces' steps, NaN from step 4 on (a variable counts steps).
        nan = tf.fill(tf.shape(values), np.float32("nan"))
        terms["symmetry"] = (tf.where(poison_step >= 3, nan, values), mask)
        return terms

    poison_step = tf.Variable(0)
    monkeypatch.setattr(objective, "per_sample_terms", poisoned)
    log = []

    def count(line):
        log.append(line)
        if "step" in line:
            poison_step.assign_add(1)

    tr = kp_trainer.Trainer(cfg, strategy=tf.distribute.OneDeviceStrategy("CPU:0"), progress=count)
    with pytest.raises(kp_trainer.TrainingDiverged, match="symmetry"):
        tr.run_stage(0, cfg.train.stages[0])
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints" / "00_s"))
    assert latest is not None and latest.endswith("-2")
    reader = tf.train.load_checkpoint(latest)
    for key in reader.get_variable_to_shape_map():
        value = reader.get_tensor(key)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), key


def test_resume_continues_the_data_stream_and_keeps_one_validation_entry_per_step(
    killed_and_resumed,
):
    """Killed after step 4 of 6 with checkpoints every 2 steps and validation after every step:
    the resume from step 2 must neither replay the stage's first batches nor leave the step-3
    validation entry twice in metrics.json."""
    run = killed_and_resumed
    before, batches = run.validation_before, run.batches
    assert [v["step"] for v in before if v["stage"] == "b"] == [1, 2, 3]  # 3: after ckpt-2
    assert len(batches["first"]) == 4

    assert any("resumed from" in line and "at step 2/6" in line for line in run.log)
    assert len(batches["resumed"]) == 4  # steps 3..6
    # A replay would feed the stage's first batches again, in order.
    for resumed in batches["resumed"]:
        assert not any(np.array_equal(resumed, first) for first in batches["first"])
    validation = json.loads((run.run_dir / "metrics.json").read_text())["validation"]
    keys = [(v["stage"], v["step"]) for v in validation]
    assert len(keys) == len(set(keys)), keys
    assert [s for stage, s in keys if stage == "b"] == [1, 2, 3, 4, 5, 6]
    assert [s for stage, s in keys if stage == "a"] == [1, 2]
    # Entries older than the checkpoint are kept as they were.
    assert [v for v in validation if v["stage"] == "a"] == [v for v in before if v["stage"] == "a"]


def test_stream_seed_depends_on_stage_and_step_only(tiny_data, tmp_path):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "a", "steps": 2, "learning_rate": 1e-3, "losses": ["heatmap"]}],
    )
    tr = kp_trainer.Trainer(
        cfg, strategy=tf.distribute.OneDeviceStrategy("CPU:0"), progress=lambda *_: None
    )
    seeds = {(i, s): tr.stream_seed(i, s) for i in range(3) for s in (0, 2, 1000)}
    assert len(set(seeds.values())) == len(seeds)
    assert tr.stream_seed(1, 2) == seeds[(1, 2)]  # reproducible
    assert all(0 <= v < 2**31 for v in seeds.values())


def test_interrupted_checkpoint_saves_are_removed_at_start(tiny_data, tmp_path):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "a", "steps": 2, "learning_rate": 1e-3, "losses": ["heatmap"]}],
    )
    stage_dir = tmp_path / "run" / "checkpoints" / "00_a"
    temp = stage_dir / "ckpt-4_temp"  # what tf.train.Checkpoint leaves when killed mid-save
    temp.mkdir(parents=True)
    (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 64)
    (stage_dir / "ckpt-2.index").write_bytes(b"kept")  # a finished save stays
    log = []
    kp_trainer.Trainer(cfg, strategy=tf.distribute.OneDeviceStrategy("CPU:0"), progress=log.append)
    assert not temp.exists()
    assert (stage_dir / "ckpt-2.index").read_bytes() == b"kept"
    assert any("interrupted checkpoint save" in line and "ckpt-4_temp" in line for line in log)


def test_sync_sets_moving_statistics_to_their_mean_over_replicas(
    tiny_data, tmp_path, mirrored_strategy
):
    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "a", "steps": 2, "learning_rate": 1e-3, "losses": ["heatmap"]}],
    )
    tr = kp_trainer.Trainer(cfg, strategy=mirrored_strategy, progress=lambda *_: None)
    stats = [v for v in tr.model.non_trainable_variables if "moving" in v.path]
    assert stats
    rng = np.random.default_rng(0)
    planted = []
    for v in stats:  # a different value on each replica, as after unsynchronised BN updates
        parts = mirrored_strategy.experimental_local_results(v.value)
        values = [rng.normal(size=v.shape).astype(np.float32) for _ in parts]
        for part, value in zip(parts, values):
            part.assign(value)
        planted.append(values)
    tr._make_sync()()
    for v, values in zip(stats, planted):
        parts = mirrored_strategy.experimental_local_results(v.value)
        for part in parts:
            np.testing.assert_allclose(part.numpy(), (values[0] + values[1]) / 2, rtol=1e-6)


def test_wait_for_polls_until_ready_and_times_out_naming_what():
    from keras_pose3d.training import runtime

    calls = []
    runtime.wait_for(
        lambda: calls.append(1) or len(calls) >= 3,
        "three calls",
        5.0,
        progress=lambda *_: None,
        poll_s=0.01,
    )
    assert len(calls) == 3
    with pytest.raises(
        TimeoutError,
        match=r"waited 0s \(runtime.collective_timeout_s\) for "
        r"the chief's data",
    ):
        runtime.wait_for(
            lambda: False, "the chief's data", 0.05, progress=lambda *_: None, poll_s=0.01
        )


def test_runtime_config_rejects_negative_timeouts_and_threads():
    from keras_pose3d.config import ConfigError, RuntimeConfig

    with pytest.raises(ConfigError, match="runtime.collective_timeout_s"):
        RuntimeConfig(collective_timeout_s=-1.0)
    with pytest.raises(ConfigError, match="runtime.intra_op_threads"):
        RuntimeConfig(intra_op_threads=-2)


@pytest.mark.parametrize("num_modules", [1, 2])
def test_build_model_builds_the_configured_residual_count(tiny_data, tmp_path, num_modules):
    """`model.num_modules` reaches the network the trainer trains (it once stopped at the config)."""
    from keras_pose3d.models.sap_net import SAPNet

    cfg = _config(
        tiny_data,
        tmp_path / "run",
        [{"name": "a", "steps": 1, "learning_rate": 1e-3, "losses": ["heatmap"]}],
    )
    cfg = from_dict(
        {**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "num_modules": num_modules}}
    )
    built = kp_trainer.build_model(cfg)
    m = cfg.model
    reference = SAPNet(
        num_joints=m.num_joints,
        num_stacks=m.num_stacks,
        num_features=m.num_features,
        hourglass_depth=m.hourglass_depth,
        depth_blocks=m.depth_blocks,
        num_modules=num_modules,
        input_size=cfg.data.input_size,
        heatmap_size=cfg.data.heatmap_size,
    )
    reference(tf.zeros((1, 32, 32, 3)))
    count = lambda model: sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert count(built) == count(reference)
    if num_modules == 2:
        one = from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "num_modules": 1}})
        assert count(built) > count(kp_trainer.build_model(one))
