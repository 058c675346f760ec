"""Typed, frozen configuration loaded from YAML, with `--set section.key=value` overrides.

A mistake in a config should cost seconds, not a night of training: unknown keys fail with their
dotted path, the file and the closest valid key; wrong types and impossible values fail naming
the field. The resolved config is written into every run directory (`Config.to_yaml`).

Sections: `data`, `model`, `loss`, `train` (a list of stages), `runtime`, `export`, `eval`,
`temporal` (TP-Net in the same run), `report` (the main job's arms and table).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import pathlib
import re
import types
import typing
from typing import Any, Literal

import yaml

LOSS_NAMES = ("heatmap", "depth", "geometric", "illegal_angle", "symmetry")
# SAP-Net's parts a stage can train (`train.stages[].trainable`); `models.sap_net.PARTS` maps
# each to its sub-network, `training.trainer` freezes the others.
PART_NAMES = ("hourglass", "depth")


class ConfigError(ValueError):
    """A configuration problem, with the dotted key path and the file it came from."""


def _fail(path: str, message: str, source: str | None) -> ConfigError:
    where = f" (in {source})" if source else ""
    return ConfigError(f"config key '{path}'{where}: {message}")


def _check(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise _fail(path, message, None)


def _check_positive(section: str, obj, names: tuple[str, ...]) -> None:
    """Each field `name` of `obj` is > 0; the error names `section.name` and the value."""
    for name in names:
        value = getattr(obj, name)
        _check(value > 0, f"{section}.{name}", f"must be positive, got {value}")


def _check_choices(path: str, values: tuple[str, ...], valid: tuple[str, ...], what: str) -> None:
    """`values` is non-empty and each is one of `valid` (a near miss gets a suggestion)."""
    _check(len(values) > 0, path, "is empty")
    for value in values:
        _check(
            value in valid,
            path,
            f"unknown {what} '{value}'{_suggest(value, valid)}; valid: {valid}",
        )


def _suggest(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ----------------------------------------------------------------------------------------------
# Sections.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (`data.dataset.build_example`): Zhou et al.'s scale ±25 %, rotation
    ±30° and flip with the left/right swap, drawn as in Newell et al., then colour jitter.

    Attributes:
        scale: scale range r: the person region side is multiplied by U(1 - r, 1 + r).
        rotation_deg: rotation range a: U(-a, a) degrees ...
        rotation_prob: ... applied with this probability (Newell et al.: 0.4).
        flip: whether to flip horizontally (with the left/right swap) ...
        flip_prob: ... with this probability.
        color: whether to apply colour jitter.
        channel_scale: (low, high) per-channel factor range (Newell et al.: 0.6 - 1.4).
        brightness: max additive brightness delta (0 disables).
        contrast, saturation: max relative change, factor in [1 - c, 1 + c] (0 disables).
        warp: how the crop is warped: "opencv" (cv2.warpAffine through tf.numpy_function,
            15-30x less CPU than TensorFlow's op on a 448 -> 256 px crop; values within half
            a grey level of it) or
            "tensorflow" (ImageProjectiveTransformV3: a pure graph, for input pipelines that
            must be serialised, e.g. the tf.data service). Evaluation crops always use the
            TensorFlow op.
    """

    scale: float = 0.25
    rotation_deg: float = 30.0
    rotation_prob: float = 0.4
    flip: bool = True
    flip_prob: float = 0.5
    color: bool = True
    channel_scale: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    warp: str = "opencv"

    def __post_init__(self):
        _check(
            self.warp in ("opencv", "tensorflow"),
            "data.augment.warp",
            f"must be 'opencv' or 'tensorflow', got {self.warp!r}",
        )
        _check(
            0.0 <= self.scale < 1.0, "data.augment.scale", f"must be in [0, 1), got {self.scale}"
        )
        _check(
            0.0 <= self.rotation_deg <= 180.0,
            "data.augment.rotation_deg",
            f"must be in [0, 180], got {self.rotation_deg}",
        )
        # contrast and saturation factors 1 - c must stay >= 0 (tf.image's lower bound).
        for name in ("rotation_prob", "flip_prob", "contrast", "saturation"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"data.augment.{name}", f"must be in [0, 1], got {value}")
        _check(
            self.brightness >= 0,
            "data.augment.brightness",
            f"must be >= 0, got {self.brightness}",
        )
        _check(
            len(self.channel_scale) == 2 and 0.0 <= self.channel_scale[0] <= self.channel_scale[1],
            "data.augment.channel_scale",
            f"must be [low, high] with 0 <= low <= high, got {list(self.channel_scale)}",
        )


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The generated default dataset (`keras_pose3d.data.synthetic`, written by
    `pipelines/synthetic_to_tfrecord.py`): the one type of its parameters.

    Subjects S1..S{num_subjects}, three ways: the last `num_test_subjects` form the test split
    (3D; never used to choose anything: the main job reports it), the `num_validation_subjects`
    before them the validation split (3D; every choice: tuning, early stopping, the filter
    arm's filter); of the others, the last `num_2d_subjects` are 2D-only (`2d_S*`, train
    split). With None, `num_2d_subjects` is num_subjects // 3 and `num_validation_subjects` is
    1; `num_test_subjects` 0 writes no test split.
    `num_shards` is the TFRecord shards per split when the trainer generates it
    (`synthetic_to_tfrecord.ensure_synthetic_dataset`); the records do not depend on it.
    """

    num_subjects: int = 6
    sequences_per_subject: int = 2
    frames_per_sequence: int = 100
    crop_size: int = 128
    num_shards: int = 4
    seed: int = 0
    num_2d_subjects: int | None = None
    num_validation_subjects: int | None = None
    num_test_subjects: int = 0
    # Camera elevation (degrees above the person, looking down) drawn uniformly in this range.
    # H36M's four cameras look down 10.7-16 deg from ~1.5-1.6 m; a wide range asks the depth
    # regressor to read the camera's tilt from a person on a plain background.
    min_elevation_deg: float = -5.0
    max_elevation_deg: float = 30.0

    def __post_init__(self):
        _check_positive(
            "data.synthetic",
            self,
            (
                "num_subjects",
                "sequences_per_subject",
                "frames_per_sequence",
                "crop_size",
                "num_shards",
            ),
        )
        for key in ("min_elevation_deg", "max_elevation_deg"):
            value = getattr(self, key)
            _check(
                -89.0 <= value <= 89.0,
                f"data.synthetic.{key}",
                f"must be in [-89, 89] deg, got {value}",
            )
        _check(
            self.min_elevation_deg <= self.max_elevation_deg,
            "data.synthetic.max_elevation_deg",
            f"must be >= min_elevation_deg ({self.min_elevation_deg}), got {self.max_elevation_deg}",
        )
        n_val, n_2d = self.split_sizes()
        for key, n in (
            ("num_validation_subjects", n_val),
            ("num_2d_subjects", n_2d),
            ("num_test_subjects", self.num_test_subjects),
        ):
            _check(n >= 0, f"data.synthetic.{key}", f"must be >= 0, got {n}")
        _check(
            self.num_subjects - n_val - n_2d - self.num_test_subjects >= 1,
            "data.synthetic.num_subjects",
            "need at least one 3D training subject: num_subjects="
            f"{self.num_subjects}, num_validation_subjects={n_val}, num_2d_subjects={n_2d}, "
            f"num_test_subjects={self.num_test_subjects}",
        )

    def split_sizes(self) -> tuple[int, int]:
        """(validation subjects, 2D-only subjects)."""
        n_val = 1 if self.num_validation_subjects is None else self.num_validation_subjects
        n_2d = self.num_subjects // 3 if self.num_2d_subjects is None else self.num_2d_subjects
        return n_val, n_2d

    def splits(self) -> tuple[str, ...]:
        """The splits the dataset has: train, validation, and test when it has test subjects."""
        return ("train", "validation") + (("test",) if self.num_test_subjects else ())

    def subjects(self) -> list[tuple[str, str, bool]]:
        """[(split, subject name, has_3d)] in subject order."""
        n_val, n_2d = self.split_sizes()
        n_test = self.num_test_subjects
        n_train = self.num_subjects - n_val - n_test
        out = []
        for i in range(self.num_subjects):
            name = f"S{i + 1}"
            if i >= n_train + n_val:
                out.append(("test", name, True))
            elif i >= n_train:
                out.append(("validation", name, True))
            elif i >= n_train - n_2d:
                out.append(("train", f"2d_{name}", False))
            else:
                out.append(("train", name, True))
        return out


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where records come from and how they become batches.

    `train_files` / `val_files` / `test_files` are glob patterns of TFRecord shards written by
    `pipelines/`. With `generate_synthetic`, the synthetic default is generated into `data_dir`
    when absent and the file patterns default to its shards. The test split is what the main
    job's table reports (never used to choose anything); without one it reports validation.
    """

    data_dir: str = "data/synthetic"
    train_files: tuple[str, ...] = ()
    val_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    generate_synthetic: bool = False
    synthetic: SyntheticConfig = SyntheticConfig()
    input_size: int = 256
    heatmap_size: int = 64
    heatmap_sigma: float = 1.0
    mix_2d_3d: bool = True
    augment: AugmentConfig = AugmentConfig()
    shuffle_buffer: int = 2048
    val_examples: int = 512

    def __post_init__(self):
        _check_positive(
            "data", self, ("input_size", "heatmap_size", "heatmap_sigma", "val_examples")
        )
        _check(
            self.input_size % self.heatmap_size == 0,
            "data.heatmap_size",
            f"must divide data.input_size: {self.input_size} is not a multiple of "
            f"{self.heatmap_size}",
        )
        _check(self.shuffle_buffer >= 0, "data.shuffle_buffer", "must be >= 0")
        _check(
            bool(self.train_files) or self.generate_synthetic,
            "data.train_files",
            "is empty: give TFRecord globs or set data.generate_synthetic: true",
        )

    def train_patterns(self) -> tuple[str, ...]:
        if self.train_files:
            return self.train_files
        return (str(pathlib.Path(self.data_dir) / "train-*.tfrecord"),)

    def val_patterns(self) -> tuple[str, ...]:
        if self.val_files:
            return self.val_files
        return (str(pathlib.Path(self.data_dir) / "validation-*.tfrecord"),)

    def test_patterns(self) -> tuple[str, ...]:
        """The test split's globs; () when there is none (the synthetic default without test
        subjects, or a real dataset without `test_files`)."""
        if self.test_files:
            return self.test_files
        if self.generate_synthetic and self.synthetic.num_test_subjects:
            return (str(pathlib.Path(self.data_dir) / "test-*.tfrecord"),)
        return ()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """SAP-Net size: a stacked hourglass (Newell et al.) and Zhou et al.'s depth regressor.

    `num_modules` is the number of residual modules at each place of an hourglass and after
    each hourglass (Zhou et al.'s `nModules`). Their network, which SAP-Net is built on, uses 2:
    with num_stacks 2, num_features 256, hourglass_depth 4, depth_blocks 4 that is 14,429,104
    trainable parameters and 32.33 GFLOPs per 256x256 image (configs/h36m.yaml). The default 1
    is the lighter variant (8,422,320 parameters, 21.87 GFLOPs) that configs written before the
    field existed, such as the quickstart, keep.
    """

    num_joints: int = 16
    num_stacks: int = 2
    num_features: int = 256
    hourglass_depth: int = 4
    depth_blocks: int = 4
    num_modules: int = 1
    # Heatmap -> 2D: centroid of the part of the peak above this share of its height
    # (`layers.heatmap_decode.HeatmapDecoder`); 0 = of all positive values in the window.
    decode_threshold: float = 0.5

    def __post_init__(self):
        _check(
            self.num_joints == 16,
            "model.num_joints",
            f"must be 16 (the MPII-16 skeleton every loss is defined on), got {self.num_joints}",
        )
        _check_positive(
            "model",
            self,
            ("num_stacks", "num_features", "hourglass_depth", "depth_blocks", "num_modules"),
        )
        _check(
            0.0 <= self.decode_threshold < 1.0,
            "model.decode_threshold",
            f"must be in [0, 1), got {self.decode_threshold}",
        )


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (Eq. 3: L_SA = λ_a L_a + λ_s L_s + λ_g L_g).

    The paper (Sect. 4.3) gives only λ_a = 0.03, λ_g = 0.03 and λ_s = 0.05. The other weights
    are assumptions: `heatmap` 1 and `depth` follow Zhou et al.'s code (pose-hg-3d, opts.lua
    and FusionCriterion.lua: an MSE criterion of weight 1 per stack, and `regWeight` 0.1 on the
    depth MSE of 3D samples; both losses here are per-element means too, over the visible
    joints, with depth in the same half-crop units). The paper configs use depth 0.1; the
    dataclass default 1.0 is kept for configs that do not set it.

    λ_a weighs this project's unit-vector form of Eq. 1 (see losses/illegal_angle.py): each
    limb's term is -E e^{-E} with E = min(d, 0) and d = ±(u1 x u2) . u3 of unit bone vectors,
    so a term is at most e and L_a at most 4e, and its slope at a small violation is 1 per
    unit of d. The paper's raw triple product carries the three bone lengths as a factor
    (length^3; the paper does not state its unit): in normalised crop units, for an adult as
    the data pipeline crops one, that factor is ~0.004 (elbow) to ~0.01 (knee), so the same
    λ_a = 0.03 penalises a slight illegal bend ~100-260x more strongly here than the raw form
    would. The value is the paper's; its effective strength is an assumption.

    `weak_on` settles what the paper leaves open: whether the structure losses (geometric,
    illegal-angle, symmetry) apply to 2D-only samples (Zhou et al.'s reading of L_g, the
    default) or to every sample.
    """

    heatmap: float = 1.0
    depth: float = 1.0
    lambda_g: float = 0.03
    lambda_a: float = 0.03
    lambda_s: float = 0.05
    weak_on: Literal["2d_only", "all"] = "2d_only"

    def __post_init__(self):
        for name in ("heatmap", "depth", "lambda_g", "lambda_a", "lambda_s"):
            _check(
                getattr(self, name) >= 0, f"loss.{name}", f"must be >= 0, got {getattr(self, name)}"
            )

    def weight(self, term: str) -> float:
        return {
            "heatmap": self.heatmap,
            "depth": self.depth,
            "geometric": self.lambda_g,
            "illegal_angle": self.lambda_a,
            "symmetry": self.lambda_s,
        }[term]


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One stage of the schedule: which losses are on, which parts train, for how long."""

    name: str
    steps: int
    learning_rate: float
    losses: tuple[str, ...]
    trainable: tuple[str, ...] = PART_NAMES
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"
    samples: Literal["mixed", "3d_only", "2d_only"] = "mixed"
    # "cosine": the rate falls from `learning_rate` to 0 along a half cosine over the stage's
    # steps (the optimizer's step counter drives it, so a resumed stage continues the curve).
    lr_schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self):
        where = f"train.stages[{self.name}]"
        _check_positive(where, self, ("steps", "learning_rate"))
        _check_choices(f"{where}.losses", self.losses, LOSS_NAMES, "loss")
        _check_choices(f"{where}.trainable", self.trainable, PART_NAMES, "part")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The schedule and its bookkeeping. `batch_size` is global (summed over replicas)."""

    stages: tuple[StageConfig, ...]
    batch_size: int = 6
    log_every: int = 50
    checkpoint_every: int = 1000
    eval_every: int = 5000
    run_dir: str = "runs/default"
    seed: int = 0

    def __post_init__(self):
        _check_positive(
            "train", self, ("batch_size", "log_every", "checkpoint_every", "eval_every")
        )
        _check(len(self.stages) > 0, "train.stages", "is empty")
        names = [s.name for s in self.stages]
        _check(len(set(names)) == len(names), "train.stages", f"stage names repeat: {names}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Distribution strategy, precision and compilation."""

    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    devices: tuple[str, ...] = ()  # for `mirrored`; empty = all GPUs (or the CPU)
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    xla: bool = False
    # `multi_worker`: a collective op (a step's gradient all-reduce) that has not completed
    # after this many seconds fails the worker with DeadlineExceeded instead of hanging when a
    # peer died. It must exceed the longest pause one worker can make between two steps
    # (validation, a checkpoint save, the first step's tracing). 0 waits forever.
    collective_timeout_s: float = 600.0
    # TensorFlow's thread pools per process; 0 lets TensorFlow choose (all cores). Set 1 to
    # run several workers on one small machine (tests, the README's two local workers).
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    # Bitwise-repeatable training on CPUs, whatever else runs on the machine (docs/design.md,
    # "Runs that repeat"): TensorFlow's op determinism; its oneDNN CPU kernels off
    # (TF_ENABLE_ONEDNN_OPTS=0, set before TensorFlow loads: a oneDNN primitive called from
    # a thread of TensorFlow's own intra-op pool runs single-threaded and adds in another
    # order); Grappler's arithmetic optimizer off (training/sums.py: it merges chains of adds
    # into AddN ops, whose order follows the input buffer they may reuse, i.e. scheduling).
    # The trainer sums gradients pairwise in a fixed order in every mode.
    deterministic: bool = False

    def __post_init__(self):
        _check(
            self.collective_timeout_s >= 0,
            "runtime.collective_timeout_s",
            f"must be >= 0 (0 waits forever), got {self.collective_timeout_s}",
        )
        for name in ("intra_op_threads", "inter_op_threads"):
            _check(
                getattr(self, name) >= 0,
                f"runtime.{name}",
                f"must be >= 0 (0: TensorFlow's default), got {getattr(self, name)}",
            )


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What the end of a run exports (keras_pose3d/serving/export.py)."""

    enabled: bool = True
    saved_models_dir: str = "saved_models"
    onnx: bool = False


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation at the end of a run (keras_pose3d/evaluation/runner.py)."""

    enabled: bool = True
    dataset: Literal["h36m", "mpi_inf_3dhp", "mpii", "synthetic"] = "h36m"


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """The main job's evidence (`training/main_job.py`): a snapshot of the model after every
    stage, each state evaluated on the test split (validation when there is none), the arms
    below beside the paper's stages, RUN_DIR/main_job_table.{md,json} and plots. Off by default:
    on a large dataset each arm costs a full prediction pass."""

    enabled: bool = False
    # The stages with structure losses again from the snapshot before them, without those
    # losses (same steps, rates and data): the paper's Table 3 comparison at equal training.
    control_arm: bool = True
    # The final SAP-Net smoothed by the best causal filter on the validation split.
    filter_arm: bool = True
    plots: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    train: TrainConfig
    data: DataConfig = DataConfig(generate_synthetic=True)
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    export: ExportConfig = ExportConfig()
    eval: EvalConfig = EvalConfig()
    temporal: TemporalStageConfig = dataclasses.field(default_factory=lambda: TemporalStageConfig())
    report: ReportConfig = ReportConfig()

    def __post_init__(self):
        if self.train.batch_size % 2 and self.data.mix_2d_3d:
            raise _fail(
                "train.batch_size",
                "must be even when data.mix_2d_3d is true "
                f"(half 2D, half 3D per batch), got {self.train.batch_size}",
                None,
            )

    def to_dict(self) -> dict:
        plain = _to_plain(self)
        order = (
            "data",
            "model",
            "loss",
            "train",
            "runtime",
            "export",
            "eval",
            "temporal",
            "report",
        )
        return {k: plain[k] for k in order}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# Building dataclasses from plain data, strictly.
