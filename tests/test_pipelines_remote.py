"""Issue 11: the raw-data jobs read any tf.io.gfile filesystem and run unchanged on Beam's
portable runner.

* Remote inputs: each raw fixture is copied into TensorFlow's in-process `ram://` filesystem
  (a stand-in for gs:// / s3:// / hdfs://: no local path exists for it), the job runs on it
  in-process and must write the same bytes as from local disk.
* Portable runner: the MPII and synthetic jobs on `PortableRunner --job_endpoint embed
  --environment_type LOOPBACK` write the same bytes as on the (pinned) local runner.
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid

import pytest
import tensorflow as tf

from pipelines import (
    h36m_to_tfrecord,
    mpi_inf_3dhp_to_tfrecord,
    mpii_to_tfrecord,
    synthetic_to_tfrecord,
)
from tests import fixtures_raw as fr

pytestmark = pytest.mark.beam

PORTABLE = [
    "--runner",
    "PortableRunner",
    "--job_endpoint",
    "embed",
    "--environment_type",
    "LOOPBACK",
]


def _to_ram(local_root) -> str:
    """Copies a local tree into a fresh ram:// directory; returns its root."""
    root = f"ram://raw-{uuid.uuid4().hex}"
    for directory, _, names in os.walk(local_root):
        rel = os.path.relpath(directory, local_root)
        target = root if rel == "." else f"{root}/{rel}"
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(os.path.join(directory, name), f"{target}/{name}")
    return root


def _outputs(out_dir, root=None, replace=None) -> dict[str, bytes]:
    """Every output file's bytes; in the dead letters and the manifest `root` reads `replace`
    (the reasons name input paths) and the manifest drops its job_args."""
    got = {}
    for name in sorted(os.listdir(out_dir)):
        data = pathlib.Path(out_dir, name).read_bytes()
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("job_args")
            data = json.dumps(manifest, sort_keys=True).encode()
        if root is not None and name.endswith((".jsonl", ".json")):
            data = data.replace(root.encode(), replace.encode())
        got[name] = data
    return got


