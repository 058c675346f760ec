"""The paper configs end to end on the raw formats: the README's "Training on the real datasets"
commands, run as written on the fixtures of `tests/fixtures_raw.py`.

`test_readme_commands_on_the_raw_fixtures` reads the commands from the README's training
section, replaces the real datasets' paths with the fixtures' (`REAL_TO_FIXTURE`) and adds only
what the fixtures need: which of their sequences to convert, small crops and one shard
(`JOB_FLAGS`), and `--set` overrides of sizes and step counts for `train` (`TRAIN_SIZES`: a
narrow model, 2 steps per stage, a narrow TP-Net for 2 epochs). The commands run in a temporary
folder holding `configs/` (a link to the repository's), so the configs' relative paths
(`data/...`, `runs/...`, `saved_models/...`) are used as they are. The three Beam jobs run side by
side, then the two `train` commands (independent: their own records, runs and exports). It ends
with the three SavedModels of each run, one request through the pipeline's JPEG signature
(`predict_jpeg_online`) checked against `sap_net` and `tp_net`, and the H36M / 3DHP tables with
TP-Net rows checked against the evaluation step and TP-Net recomputed from the run's files.

The other tests here are fast: the README section itself, the paper configs' values, and the
main job's pieces the e2e test relies on (record rows, kept predictions, split frame rates, the
3DHP job's --frame_rate).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_pose3d import metrics, skeleton
from keras_pose3d.config import load_config
from tests import fixtures_raw as fr

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = "## Training on the real datasets"

# The README's paths of the raw releases -> the fixtures' (under the test's folder).
REAL_TO_FIXTURE = {
    "/data/mpii/valid.h5": "raw/mpii/valid.txt",
    "/data/mpii": "raw/mpii",
    "/data/h36m": "raw/h36m",
    "/data/mpi_inf_3dhp_test_set": "raw/mpi_inf_3dhp_test_set",
    "/data/mpi_inf_3dhp": "raw/mpi_inf_3dhp",
}
# What a fixture needs beside the README's flags: its sequences, small crops, one shard.
SMALL = ["--crop_size", "64", "--num_shards", "1"]
JOB_FLAGS = {
    # The MPII fixture is broken on purpose (4 of 7 persons are dead letters).
    "pipelines.mpii_to_tfrecord": [*SMALL, "--max_dead_letter_fraction", "1"],
    "pipelines.h36m_to_tfrecord": [
        *SMALL,
        "--subjects",
        "S1,S5,S9,S11",
        "--sequences",
        ",".join(f"{s}/{p}" for s, p, _ in fr.E2E_H36M_SEQUENCES),
        "--cameras",
        fr.E2E_H36M_CAMERA,
    ],
    "pipelines.mpi_inf_3dhp_to_tfrecord": [
        *SMALL,
        "--subjects",
        "S1",
        "--cameras",
        "0",
        "--test_sequences",
        "TS1,TS2",
    ],
}
TRAIN_SIZES = [
    "data.input_size=64",
    "data.heatmap_size=16",
    "data.val_examples=16",
    "data.shuffle_buffer=16",
    "model.num_stacks=1",
    "model.num_features=16",
    "model.hourglass_depth=1",
    "model.depth_blocks=1",
    "model.num_modules=1",
    "train.batch_size=4",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.eval_every=100",
    "train.stages.pretrain_2d.steps=2",
    "train.stages.depth_warmup.steps=2",
    "train.stages.structure.steps=2",
    "train.stages.symmetry.steps=2",
    "temporal.model.hidden=64",
    "temporal.train.epochs=2",
    "temporal.train.batch_size=16",
]
H36M_FRAMES = 20  # video frames (50 fps) of every fixture sequence
RATE = 25.0  # TP-Net's rate, what the README's strides / --frame_rate give


def readme_commands() -> list[list[str]]:
    """The `python -m ...` lines of the first bash block of the README's training section."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else len(text)]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, f"no ```bash block in the README's section {SECTION!r}"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.startswith("python")]


