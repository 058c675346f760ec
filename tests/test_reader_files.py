"""Raw-file access of the readers: gfile paths, local copies, name safety, strict decoding,
truncated videos."""

from __future__ import annotations

import os
import uuid

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.data.readers import files, h36m, images
from tests import fixtures_raw as fr
from tests.conftest import require_realdata


def _ram_dir() -> str:
    return f"ram://kp3d-{uuid.uuid4().hex}"


# ----------------------------------------------------------------------------------------------
# Paths.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, reason",
    [
        ("005808361.jpg", None),
        ("sub/dir/x.jpg", None),
        ("a/../x.jpg", None),  # stays inside
        ("../x.jpg", "leaves the input root"),
        ("a/../../x.jpg", "leaves the input root"),
        ("..\\x.jpg", "leaves the input root"),
        ("..", "leaves the input root"),
        ("/etc/passwd", "is absolute"),
        ("\\\\server\\x.jpg", "is absolute"),
        ("C:\\images\\x.jpg", "is absolute"),
        ("gs://other-bucket/x.jpg", "is a URL"),
        ("", "empty file name"),
    ],
)
def test_escapes_root(name, reason):
    got = files.escapes_root(name)
    if reason is None:
        assert got is None
    else:
        assert reason in got


def test_join_and_absolute_keep_urls():
    assert files.join("gs://bucket/mpii", "images", "x.jpg") == "gs://bucket/mpii/images/x.jpg"
    assert files.join("/data/mpii", "images") == os.path.join("/data/mpii", "images")
    assert files.absolute("gs://bucket/valid.h5") == "gs://bucket/valid.h5"
    assert files.absolute("valid.h5") == os.path.abspath("valid.h5")
    assert files.is_local("/x") and files.is_local("file:///x") and not files.is_local("s3://b/x")


def test_read_bytes_and_local_copy_of_a_ram_file():
    root = _ram_dir()
    tf.io.gfile.makedirs(root)
    path = f"{root}/camera.calibration"
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(b"payload")
    assert files.read_bytes(path) == b"payload" and files.isfile(path) and files.isdir(root)
    with files.local_copy(path) as local:
        assert local != path and os.path.basename(local) == "camera.calibration"
        with open(local, "rb") as f:
            assert f.read() == b"payload"
    assert not os.path.exists(local)  # the temporary copy is gone
    # Errors raised about the copy name the original file.
    with pytest.raises(ValueError, match=f"^{path}: bad$"), files.local_copy(path) as local:
        raise ValueError(f"{local}: bad")
    with pytest.raises(FileNotFoundError, match=f"calib not found: {root}/missing"):
        files.read_bytes(f"{root}/missing", "calib")
    with pytest.raises(FileNotFoundError, match=f"image not found: {root} is a directory"):
        files.read_bytes(root, "image")
    with (
        pytest.raises(FileNotFoundError, match="video not found"),
        files.local_copy(f"{root}/missing.mp4", "video"),
    ):
        pass


# ----------------------------------------------------------------------------------------------
# Strict image decoding.
# ----------------------------------------------------------------------------------------------
def _jpeg(h=48, w=64, seed=0) -> tuple[np.ndarray, bytes]:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return img, buf.tobytes()