# ----------------------------------------------------------------------------------------------
def _build(cls, data: Any, path: str, source: str | None):
    if not isinstance(data, dict):
        raise _fail(
            path or "<root>",
            f"expected a mapping for {cls.__name__}, got {type(data).__name__}: {data!r}",
            source,
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            dotted = f"{path}.{key}" if path else str(key)
            raise _fail(
                dotted,
                f"unknown key{_suggest(str(key), fields)}; valid keys here: {sorted(fields)}",
                source,
            )
    kwargs = {}
    for name, f in fields.items():
        dotted = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], dotted, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(dotted, "is required", source)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        # Re-raise with the file name attached.
        if source and "(in " not in str(e):
            raise ConfigError(str(e).replace("':", f"' (in {source}):", 1)) from None
        raise


# A YAML 1.2 decimal number such as 5e-3 or -1.5E+2 (not inf / nan).
_YAML12_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(tp, value, path: str, source: str | None):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, source)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise _fail(
                path,
                f"must be one of {list(choices)}, got {value!r}"
                f"{_suggest(str(value), [str(c) for c in choices])}",
                source,
            )
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path, source)
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            raise _fail(path, f"expected a list, got {type(value).__name__}: {value!r}", source)
        return tuple(_coerce(item_tp, v, f"{path}[{i}]", source) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(path, f"expected true/false, got {value!r}", source)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"expected an integer, got {value!r}", source)
        return value
    if tp is float:
        # PyYAML follows YAML 1.1, which reads 5e-3 (no dot) as a string; YAML 1.2 and every
        # user mean the number.
        if isinstance(value, str) and _YAML12_FLOAT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, f"expected a number, got {value!r}", source)
        if not math.isfinite(value):
            # No setting of this stack means anything at inf or nan (a learning rate of .inf
            # would only fail hours later, as a diverged stage).
            raise _fail(path, f"expected a finite number, got {value!r}", source)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(path, f"expected a string, got {value!r}", source)
        return value
    raise _fail(path, f"unsupported type {tp}", source)