def test_readme_training_section_is_the_paper_run():
    commands = readme_commands()
    modules = [c[2] for c in commands]
    assert modules == [
        "pipelines.mpii_to_tfrecord",
        "pipelines.h36m_to_tfrecord",
        "pipelines.mpi_inf_3dhp_to_tfrecord",
        "keras_pose3d.train",
        "keras_pose3d.train",
    ]
    flags = [dict(zip(c[3::2], c[4::2])) for c in commands]
    # 25 fps records: H36M every 2nd frame of 50 fps; 3DHP each sequence at 25 fps.
    assert flags[1]["--stride"] == "2"
    assert flags[2]["--frame_rate"] == "25"
    assert [f["--config"] for f in flags[3:]] == ["configs/h36m.yaml", "configs/mpi_inf_3dhp.yaml"]
    # Only paths differ from what the e2e test runs: every flag value it replaces is a path.
    for command in commands:
        for arg in command:
            assert not arg.startswith("/") or any(arg.startswith(p) for p in REAL_TO_FIXTURE), arg


@pytest.mark.parametrize("name", ["h36m", "mpi_inf_3dhp"])
def test_paper_configs_run_the_whole_method_at_the_papers_size(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert [s.name for s in cfg.train.stages] == [
        "pretrain_2d",
        "depth_warmup",
        "structure",
        "symmetry",
    ]
    assert [s.steps for s in cfg.train.stages] == [200000, 240000, 160000, 80000]
    t = cfg.temporal
    assert (t.enabled, t.model.window, t.model.hidden, t.model.mode) == (True, 20, 4096, "online")
    assert (t.train.epochs, t.model.frame_rate) == (30, RATE)
    assert cfg.report.enabled and cfg.eval.enabled and cfg.export.enabled
    assert cfg.eval.dataset == name
    assert cfg.export.saved_models_dir == f"saved_models/{name}"  # the two runs' own folders
    assert cfg.model.num_features == 256 and cfg.model.num_modules == 2


def test_3dhp_job_frame_rate_gives_each_sequence_its_stride():
    from pipelines.mpi_inf_3dhp_to_tfrecord import train_stride

    assert train_stride("S1", "Seq1", 10, 25.0) == 1  # 25 fps natively
    assert train_stride("S1", "Seq2", 10, 25.0) == 2  # 50 fps
    assert train_stride("S3", "Seq1", 10, 12.5) == 4
    assert train_stride("S1", "Seq1", 10, None) == 10
    with pytest.raises(ValueError, match="S2/Seq1 is 25 fps"):
        train_stride("S2", "Seq1", 10, 20.0)
    with pytest.raises(ValueError, match="S1/Seq1 is 25 fps"):
        train_stride("S1", "Seq1", 10, 50.0)


# ----------------------------------------------------------------------------------------------
# The main job's pieces.
# ----------------------------------------------------------------------------------------------
def _meta(subject, sequence, frame, dataset="h36m", action="Walking", camera="1"):
    return {
        "dataset": dataset,
        "subject": subject,
        "sequence": sequence,
        "action": action,
        "camera": camera,
        "frame": frame,
        "has_3d": True,
    }


def test_record_rows_are_the_rows_at_each_records_own_frame():
    from keras_pose3d.training.main_job import record_rows

    arrays = {
        "sequence_names": np.array(["h36m/S9/Walking 1/Walking/1", "h36m/S9/Walk@2/Walking/1@10"]),
        # sequence 0: frames 0, 2, 4.5 (interpolated), 6; sequence 1 (a part after a gap): 10, 12
        "sequence": np.array([0, 0, 0, 0, 1, 1]),
        "frame": np.array([0.0, 2.0, 4.5, 6.0, 10.0, 12.0]),
    }
    meta = [
        _meta("S9", "Walking 1", 6),
        _meta("S9", "Walking 1", 4),  # between rows: no row at its frame
        _meta("S9", "Walk@2", 12),  # an "@" in a name that is not a part suffix
        _meta("S9", "Walking 1", 0),
        _meta("S11", "Walking 1", 0),  # another subject
    ]
    rows, kept = record_rows(arrays, meta)
    assert rows.tolist() == [3, 5, 0]
    assert kept == [meta[0], meta[2], meta[3]]


def test_kept_predictions_are_reused_until_the_snapshot_records_or_rate_change(tmp_path):
    from keras_pose3d.training.main_job import cached_predictions

    weights = tmp_path / "snapshots" / "03_symmetry.weights.h5"
    weights.parent.mkdir()
    weights.write_bytes(b"w1")
    (tmp_path / "a.tfrecord").write_bytes(b"")
    calls = []

    def compute():
        calls.append(1)
        return {
            "pred": np.full((2, 16, 3), len(calls), np.float32),
            "gt": np.zeros((2, 16, 3), np.float32),
            "sequence": np.zeros(2, np.int32),
            "frame": np.arange(2.0),
            "sequence_names": np.array(["h36m/S9/a/b/c"]),
            "frame_rate": np.float64(25.0),
        }

    records = [str(tmp_path / "*.tfrecord")]

    def get(rate=25.0):
        return cached_predictions(tmp_path, "test", weights, records, rate, compute)

    assert get()["pred"][0, 0, 0] == 1
    again = get()
    assert len(calls) == 1 and again["pred"][0, 0, 0] == 1 and float(again["frame_rate"]) == 25
    assert (tmp_path / "predictions" / "states" / "test__snapshots__03_symmetry.npz").is_file()
    assert get(None)["pred"][0, 0, 0] == 2  # another rate
    (tmp_path / "b.tfrecord").write_bytes(b"")
    assert get(None)["pred"][0, 0, 0] == 3  # another record set
    weights.write_bytes(b"w2 (retrained)")
    assert get(None)["pred"][0, 0, 0] == 4
    assert get(None)["pred"][0, 0, 0] == 4 and len(calls) == 4


def test_split_without_a_documented_rate_is_predicted_as_recorded_and_says_so():
    from keras_pose3d.training.main_job import split_frame_rate

    lines = []
    h36m = [_meta("S9", "Walking 1", 0), _meta("S11", "Eating 1", 2)]
    assert split_frame_rate(h36m, RATE, "test", lines.append) == RATE
    assert lines == []
    mixed = [*h36m, _meta("TS1", "TS1", 5, dataset="mpi_inf_3dhp")]
    assert split_frame_rate(mixed, RATE, "validation", lines.append) is None
    assert "mpi_inf_3dhp/TS1/TS1" in lines[0] and "validation" in lines[0]
    # 2D-only records (MPII) have no sequence rate to know.
    mpii = dict(_meta("", "img.jpg/0", 0, dataset="mpii"), has_3d=False)
    assert split_frame_rate([*h36m, mpii], RATE, "test", lines.append) == RATE


# ----------------------------------------------------------------------------------------------
# End to end.
# ----------------------------------------------------------------------------------------------
def _log_name(command: list[str]) -> str:
    """`<module>` or `<module>_<config stem>` (the two train commands)."""
    config = command[command.index("--config") + 1] if "--config" in command else ""
    return command[2] + (f"_{pathlib.Path(config).stem}" if config else "") + ".log"


def _run_all(commands: list[list[str]], cwd: pathlib.Path, env: dict, logs: pathlib.Path):
    """Start every command at once; wait for all; fail naming the ones that failed."""
    procs = []
    for command in commands:
        log = (logs / _log_name(command)).open("w")
        procs.append(
            (
                command,
                log,
                subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT),
            )
        )
    failed = []
    for command, log, proc in procs:
        rc = proc.wait(timeout=540)
        log.close()
        if rc != 0:
            tail = pathlib.Path(log.name).read_text()[-3000:]
            failed.append(f"{shlex.join(command)} -> exit {rc}\n{tail}")
    assert not failed, "\n\n".join(failed)


