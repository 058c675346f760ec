"""Config loading: strict keys, types and values, overrides, and the shipped configs."""

import dataclasses
import pathlib
import subprocess
import sys

import pytest
import yaml

from keras_pose3d import config as kc

ROOT = pathlib.Path(__file__).resolve().parents[1]
# temporal.yaml configures TP-Net training and has its own loader (keras_pose3d.temporal_config).
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "temporal.yaml")


def _write(tmp_path, tree) -> pathlib.Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _tree(**train):
    return {
        "train": {
            "stages": [{"name": "a", "steps": 5, "learning_rate": 1e-3, "losses": ["heatmap"]}],
            **train,
        }
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path):
    cfg = kc.load_config(path)
    again = kc.from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_temporal_config_loads_with_the_papers_tp_net():
    from keras_pose3d import temporal_config

    cfg = temporal_config.load_config(ROOT / "configs" / "temporal.yaml")
    assert cfg.model.window == 20 and cfg.model.hidden == 4096


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_record_globs_name_splits_the_jobs_write(path):
    """A glob must match what `pipelines/<dataset>_to_tfrecord.py` writes, or training stops."""
    import importlib

    cfg = kc.load_config(path)
    for pattern in cfg.data.train_patterns() + cfg.data.val_patterns():
        parts = pathlib.PurePath(pattern).parts
        dataset, split = parts[-2], parts[-1].split("-")[0]
        job = importlib.import_module(f"pipelines.{dataset}_to_tfrecord")
        assert split in job.SPLITS, f"{path.name}: {pattern} names split {split!r}"


def test_h36m_config_has_the_papers_settings():
    cfg = kc.load_config(ROOT / "configs" / "h36m.yaml")
    assert (cfg.train.batch_size, cfg.data.input_size, cfg.data.heatmap_size) == (6, 256, 64)
    assert cfg.model.num_stacks == 2 and cfg.data.mix_2d_3d
    assert (cfg.loss.lambda_a, cfg.loss.lambda_g, cfg.loss.lambda_s) == (0.03, 0.03, 0.05)
    # Zhou et al.'s network and depth weight (pose-hg-3d: nModules 2, regWeight 0.1).
    assert cfg.model.num_modules == 2 and (cfg.loss.heatmap, cfg.loss.depth) == (1.0, 0.1)
    stages = {s.name: s for s in cfg.train.stages}
    assert [s.name for s in cfg.train.stages] == [
        "pretrain_2d",
        "depth_warmup",
        "structure",
        "symmetry",
    ]
    assert stages["depth_warmup"].steps == 240_000 and stages["depth_warmup"].samples == "3d_only"
    assert stages["structure"].steps == 160_000
    assert stages["structure"].learning_rate == 2.5e-4
    assert stages["symmetry"].learning_rate == 2.5e-5
    assert set(stages["structure"].losses) == {"heatmap", "depth", "geometric", "illegal_angle"}
    assert "symmetry" in stages["symmetry"].losses
    assert "symmetry" not in stages["structure"].losses


def test_unknown_key_names_path_file_and_closest_key(tmp_path):
    tree = _tree()
    tree["model"] = {"num_stack": 3}
    path = _write(tmp_path, tree)
    with pytest.raises(kc.ConfigError) as e:
        kc.load_config(path)
    msg = str(e.value)
    assert "model.num_stack" in msg and str(path) in msg and "num_stacks" in msg