def _apply_override(tree: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = tree
    for key in keys[:-1]:
        if isinstance(node, list):
            # Stages are addressed by name: train.stages.<name>.steps=10.
            match = [s for s in node if isinstance(s, dict) and s.get("name") == key]
            if not match:
                raise ConfigError(
                    f"--set {dotted}: no stage named '{key}'; stages: "
                    f"{[s.get('name') for s in node]}"
                )
            node = match[0]
            continue
        node = node.setdefault(key, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        reason = str(e).splitlines()[0]
        raise ConfigError(f"--set {assignment}: the value is not valid YAML ({reason})") from None


def from_dict(data: dict, source: str | None = None) -> Config:
    """Build a validated Config from plain data (the parsed YAML)."""
    return _build(Config, data, "", source)


def load_config(
    path: str | pathlib.Path, overrides: typing.Sequence[str] = (), root: type | None = None
):
    """Load a YAML config, apply `section.key=value` overrides, validate.

    Args:
        path: the YAML file.
        overrides: `section.key=value` strings (values parsed as YAML).
        root: the root dataclass (default `Config`; TP-Net's trainer passes its own).

    Raises:
        ConfigError: naming the dotted key, the file and what was expected.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    for assignment in overrides:
        _apply_override(tree, assignment)
    try:
        return _build(root or Config, tree, "", str(path))
    except ConfigError as e:
        set_by = _override_for(str(e), overrides)
        if set_by is None:
            raise
        # The bad value came from the command line, not the file.
        raise ConfigError(str(e).replace(f"(in {path})", f"(from --set {set_by})", 1)) from None


def _override_for(message: str, overrides: typing.Sequence[str]) -> str | None:
    """The `--set` assignment that wrote the key a ConfigError `message` names, if any."""
    found = re.match(r"config key '([^']+)'", message)
    if not found:
        return None

    # train.stages[structure].steps, train.stages[2].steps and train.stages.structure.steps
    # (--set addresses stages by name) are compared as train.stages.*.steps.
    def pattern(dotted: str) -> str:
        dotted = re.sub(r"\[([^\]]+)\]", r".\1", dotted)
        return re.sub(r"(^|\.)stages\.[^.]+", r"\1stages.*", dotted)

    key = pattern(found.group(1))
    for assignment in overrides:
        dotted = pattern(assignment.split("=", 1)[0].strip())
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return assignment
    return None


# ----------------------------------------------------------------------------------------------
# TP-Net's settings: the one owner, used by the main job's `temporal:` section and by the
# standalone TP-Net config (`keras_pose3d.temporal_config`). Defined last; `Config.temporal`
# builds them lazily.
# ----------------------------------------------------------------------------------------------
# Frames per second of the pose sequences TP-Net is trained on and must be fed. The paper ties
# TP-Net's time steps to time once: poses "beyond 5 time-steps (or 200 ms time-window)" matter
# little (Sect. 4.3), i.e. 40 ms a step, 25 fps. Its other figure, H36M evaluated "on every fifth
# frame" (10 fps of the 50 fps videos), is the evaluation's subsampling, not TP-Net's input.
# docs/training.md ("TP-Net's frame rate") has both readings and the measurement.
TP_NET_FRAME_RATE = 25.0


@dataclasses.dataclass(frozen=True)
class TemporalModel:
    """TP-Net's size and input: N poses per window (`window`), online (N past poses, the target
    last) or semi-online (N/2 each side), two hidden layers of `hidden` units."""

    window: int = 20
    mode: Literal["online", "semi_online"] = "online"
    hidden: int = 4096
    dropout: float = 0.0
    frame_rate: float = TP_NET_FRAME_RATE

    def __post_init__(self):
        _check_positive("model", self, ("window", "hidden", "frame_rate"))
        _check(0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class TemporalTrain:
    """Adam on the L2 error over all windows of the training predictions. `seed` None: the main
    job's `train.seed` in the main job, 0 in a standalone TP-Net run."""

    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-4
    seed: int | None = None

    def __post_init__(self):
        _check_positive("train", self, ("epochs", "batch_size", "learning_rate"))


@dataclasses.dataclass(frozen=True)
class TemporalStageConfig:
    """TP-Net after SAP-Net in one run (the main job, `training/main_job.py`): SAP-Net's
    predictions over the 3D training, validation and test sequences, TP-Net trained on them
    with `model` and `train` (files under RUN_DIR/temporal), the stage-by-stage table and the
    exported `pipeline`. Off by default: a large dataset may run TP-Net as its own job."""

    enabled: bool = False
    model: TemporalModel = TemporalModel()
    train: TemporalTrain = TemporalTrain()