def _fixture_commands(work: pathlib.Path) -> list[list[str]]:
    out = []
    for command in readme_commands():
        args = []
        for arg in command[1:]:
            for real, fixture in REAL_TO_FIXTURE.items():  # longest real paths first
                if arg.startswith(real):
                    arg = str(work / fixture) + arg[len(real) :]
                    break
            args.append(arg)
        module = command[2]
        extra = JOB_FLAGS.get(module, [])
        if module == "keras_pose3d.train":
            extra = [x for s in TRAIN_SIZES for x in ("--set", s)]
        out.append([sys.executable, *args, *extra])
    return out


def _manifest(work: pathlib.Path, name: str) -> dict:
    return json.loads((work / "data" / name / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.beam
@pytest.mark.timeout(900)
def test_readme_commands_on_the_raw_fixtures(tmp_path):
    import tensorflow as tf

    from keras_pose3d.models import loading
    from keras_pose3d.serving.signatures import read_metadata
    from keras_pose3d.training import temporal

    t0 = time.time()
    work = tmp_path
    fr.write_mpii_fixture(work / "raw" / "mpii")
    (work / "raw" / "mpii" / "valid.txt").write_text("1 0\n")  # one validation person
    fr.write_h36m_motion_fixture(work / "raw" / "h36m", num_frames=H36M_FRAMES)
    m3 = fr.write_3dhp_motion_fixture(
        work / "raw" / "mpi_inf_3dhp", work / "raw" / "mpi_inf_3dhp_test_set"
    )
    (work / "configs").symlink_to(REPO / "configs")
    (work / "logs").mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    commands = _fixture_commands(work)
    _run_all(commands[:3], work, env, work / "logs")
    t_jobs = time.time() - t0

    # Records at 25 fps: every 2nd of the H36M fixture's 20 frames; 3DHP Seq1 (25 fps) every
    # frame, Seq2 (50 fps) every 2nd; the test set's valid frames.
    per_seq = H36M_FRAMES // 2
    h36m = _manifest(work, "h36m")
    assert {s: v["num_examples"] for s, v in h36m["splits"].items()} == {
        "train": 3 * per_seq,
        "test": 3 * per_seq,
    }
    want_3dhp_train = sum(
        round(n * RATE / (50 if s == "Seq2" else 25)) for (_, s), n in m3["train_frames"].items()
    )
    mpi3 = _manifest(work, "mpi_inf_3dhp")
    assert mpi3["splits"]["train"]["num_examples"] == want_3dhp_train
    assert mpi3["splits"]["test"]["num_examples"] == sum(m3["test_frames"].values())
    assert _manifest(work, "mpii")["splits"]["train"]["num_examples"] == 2

    _run_all(commands[3:], work, env, work / "logs")
    t_train = time.time() - t0 - t_jobs

    # --- H36M: the paper's tables with TP-Net rows, the same frames as the evaluation step ---
    run = work / "runs" / "h36m"
    paper = json.loads((run / "paper_tables" / "h36m.json").read_text())
    evaluated = json.loads((run / "eval" / "h36m.json").read_text())
    assert paper["scored"] == paper["records"] == 3 * per_seq
    assert paper["h36m"]["n_frames"] == paper["h36m_tp_net"]["n_frames"] == 3 * per_seq
    assert sorted(
        paper["h36m_tp_net"]["protocols"]["MPJPE (Protocol 1), 16 MPII joints"]["per_action"]
    ) == ["Directions", "Eating", "Walking"]
    for protocol, figures in evaluated["h36m"]["protocols"].items():
        ours = paper["h36m"]["protocols"][protocol]
        assert ours["frame-weighted mean"] == pytest.approx(
            figures["frame-weighted mean"], abs=0.01
        )
    # TP-Net's row, recomputed from the run's files: tp_net.keras over the kept predictions.
    with np.load(run / "predictions" / "validation.npz") as z:
        test = {k: z[k] for k in z.files}
    assert float(test["frame_rate"]) == RATE
    tp = loading.load_float32(run / "temporal" / "tp_net.keras")
    windows, gt, _ = temporal.sequence_windows(test, tp.window, tp.mode)
    refined = np.asarray(tp.predict(windows, verbose=0))
    p1 = paper["h36m_tp_net"]["protocols"]["MPJPE (Protocol 1), 16 MPII joints"]
    assert p1["frame-weighted mean"] == pytest.approx(
        float(np.mean(metrics.mpjpe(refined, gt, root=skeleton.ROOT))), rel=1e-4
    )
    assert p1["frame-weighted mean"] != pytest.approx(
        paper["h36m"]["protocols"]["MPJPE (Protocol 1), 16 MPII joints"]["frame-weighted mean"],
        rel=1e-3,
    )
    table = (run / "main_job_table.md").read_text()
    assert (
        "| SAP-Net + TP-Net |" in table
        and "ours + TP-Net: MPJPE (Protocol 1), 17 H36M joints" in table
    )

    # --- 3DHP: Table 5 with TP-Net rows over the valid test frames, at their recorded frames ---
    run3 = work / "runs" / "mpi_inf_3dhp"
    paper3 = json.loads((run3 / "paper_tables" / "mpi_inf_3dhp.json").read_text())
    evaluated3 = json.loads((run3 / "eval" / "mpi_inf_3dhp.json").read_text())
    n_test = sum(m3["test_frames"].values())
    assert paper3["mpi_inf_3dhp_tp_net"]["rows"]["All"]["frames"] == n_test
    for figure in ("3D-PCK@150mm", "MPJPE"):
        key = next(k for k in evaluated3["mpi_inf_3dhp"]["rows"]["All"] if k.startswith(figure))
        assert paper3["mpi_inf_3dhp"]["rows"]["All"][key] == pytest.approx(
            evaluated3["mpi_inf_3dhp"]["rows"]["All"][key], abs=0.01
        )
    log3 = (work / "logs" / "keras_pose3d.train_mpi_inf_3dhp.log").read_text()
    assert "have no documented frame rate" in log3
    assert "ours + TP-Net: All" in (run3 / "main_job_table.md").read_text()

    # --- The three SavedModels of each run; one request through the pipeline's JPEG signature ---
    for name in ("h36m", "mpi_inf_3dhp"):
        exported = work / "saved_models" / name
        assert sorted(p.name for p in exported.iterdir() if (p / "1").is_dir()) == [
            "pipeline",
            "sap_net",
            "tp_net",
        ]
    exported = work / "saved_models" / "h36m"
    pipeline = tf.saved_model.load(str(exported / "pipeline" / "1"))
    sap = tf.saved_model.load(str(exported / "sap_net" / "1"))
    tp_serving = tf.saved_model.load(str(exported / "tp_net" / "1"))
    assert read_metadata(tp_serving)["frame_rate"] == RATE
    from keras_pose3d.data import features

    first = next(
        iter(
            tf.data.TFRecordDataset(
                [str(p) for p in sorted((work / "data" / "h36m").glob("test-*"))]
            )
        )
    )
    jpeg = features.parse_example(first, decode_image=False)["image_jpeg"]
    history = tf.constant(test["pred"][None, : tp.window - 1], tf.float32)
    out = pipeline.signatures["predict_jpeg_online"](images=tf.reshape(jpeg, [1]), history=history)
    alone = sap.signatures["predict_jpeg"](images=tf.reshape(jpeg, [1]))
    np.testing.assert_allclose(
        out["joints_3d_mm"].numpy(), alone["joints_3d_mm"].numpy(), atol=1e-3
    )
    window = tf.concat([history, out["joints_3d_root_relative_mm"][:, None]], axis=1)
    refined_alone = tp_serving.signatures["refine"](poses=window)["pose_3d_mm"].numpy()
    np.testing.assert_allclose(out["joints_3d_refined_mm"].numpy(), refined_alone, atol=1e-3)
    assert (
        np.abs(
            out["joints_3d_refined_mm"].numpy() - out["joints_3d_root_relative_mm"].numpy()
        ).max()
        > 1.0
    )

    total = time.time() - t0
    print(
        f"\ne2e: Beam jobs {t_jobs:.0f} s, the two train runs {t_train:.0f} s, total {total:.0f} s"
    )