def test_complete_jpeg_decodes_like_opencv():
    _, data = _jpeg()
    np.testing.assert_array_equal(
        images.decode_bgr(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    )
    # Zero padding after the end marker (some writers do it) is accepted.
    np.testing.assert_array_equal(images.decode_bgr(data + b"\x00" * 7), images.decode_bgr(data))


def test_truncated_jpeg_is_refused_although_imread_accepts_it(tmp_path):
    _, data = _jpeg(80, 96)
    cut = data[: int(len(data) * 0.4)]
    # cv2.imread (the jobs' former reader) returns it with the missing rows grey (128).
    (tmp_path / "cut.jpg").write_bytes(cut)
    grey = cv2.imread(str(tmp_path / "cut.jpg"), cv2.IMREAD_COLOR)
    assert grey.shape == (80, 96, 3) and np.all(grey[-8:] == 128)
    with pytest.raises(ValueError, match=r"truncated JPEG \(no end-of-image marker 0xFFD9"):
        images.decode_bgr(cut)
    with pytest.raises(ValueError, match="truncated JPEG"):
        images.decode_bgr(data[:-1])


def test_png_must_end_with_iend_and_other_bytes_are_refused():
    img, _ = _jpeg(seed=1)
    _, buf = cv2.imencode(".png", img)
    data = buf.tobytes()
    np.testing.assert_array_equal(images.decode_bgr(data), img)  # lossless round trip
    with pytest.raises(ValueError, match="truncated PNG"):
        images.decode_bgr(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a JPEG or PNG"):
        images.decode_bgr(b"GIF89a....")
    with pytest.raises(ValueError, match="empty file"):
        images.decode_bgr(b"")
    # A complete container whose content is garbage still fails, in OpenCV.
    with pytest.raises(ValueError, match="cannot decode image"):
        images.decode_bgr(b"\xff\xd8\xff" + b"\x00" * 50 + b"\xff\xd9")


@pytest.mark.realdata
@pytest.mark.parametrize(
    "parts",
    [
        ("mmpose_samples", "mpii", "004645041.jpg"),
        ("mmpose_samples", "mpi_inf_3dhp", "TS1_002001.jpg"),
        (
            "mmpose_samples",
            "h36m",
            "S1",
            "S1_Directions_1.54138969",
            "S1_Directions_1.54138969_000001.jpg",
        ),
    ],
)
def test_real_jpegs_pass_the_strict_check(parts):
    data = require_realdata(*parts).read_bytes()
    assert images.check_complete(data) is None
    np.testing.assert_array_equal(
        images.decode_bgr(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    )


# ----------------------------------------------------------------------------------------------
# Videos: truncation, remote files.
# ----------------------------------------------------------------------------------------------
def test_truncated_avi_raises_after_its_frames(tmp_path):
    path = tmp_path / "video_0.avi"
    fr._write_video(path, 20, (64, 48), "MJPG")
    data = path.read_bytes()
    complete = h36m.VideoReader(path)
    assert len(list(complete)) == 20 and complete.frames_announced == 20
    assert not complete.truncated
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    reader = h36m.VideoReader(cut)
    seen = []
    with pytest.raises(ValueError, match=r"cut.avi: truncated video: the stream ends after \d+"):
        for index, _ in reader:
            seen.append(index)
    assert 0 < reader.frames_total == len(seen) < 20 and reader.truncated
    # A count known from elsewhere (H36M metadata.xml) that the stream reaches settles it.
    settled = h36m.VideoReader(cut, expected_frames=reader.frames_total)
    assert len(list(settled)) == reader.frames_total and not settled.truncated


def test_truncated_mp4_cannot_be_opened(tmp_path):
    path = tmp_path / "Walking.54138969.mp4"
    fr._write_video(path, 12, (64, 48), "mp4v")
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(ValueError, match="cannot open video"):
        list(h36m.VideoReader(path))


def test_video_reader_reads_a_ram_video_like_a_local_one(tmp_path):
    path = tmp_path / "Photo.58860488.mp4"
    fr._write_video(path, 7, (64, 48), "mp4v")
    remote = f"{_ram_dir()}/Photo.58860488.mp4"
    tf.io.gfile.makedirs(os.path.dirname(remote))
    tf.io.gfile.copy(str(path), remote)
    local = [(i, f) for i, f in h36m.VideoReader(path, stride=2)]
    got = [(i, f) for i, f in h36m.VideoReader(remote, stride=2)]
    assert [i for i, _ in got] == [0, 2, 4, 6]
    for (i, a), (j, b) in zip(local, got):
        assert i == j
        np.testing.assert_array_equal(a, b)


def test_remote_video_copy_is_removed_after_reading_failing_or_stopping(tmp_path, monkeypatch):
    made = []
    real = files.tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(files.tempfile, "mkdtemp", mkdtemp)
    path = tmp_path / "video_0.avi"
    fr._write_video(path, 20, (64, 48), "MJPG")
    data = path.read_bytes()
    root = _ram_dir()
    tf.io.gfile.makedirs(root)
    with tf.io.gfile.GFile(f"{root}/whole.avi", "wb") as f:
        f.write(data)
    with tf.io.gfile.GFile(f"{root}/cut.avi", "wb") as f:
        f.write(data[: int(len(data) * 0.6)])
    # Read to the end.
    assert len(list(h36m.VideoReader(f"{root}/whole.avi"))) == 20
    # Truncated: the error names the remote file, not the temporary copy.
    with pytest.raises(ValueError, match=f"^{root}/cut.avi: truncated video"):
        list(h36m.VideoReader(f"{root}/cut.avi"))
    # Abandoned after one frame (the generator is closed).
    frames = iter(h36m.VideoReader(f"{root}/whole.avi"))
    next(frames)
    assert len(made) == 3 and os.path.isdir(made[-1])  # the copy exists while reading
    frames.close()
    assert not any(os.path.exists(d) for d in made)


def test_read_bytes_of_local_files_and_folders(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff")
    assert files.read_bytes(tmp_path / "a.jpg") == b"\xff\xd8\xff"
    with pytest.raises(FileNotFoundError, match=f"image not found: {tmp_path}/b.jpg$"):
        files.read_bytes(tmp_path / "b.jpg", "image")
    with pytest.raises(FileNotFoundError, match=f"image not found: {tmp_path} is a directory"):
        files.read_bytes(tmp_path, "image")


def test_text_that_is_not_utf8_names_the_file(tmp_path):
    from keras_pose3d.data.readers import mpii

    split = tmp_path / "valid_images.txt"
    split.write_bytes(b"000001163.jpg\n\xff\xfe.jpg\n")
    with pytest.raises(ValueError, match=f"^{split}: MPII split file is not UTF-8 text"):
        mpii.read_split_file(split)
    split.write_bytes(b"000001163.jpg\n005808361.jpg\n")
    assert mpii.read_split_file(split) == {"000001163.jpg", "005808361.jpg"}