def test_unknown_nested_key_in_a_stage(tmp_path):
    tree = _tree()
    tree["train"]["stages"][0]["learnig_rate"] = 1.0
    with pytest.raises(kc.ConfigError, match=r"train\.stages\[0\]\.learnig_rate.*learning_rate"):
        kc.load_config(_write(tmp_path, tree))


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.stages.a.steps=-3", "train.stages[a].steps"),
        ("loss.lambda_a=-0.1", "loss.lambda_a"),
        ("data.heatmap_size=60", "data.heatmap_size"),
        ("model.num_stacks=two", "model.num_stacks"),
        ("model.num_modules=0", "model.num_modules"),
        ("model.num_modules=1.5", "model.num_modules"),
        ("runtime.precision=float64", "runtime.precision"),
        ("train.stages.a.losses=[heatmapp]", "train.stages[a].losses"),
        ("train.batch_size=5", "train.batch_size"),
        ("data.augment.flip=1", "data.augment.flip"),
        ("train.stages.a.learning_rate=0", "train.stages[a].learning_rate"),
        ("train.stages.a.losses=[]", "train.stages[a].losses"),
        ("train.stages.a.trainable=[head]", "train.stages[a].trainable"),
        ("train.log_every=0", "train.log_every"),
        ("data.val_examples=0", "data.val_examples"),
        ("data.heatmap_sigma=0", "data.heatmap_sigma"),
        ("data.synthetic.num_shards=0", "data.synthetic.num_shards"),
        ("data.synthetic.num_2d_subjects=-1", "data.synthetic.num_2d_subjects"),
        ("data.synthetic.num_validation_subjects=-2", "data.synthetic.num_validation_subjects"),
        ("temporal.learning_rate=0", "temporal.learning_rate"),
        ("temporal.window=0", "temporal.window"),
        ("data.augment.flip_prob=1.5", "data.augment.flip_prob"),
        ("data.augment.rotation_prob=-0.1", "data.augment.rotation_prob"),
        ("data.augment.contrast=2", "data.augment.contrast"),
        ("data.augment.brightness=-0.1", "data.augment.brightness"),
        ("data.augment.channel_scale=[1.4,0.6]", "data.augment.channel_scale"),
        ("data.augment.channel_scale=[0.6]", "data.augment.channel_scale"),
        ("data.augment.channel_scale=0.6", "data.augment.channel_scale"),
    ],
)
def test_bad_values_name_the_field(tmp_path, override, field):
    path = _write(tmp_path, _tree())
    with pytest.raises(kc.ConfigError) as e:
        kc.load_config(path, [override])
    assert field in str(e.value)


def test_bad_values_say_what_was_expected(tmp_path):
    path = _write(tmp_path, _tree())
    cases = {
        "train.log_every=-2": "config key 'train.log_every' (from --set {}): must be positive, "
        "got -2",
        "train.stages.a.trainable=[hourglas]": (
            "config key 'train.stages[a].trainable' (from --set {}): unknown part 'hourglas' "
            "(did you mean 'hourglass'?); valid: ('hourglass', 'depth')"
        ),
        "train.stages.a.losses=[]": "config key 'train.stages[a].losses' (from --set {}): is empty",
        "train.stages.a.learning_rate=.inf": "config key 'train.stages[0].learning_rate' (from "
        "--set {}): expected a finite number, got inf",
        "data.augment.warp=cv2": "config key 'data.augment.warp' (from --set {}): must be "
        "'opencv' or 'tensorflow', got 'cv2'",
    }
    for override, message in cases.items():
        with pytest.raises(kc.ConfigError) as e:
            kc.load_config(path, [override])
        # The key came from the command line: the message names the --set, not the file.
        assert str(e.value) == message.format(override)
    # A bad value in the file itself still names the file.
    bad = _tree()
    bad["train"]["log_every"] = -2
    with pytest.raises(kc.ConfigError, match=r"'train.log_every' \(in .*c.yaml\)"):
        kc.load_config(_write(tmp_path, bad))


def test_unparsable_set_value_is_one_clear_error(tmp_path):
    path = _write(tmp_path, _tree())
    with pytest.raises(kc.ConfigError, match=r"--set data.augment=\{: the value is not valid YAML"):
        kc.load_config(path, ["data.augment={"])


