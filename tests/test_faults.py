"""Issue 23: never report success on a broken result, never destroy a good one.

Failed writes (a full disk, a read-only folder), corrupt shards, half-corrupt JPEGs, symlinks
leaving the input root, and the one error convention of every entry point (`cli`).
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml

from keras_pose3d import atomic_files, cli, infer
from keras_pose3d.data import dataset
from keras_pose3d.data.manifest import MANIFEST_NAME, manifest_is_complete, read_manifest
from keras_pose3d.data.readers import files, images
from keras_pose3d.evaluate import main as evaluate_main
from keras_pose3d.evaluation import predictions_file
from keras_pose3d.evaluation.records import read_record_meta, record_id
from keras_pose3d.inference import runner
from tests import fixtures_raw as fr
from tests.test_evaluate import _write_records
from tests.test_infer import _ConstantPredictor, _video

ROOT = os.geteuid() == 0  # permission bits do not stop root: read-only is simulated then


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def read_only(monkeypatch, request):
    """Makes a folder read-only: chmod 555 for a normal user (restored afterwards); for root,
    who ignores permission bits, `open` for writing and `mkdir` under it fail with EROFS, as
    on a read-only mount (the Python-level writers only)."""

    def make(folder: pathlib.Path) -> pathlib.Path:
        folder.mkdir(parents=True, exist_ok=True)
        if not ROOT:
            folder.chmod(0o555)
            request.addfinalizer(lambda: folder.chmod(0o755))
            return folder
        prefix = str(folder)

        def inside(path) -> bool:
            return os.path.abspath(os.fspath(path)).startswith(prefix)

        real_open, real_mkdir = open, pathlib.Path.mkdir

        def fake_open(path, mode="r", *args, **kwargs):
            if inside(path) and any(c in mode for c in "wax+"):
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return real_open(path, mode, *args, **kwargs)

        def fake_mkdir(self, *args, **kwargs):
            if inside(self) and not self.is_dir():
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(atomic_files, "open", fake_open, raising=False)
        monkeypatch.setattr(pathlib.Path, "mkdir", fake_mkdir)
        return folder

    return make


# ----------------------------------------------------------------------------------------------
# infer: a failed write leaves OUT as it was.
# ----------------------------------------------------------------------------------------------
def _frames(folder: pathlib.Path, n: int, seed: int) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 255, (40, 30, 3), np.uint8))
    return folder


@pytest.fixture
def images_run(tmp_path, monkeypatch):
    """A good first run of `infer` on 4 images (render on) into OUT; returns its argv."""
    monkeypatch.setattr(runner, "FramePredictor", lambda *a, **k: _ConstantPredictor())
    frames = _frames(tmp_path / "frames", 4, seed=1)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[2, 2, 28, 38]] * 4))
    out = tmp_path / "out"
    argv = ["--images", str(frames), "--out", str(out), "--saved-model", "unused"]
    argv += ["--boxes", str(boxes)]
    assert infer.main(argv) == 0
    # The second run differs in every file: other pixels (renders) and frame times (JSON, BVH).
    _frames(frames, 4, seed=2)
    return out, argv + ["--fps", "10"]


def test_infer_failed_image_write_exits_2_and_keeps_previous_outputs(
    images_run, monkeypatch, capsys
):
    out, argv = images_run
    before = _tree(out)
    assert {"render/frame_000003.jpg", "json/frame_000003.json", "motion.bvh", "boxes.json"} <= set(
        before
    )
    capsys.readouterr()
    real = cv2.imwrite
    monkeypatch.setattr(
        cv2,
        "imwrite",
        lambda path, image, *a: False if path.endswith("frame_000002.jpg") else real(path, image),
    )
    assert infer.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out}/render/frame_000002.jpg: cv2.imwrite failed")
    assert "it keeps the previous run's outputs" in line
    assert _tree(out) == before  # byte for byte, nothing added
    assert not list(out.glob(".tmp-*"))
    # The same run with a working writer replaces the files.
    monkeypatch.setattr(cv2, "imwrite", real)
    assert infer.main(argv) == 0
    after = _tree(out)
    assert set(after) == set(before)
    changed = ["render/frame_000002.jpg", "json/frame_000001.json", "motion.bvh"]
    assert all(after[k] != before[k] for k in changed)


def test_infer_failed_json_write_exits_2_and_keeps_previous_outputs(
    images_run, monkeypatch, capsys
):
    out, argv = images_run
    before = _tree(out)
    real = pathlib.Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name == "frame_000001.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    capsys.readouterr()
    assert infer.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(
        f"error: cannot write {out}/json/frame_000001.json: No space left on device"
    )
    assert _tree(out) == before and not list(out.glob(".tmp-*"))


_VIDEO_WRITER = cv2.VideoWriter


class _DroppingWriter:
    """cv2.VideoWriter that loses every frame after the first (what a full disk does: FFmpeg
    prints `Failed to write frame` and goes on)."""

    def __init__(self, *args):
        self._writer = _VIDEO_WRITER(*args)
        self._count = 0

    def isOpened(self):
        return self._writer.isOpened()

    def write(self, image):
        self._count += 1
        if self._count == 1:
            self._writer.write(image)

    def release(self):
        self._writer.release()


class _ClosedWriter(_DroppingWriter):
    def isOpened(self):
        return False


@pytest.mark.parametrize(
    "writer, reason",
    [
        (_DroppingWriter, "the written video does not read back (1 of 6 frames)"),
        (_ClosedWriter, "cv2.VideoWriter cannot open it"),
    ],
)
def test_infer_video_that_does_not_read_back_exits_2(tmp_path, monkeypatch, capsys, writer, reason):
    monkeypatch.setattr(runner, "FramePredictor", lambda *a, **k: _ConstantPredictor())
    video = tmp_path / "in.mp4"
    _video(video)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[10, 4, 50, 44]] * 6))
    out = tmp_path / "out"
    argv = ["--video", str(video), "--out", str(out), "--saved-model", "unused"]
    argv += ["--boxes", str(boxes)]
    assert infer.main(argv) == 0
    capture = cv2.VideoCapture(str(out / "render.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    before = _tree(out)
    monkeypatch.setattr(cv2, "VideoWriter", writer)
    capsys.readouterr()
    assert infer.main(argv + ["--fps", "5"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out}/render.mp4: {reason}")
    assert _tree(out) == before and not list(out.glob(".tmp-*"))


def test_infer_removes_the_temporary_folder_of_a_killed_run(images_run):
    out, argv = images_run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace("-", "_") or "host"
    stale = out / f"{atomic_files.TMP_PREFIX}{host}-{dead.pid}-0123abcd-infer"
    (stale / "json").mkdir(parents=True)
    (stale / "json" / "frame_000000.json").write_text("{}")
    assert infer.main(argv) == 0
    assert not stale.exists() and not list(out.glob(".tmp-*"))


def test_infer_read_only_out_is_one_error_line(tmp_path, monkeypatch, capsys, read_only):
    monkeypatch.setattr(runner, "FramePredictor", lambda *a, **k: _ConstantPredictor())
    frames = _frames(tmp_path / "frames", 1, seed=1)
    out = read_only(tmp_path / "ro") / "out"
    argv = ["--images", str(frames), "--out", str(out), "--saved-model", "unused", "--no-render"]
    assert infer.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {out}: cannot create the output folder (")


# ----------------------------------------------------------------------------------------------
# Strict JPEG decoding: corrupt scan data with the end marker intact.
# ----------------------------------------------------------------------------------------------
def _zero_middle(path: pathlib.Path, count: int = 400) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + count] = bytes(count)
    path.write_bytes(bytes(data))
    assert data.endswith(b"\xff\xd9")  # the end marker is intact: not a truncated file


def test_decode_bgr_refuses_corrupt_scan_data(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), rng.integers(0, 256, (120, 320, 3), dtype=np.uint8))
    good = path.read_bytes()
    assert images.decode_bgr(good).shape == (120, 320, 3)
    _zero_middle(path)
    # OpenCV alone returns an image (and prints libjpeg's warning).
    assert cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(ValueError, match=r"^corrupt JPEG data \(decoder: Corrupt JPEG data: "):
        images.decode_bgr(path.read_bytes())
    png = cv2.imencode(".png", np.zeros((4, 5, 3), np.uint8))[1].tobytes()
    assert images.decode_bgr(png).shape == (4, 5, 3)


@pytest.mark.beam
def test_mpii_job_dead_letters_a_zeroed_jpeg_and_a_symlink_leaving_the_root(tmp_path):
    from pipelines import mpii_to_tfrecord

    fr.write_mpii_fixture(tmp_path / "mpii")
    image_dir = tmp_path / "mpii" / "images"
    corrupt = image_dir / "000000001.jpg"
    _zero_middle(corrupt)
    # 000000007.jpg moved outside the root, a link left in its place.
    outside = tmp_path / "elsewhere.jpg"
    (image_dir / "000000007.jpg").rename(outside)
    (image_dir / "000000007.jpg").symlink_to(outside)
    # A link that stays inside the root is fine: 000000002.jpg through a sub-folder.
    (image_dir / "sub").mkdir()
    (image_dir / "000000002.jpg").rename(image_dir / "sub" / "2.jpg")
    (image_dir / "000000002.jpg").symlink_to(image_dir / "sub" / "2.jpg")
    out = tmp_path / "out"
    manifest = mpii_to_tfrecord.run(["--input_dir", str(tmp_path / "mpii"), *fr.job_flags(out)])
    with open(out / "dead_letter-00000-of-00001.jsonl") as f:
        letters = {(d["id"], d["stage"]): d["reason"] for d in map(json.loads, f)}
    reason = (
        r"corrupt JPEG data \(decoder: Corrupt JPEG data: \d+ extraneous bytes before marker "
        rf"0xd9\): {re.escape(str(corrupt))}"
    )
    for person in ("000000001.jpg/0", "000000001.jpg/1"):
        assert re.fullmatch(reason, letters[(person, "image")])
    assert letters[("000000007.jpg/0", "path")] == (
        f"{image_dir / '000000007.jpg'} is a link to {outside}, outside the input root {image_dir}"
    )
    assert not any(key[0].startswith("000000002") for key in letters)
    # The one record left is image 2's person, read through its link inside the root.
    assert manifest["num_examples"] == 1 and manifest["dead_letter_by_stage"]["path"] == 1
    assert manifest["dead_letter_by_stage"]["image"] == 3  # with the corrupt 000000004.jpg


def test_3dhp_test_job_dead_letters_a_zeroed_jpeg(tmp_path):
    from pipelines import mpi_inf_3dhp_to_tfrecord

    fr.write_3dhp_test_fixture(tmp_path, size=80)
    image = tmp_path / "TS1" / "imageSequence" / "img_000002.jpg"  # frame 1
    rng = np.random.default_rng(5)
    cv2.imwrite(str(image), rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    _zero_middle(image)
    calib = str(tmp_path / "test_util" / "camera_calibration" / "ts1-4cameras.calib")
    dofn = mpi_inf_3dhp_to_tfrecord.TestFramesToRecords(str(tmp_path), 32)
    out = list(dofn.process({"seq": "TS1", "frames": [0, 1, 4], "calib": calib}))
    records = [o[1] for o in out if isinstance(o, tuple)]
    letters = [o.value for o in out if not isinstance(o, tuple)]
    assert records == ["TS1/000000", "TS1/000004"]
    assert [(d["id"], d["stage"]) for d in letters] == [("TS1/000001", "image")]
    assert letters[0]["reason"].startswith("corrupt JPEG data (decoder: Corrupt JPEG data: ")
    assert letters[0]["reason"].endswith(f": {image}")


def test_symlink_checks(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"x")
    (tmp_path / "out.jpg").write_bytes(b"y")
    (root / "in.jpg").symlink_to(root / "a" / "x.jpg")
    (root / "out.jpg").symlink_to(tmp_path / "out.jpg")
    (root / "dir").symlink_to(tmp_path)  # a folder link: everything under it is outside
    assert files.leaves_root(root, "a/x.jpg") is None
    assert files.leaves_root(root, "in.jpg") is None
    assert files.leaves_root(root, "out.jpg") == (
        f"{root / 'out.jpg'} is a link to {tmp_path / 'out.jpg'}, outside the input root {root}"
    )
    assert "outside the input root" in files.leaves_root(root, "dir/out.jpg")
    assert "leaves the input root" in files.leaves_root(root, "../out.jpg")
    # A root that is itself a link: what is inside it stays inside.
    (tmp_path / "link_to_root").symlink_to(root)
    assert files.leaves_root(tmp_path / "link_to_root", "in.jpg") is None
    assert files.resolves_outside("gs://bucket/root", "gs://bucket/root/x.jpg") is None


# ----------------------------------------------------------------------------------------------
# Corrupt shards and stored predictions: one `error:` line naming the file.
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def shards(tmp_path):
    """Two 3DHP validation shards (the second one with 16 bytes flipped mid-file) and a
    predictions .npz for the records of the good one."""
    good = tmp_path / "val-00000.tfrecord"
    _write_records(good, n=6)
    meta = read_record_meta([str(good)])
    gt = np.stack([m["joints_3d"] for m in meta])
    npz = predictions_file.save_pose_predictions(
        tmp_path / "p.npz", [record_id(m) for m in meta], gt
    )
    bad = tmp_path / "val-00001.tfrecord"
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    bad.write_bytes(bytes(data))
    return good, bad, npz, gt


def test_flipped_bytes_shard_is_named_by_evaluate(shards, tmp_path, capsys):
    good, bad, npz, _ = shards
    argv = ["--dataset", "mpi_inf_3dhp", "--predictions", str(npz), "--out", str(tmp_path / "o")]
    assert evaluate_main(argv + ["--records", str(tmp_path / "val-*.tfrecord")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {bad}: corrupted record at ")
    assert "regenerate it with its data job" in line
    # The offset TensorFlow reports is the one found in that shard.
    offset = int(line.split("corrupted record at ")[1].split()[0])
    assert dataset.find_corrupt_shard([str(good), str(bad)], offset) == (
        str(bad),
        f"corrupted record at {offset}",
    )
    assert dataset.find_corrupt_shard([str(good)]) is None


def test_flipped_bytes_shard_is_named_by_train(shards, tmp_path, monkeypatch, capsys):
    """train.main names the shard among the config's record patterns (a real run, measured:
    `error: .../train-00000-of-00001.tfrecord: corrupted record at 148526 (...)`); here the
    run is a read of the records, as the trainer's input pipeline does."""
    from keras_pose3d import train
    from keras_pose3d.training import run

    _, bad, _, _ = shards

    def reads_records(cfg, run_dir=None):
        for _ in tf.data.TFRecordDataset(dataset.list_files(list(cfg.data.train_patterns()))):
            pass

    monkeypatch.setattr(run, "train", reads_records)
    config = pathlib.Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    argv = ["--config", str(config), "--set", f"data.train_files=['{tmp_path}/val-*.tfrecord']"]
    assert train.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {bad}: corrupted record at ")