def _record_local_copies(monkeypatch) -> list[str]:
    """Base names of the files `files.local_copy` copies (only cdflib and OpenCV need one)."""
    from keras_pose3d.data.readers import files

    copied = []
    real = files.local_copy

    def spy(path, *args, **kwargs):
        if not files.is_local(path):
            copied.append(os.path.basename(os.fspath(path)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "local_copy", spy)
    return copied


def _same_outputs(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


# ----------------------------------------------------------------------------------------------
# ram:// inputs.
# ----------------------------------------------------------------------------------------------
def test_mpii_job_reads_its_raw_data_from_ram(tmp_path):
    fr.write_mpii_fixture(tmp_path / "mpii")
    (tmp_path / "mpii" / "split.txt").write_text("0 1\n")
    remote = _to_ram(tmp_path / "mpii")
    assert tf.io.gfile.exists(f"{remote}/images/000000001.jpg")

    def run(root, out):
        return mpii_to_tfrecord.run(
            [
                "--input_dir",
                root,
                "--split_file",
                f"{root}/split.txt",
                *fr.job_flags(out, num_shards=2),
            ]
        )

    local = run(str(tmp_path / "mpii"), tmp_path / "local")
    ram = run(remote, tmp_path / "ram")
    assert ram["splits"]["train"]["num_examples"] == 2 == local["splits"]["train"]["num_examples"]
    assert ram["splits"]["validation"]["num_examples"] == 1
    assert ram["dead_letter_by_stage"] == local["dead_letter_by_stage"]
    _same_outputs(
        _outputs(tmp_path / "local"), _outputs(tmp_path / "ram", remote, str(tmp_path / "mpii"))
    )


def test_h36m_job_reads_cdf_video_and_metadata_from_ram(tmp_path, monkeypatch):
    fr.write_h36m_fixture(tmp_path / "raw")
    remote = _to_ram(tmp_path / "raw")
    copied = _record_local_copies(monkeypatch)

    def run(root, out):
        return h36m_to_tfrecord.run(
            [
                "--input_dir",
                root,
                "--subjects",
                "S1,S5",
                "--sequences",
                "S1/TakingPhoto 1,S5/Photo,S1/Walking 1",
                "--cameras",
                "54138969,58860488",
                "--stride",
                "2",
                *fr.job_flags(out, num_shards=1),
            ]
        )

    local = run(str(tmp_path / "raw"), tmp_path / "local")
    ram = run(remote, tmp_path / "ram")
    # S1 TakingPhoto 1 on 54138969 (frames 0 2 4) and S5 Photo on 58860488 (0 2 4).
    assert ram["splits"]["train"]["num_examples"] == 6 == local["splits"]["train"]["num_examples"]
    assert ram["dead_letter_by_stage"]["video"] == 1  # the corrupt S1 Walking 1 video
    # Only CDFs and videos were copied to local disk; metadata.xml was parsed from memory.
    assert copied and {os.path.splitext(name)[1] for name in copied} == {".cdf", ".mp4"}
    _same_outputs(
        _outputs(tmp_path / "local"), _outputs(tmp_path / "ram", remote, str(tmp_path / "raw"))
    )


def test_3dhp_job_reads_mat_calibration_video_and_images_from_ram(tmp_path, monkeypatch):
    fr.write_3dhp_train_fixture(tmp_path / "raw" / "train", size=48)
    fr.write_3dhp_test_fixture(tmp_path / "raw" / "test", size=48)
    remote = _to_ram(tmp_path / "raw")
    copied = _record_local_copies(monkeypatch)

    def run(root, out):
        return mpi_inf_3dhp_to_tfrecord.run(
            [
                "--input_dir",
                f"{root}/train",
                "--test_dir",
                f"{root}/test",
                "--subjects",
                "S1",
                "--sequences",
                "Seq1",
                "--cameras",
                "0",
                "--test_sequences",
                "TS1",
                "--stride",
                "2",
                *fr.job_flags(out, num_shards=1),
            ]
        )

    local = run(str(tmp_path / "raw"), tmp_path / "local")
    ram = run(remote, tmp_path / "ram")
    assert ram["splits"]["train"]["num_examples"] == 3  # frames 0, 2, 4 of camera 0
    assert ram["splits"]["test"]["num_examples"] == 3  # valid frames 0, 1, 4
    assert ram["splits"] == local["splits"]
    # Only the video was copied to local disk; camera.calibration and the .calib were parsed
    # from memory.
    assert set(copied) == {"video_0.avi"}
    _same_outputs(
        _outputs(tmp_path / "local"), _outputs(tmp_path / "ram", remote, str(tmp_path / "raw"))
    )


def test_missing_remote_input_dir_is_named(tmp_path, capsys):
    missing = f"ram://nothing-{uuid.uuid4().hex}"
    assert mpii_to_tfrecord.main(["--input_dir", missing, "--output_dir", str(tmp_path)]) == 2
    assert f"input directory {missing!r} does not exist" in capsys.readouterr().err
    # A scheme TensorFlow has no filesystem for is named as such, not as a missing folder.
    assert (
        mpii_to_tfrecord.main(["--input_dir", "nofs://b/mpii", "--output_dir", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "cannot read 'nofs://b/mpii': File system scheme 'nofs' not implemented" in err


# ----------------------------------------------------------------------------------------------
# The portable runner.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "runner",
    [
        PORTABLE,
        # The README used to warn that this mode "lost records": it writes the same bytes
        # (also checked by hand on 480 synthetic records, and with multi_processing).
        ["--direct_num_workers", "3", "--direct_running_mode", "multi_threading"],
    ],
    ids=["portable", "multi_threading"],
)
def test_mpii_job_on_another_runner_writes_the_same_bytes(tmp_path, runner):
    fr.write_mpii_fixture(tmp_path / "mpii")
    argv = [
        "--input_dir",
        str(tmp_path / "mpii"),
        "--crop_size",
        "32",
        "--num_shards",
        "2",
        "--max_dead_letter_fraction",
        "1",
    ]
    direct = mpii_to_tfrecord.run([*argv, "--output_dir", str(tmp_path / "direct")])
    other = mpii_to_tfrecord.run([*argv, *runner, "--output_dir", str(tmp_path / "other")])
    assert other["num_examples"] == direct["num_examples"] == 3
    _same_outputs(_outputs(tmp_path / "direct"), _outputs(tmp_path / "other"))


def test_synthetic_job_on_the_portable_runner_writes_the_same_bytes(tmp_path):
    argv = [
        "--num_subjects=3",
        "--sequences_per_subject=1",
        "--frames_per_sequence=2",
        "--crop_size=16",
        "--seed=3",
    ]  # no --num_shards: the count comes from the data
    direct = synthetic_to_tfrecord.run([*argv, f"--output_dir={tmp_path / 'direct'}"])
    portable = synthetic_to_tfrecord.run([*argv, *PORTABLE, f"--output_dir={tmp_path / 'port'}"])
    assert direct["num_examples"] == portable["num_examples"] == 6
    assert direct["splits"]["train"]["num_shards"] == 1  # a few kB: one shard
    _same_outputs(_outputs(tmp_path / "direct"), _outputs(tmp_path / "port"))