def test_exponent_without_a_dot_is_a_number(tmp_path):
    """PyYAML (YAML 1.1) reads 5e-3 as the string '5e-3'; a float field takes it as 0.005, in a
    file and in --set, and still refuses words."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "train:\n  stages:\n    - {name: a, steps: 5, learning_rate: 2e-4, losses: [heatmap]}\n"
    )
    assert yaml.safe_load(path.read_text())["train"]["stages"][0]["learning_rate"] == "2e-4"
    cfg = kc.load_config(path, ["loss.lambda_a=1.5E-1", "train.stages.a.learning_rate=5e-3"])
    assert cfg.train.stages[0].learning_rate == 0.005 and cfg.loss.lambda_a == 0.15
    assert kc.load_config(path).train.stages[0].learning_rate == 2e-4
    for word in ("fast", "nan", "1e"):
        with pytest.raises(kc.ConfigError, match="expected a number"):
            kc.load_config(path, [f"loss.lambda_a={word}"])


def test_overrides_apply_with_types(tmp_path):
    path = _write(tmp_path, _tree())
    cfg = kc.load_config(
        path,
        [
            "train.batch_size=12",
            "train.stages.a.steps=7",
            "runtime.precision=mixed_bfloat16",
            "loss.lambda_s=0.5",
        ],
    )
    assert cfg.train.batch_size == 12 and cfg.train.stages[0].steps == 7
    assert cfg.runtime.precision == "mixed_bfloat16" and cfg.loss.lambda_s == 0.5


def test_augment_extras_are_optional_keys_with_newells_defaults(tmp_path):
    """The keys a config has always had load as before; the extras default to Newell et al.'s
    recipe (rotation 40 % of the time, flip half the time, per-channel factor 0.6 - 1.4)."""
    cfg = kc.load_config(
        _write(
            tmp_path, {**_tree(), "data": {"generate_synthetic": True, "augment": {"scale": 0.1}}}
        )
    )
    a = cfg.data.augment
    assert (a.scale, a.rotation_deg, a.flip, a.color) == (0.1, 30.0, True, True)
    assert (a.rotation_prob, a.flip_prob, a.channel_scale) == (0.4, 0.5, (0.6, 1.4))
    assert (a.brightness, a.contrast, a.saturation) == (0.0, 0.0, 0.0)
    cfg = kc.load_config(
        _write(tmp_path, _tree()),
        [
            "data.generate_synthetic=true",
            "data.augment.channel_scale=[0.8,1.2]",
            "data.augment.flip_prob=0",
            "data.augment.contrast=0.3",
        ],
    )
    a = cfg.data.augment
    assert (a.channel_scale, a.flip_prob, a.contrast) == ((0.8, 1.2), 0.0, 0.3)


def test_override_of_unknown_stage_is_an_error(tmp_path):
    with pytest.raises(kc.ConfigError, match="no stage named 'zz'"):
        kc.load_config(_write(tmp_path, _tree()), ["train.stages.zz.steps=1"])


@pytest.mark.parametrize("name", ["h36m.yaml", "mpi_inf_3dhp.yaml", "mpii.yaml"])
def test_paper_configs_build_zhous_network(name):
    cfg = kc.load_config(ROOT / "configs" / name)
    model = cfg.model
    assert (
        model.num_stacks,
        model.num_features,
        model.hourglass_depth,
        model.depth_blocks,
        model.num_modules,
    ) == (2, 256, 4, 4, 2)
    assert cfg.loss.depth == 0.1


def test_num_modules_round_trips_and_defaults_to_one(tmp_path):
    tree = _tree()
    assert kc.load_config(_write(tmp_path, tree)).model.num_modules == 1  # field absent
    assert kc.ModelConfig().num_modules == 1
    tree["model"] = {"num_modules": 3}
    cfg = kc.load_config(_write(tmp_path, tree))
    assert cfg.model.num_modules == 3
    written = yaml.safe_load(cfg.to_yaml())
    assert written["model"]["num_modules"] == 3
    assert kc.from_dict(written) == cfg
    assert kc.load_config(_write(tmp_path, tree), ["model.num_modules=2"]).model.num_modules == 2


def test_configs_are_frozen():
    cfg = kc.load_config(ROOT / "configs" / "quickstart.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.batch_size = 3  # type: ignore[misc]


def test_loss_weights_map_to_eq3_lambdas():
    loss = kc.LossConfig(lambda_g=0.1, lambda_a=0.2, lambda_s=0.3, heatmap=2.0, depth=4.0)
    assert [loss.weight(n) for n in kc.LOSS_NAMES] == [2.0, 4.0, 0.1, 0.2, 0.3]


def test_dry_run_prints_resolved_config_and_bad_config_exits_nonzero(tmp_path):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_pose3d.train",
            "--config",
            str(ROOT / "configs" / "h36m.yaml"),
            "--dry-run",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr
    assert yaml.safe_load(ok.stdout)["train"]["stages"][1]["steps"] == 240_000
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_pose3d.train",
            "--config",
            str(ROOT / "configs" / "h36m.yaml"),
            "--set",
            "model.num_stack=3",
            "--dry-run",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0 and "model.num_stack" in bad.stderr and "num_stacks" in bad.stderr