def test_npy_and_object_npz_predictions_are_one_error_line(shards, tmp_path, capsys):
    good, _, _, gt = shards
    npy = tmp_path / "x.npy"
    np.save(npy, gt)
    obj = tmp_path / "obj.npz"
    np.savez(obj, record_id=np.array(["a"] * len(gt), dtype=object), pose_3d_mm=gt)
    base = ["--dataset", "mpi_inf_3dhp", "--records", str(good), "--out", str(tmp_path / "o")]
    assert evaluate_main(base + ["--predictions", str(npy)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {npy}: a single ndarray (an .npy file), expected an .npz")
    assert evaluate_main(base + ["--predictions", str(obj)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == (
        f"error: {obj}: key 'record_id' cannot be read as a plain array (Object arrays cannot "
        "be loaded when allow_pickle=False)"
    )


# ----------------------------------------------------------------------------------------------
# Read-only and full targets found at start.
# ----------------------------------------------------------------------------------------------
def test_check_writable(tmp_path, monkeypatch):
    atomic_files.check_writable(tmp_path / "new" / "run")
    assert (tmp_path / "new" / "run").is_dir() and not list((tmp_path / "new" / "run").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        atomic_files.check_writable(tmp_path / "file")
    full = tmp_path / "full"
    full.mkdir()
    real_open = open

    def no_space(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "w" in mode:
            handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return handle

    monkeypatch.setattr(atomic_files, "open", no_space, raising=False)
    with pytest.raises(OSError, match="output folder is not writable") as info:
        atomic_files.check_writable(full)
    assert info.value.filename == str(full) and info.value.errno == errno.ENOSPC
    assert not list(full.iterdir())  # the probe is removed
    assert cli.error_message(info.value) == (
        f"{full}: output folder is not writable (No space left on device)"
    )


@pytest.mark.parametrize("target", ["train.run_dir", "export.saved_models_dir"])
def test_train_read_only_target_is_one_error_line_before_any_work(
    tmp_path, monkeypatch, capsys, read_only, target
):
    from keras_pose3d import train
    from keras_pose3d.training import run

    ro = read_only(tmp_path / "ro")
    paths = {"train.run_dir": tmp_path / "run", "export.saved_models_dir": tmp_path / "sm"}
    paths[target] = ro / "target"
    monkeypatch.setattr(run, "ensure_data", lambda *a, **k: pytest.fail("data before check"))
    config = pathlib.Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    argv = ["--config", str(config), *(f"--set={k}={v}" for k, v in paths.items())]
    assert train.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {ro / 'target'}: cannot create the output folder (")


@pytest.mark.beam
def test_beam_job_read_only_output_is_one_error_line(tmp_path, capsys, read_only):
    from pipelines import mpii_to_tfrecord

    fr.write_mpii_fixture(tmp_path / "mpii")
    # As root, TensorFlow (C++) still creates the folder: the probe write is what fails.
    out = read_only(tmp_path / "ro") / "out"
    argv = ["--input_dir", str(tmp_path / "mpii"), *fr.job_flags(out)]
    assert mpii_to_tfrecord.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {out}: ")
    assert "not writable" in line or "cannot create" in line


@pytest.mark.beam
def test_beam_job_full_disk_mid_run_is_one_error_line_and_incomplete(tmp_path, monkeypatch, capsys):
    from pipelines import mpii_to_tfrecord, sharded_write

    fr.write_mpii_fixture(tmp_path / "mpii")
    out = tmp_path / "out"

    def full_disk(path, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")

    monkeypatch.setattr(sharded_write, "write_shard_file", full_disk)
    argv = ["--input_dir", str(tmp_path / "mpii"), *fr.job_flags(out)]
    assert mpii_to_tfrecord.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: mpii: writing {out} failed: ")
    assert "No space left on device" in line and "No complete manifest.json" in line
    assert not manifest_is_complete(str(out))


def test_mark_incomplete_rewrites_a_complete_manifest(tmp_path):
    from pipelines import running

    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"complete": True, "problems": []}))
    running.mark_incomplete(str(tmp_path), "the job failed: RuntimeError: short shard")
    assert read_manifest(str(tmp_path)) == {
        "complete": False,
        "problems": ["the job failed: RuntimeError: short shard"],
    }


# ----------------------------------------------------------------------------------------------
# The convention itself.
# ----------------------------------------------------------------------------------------------
def _entry(error: BaseException):
    seen = []

    @cli.exits_cleanly
    def main(argv=None):
        seen.append(argv)
        raise error

    return main, seen


@pytest.mark.parametrize(
    "error, line",
    [
        (OSError(errno.EROFS, "Read-only file system", "/x/run"), "/x/run: Read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), "/x: Permission denied"),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"),
            "/a: Invalid cross-device link (-> /b)",
        ),
        (KeyError("config key 'x' missing"), "config key 'x' missing"),
        (
            tf.errors.DataLossError(
                None, None, "{{function_node __wrapped__X}} corrupted record at 13 [Op:Iter]"
            ),
            "corrupted record at 13",
        ),
        (
            tf.errors.PermissionDeniedError(None, None, "/ro/x; Read-only file system"),
            "/ro/x; Read-only file system",
        ),
    ],
)
def test_exits_cleanly_prints_one_line(error, line, capsys):
    main, _ = _entry(error)
    assert main([]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"


def test_cli_imports_no_tensorflow():
    code = "import sys, keras_pose3d.cli; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1])


def test_exits_cleanly_yaml_bugs_and_debug(capsys, monkeypatch):
    try:
        yaml.safe_load("a: [1,\n")
    except yaml.YAMLError as err:
        main, _ = _entry(err)
    assert main([]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: while parsing a flow node expected the node content")
    assert line.endswith('in "<unicode string>", line 2, column 1: ^')
    main, _ = _entry(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main([])
    # --debug is taken out of argv and shows the traceback above the line; so does KP3D_DEBUG.
    main, seen = _entry(OSError(errno.ENOSPC, "No space left on device", "/d"))
    assert main(["--x", "--debug"]) == 2
    err = capsys.readouterr().err
    assert seen == [["--x"]] and "Traceback" in err
    assert err.endswith("error: /d: No space left on device\n")
    assert main(["--x"]) == 2 and "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("KP3D_DEBUG", "1")
    assert main(["--x"]) == 2 and "Traceback" in capsys.readouterr().err
