"""Export is atomic (killed or failed saves leave no version folder) and models.config escapes."""

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, signatures

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = ["tp_net", 'my"model', "back\\slash", "naïve", "new\nline"]


def _local_model_server_config():
    """ModelServerConfig's text-format shape (TF-Serving's field names), defined here so the
    written text is parsed by protobuf's own parser even without tensorflow-serving-api."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="kp3d_test_msc.proto", package="kp3dtest", syntax="proto3"
    )
    string, message = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
    )
    optional, repeated = (
        descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    config = fdp.message_type.add(name="ModelConfig")
    for name, number in (("name", 1), ("base_path", 2), ("model_platform", 4)):
        config.field.add(name=name, number=number, type=string, label=optional)
    fdp.message_type.add(name="ModelConfigList").field.add(
        name="config", number=1, type=message, label=repeated, type_name=".kp3dtest.ModelConfig"
    )
    fdp.message_type.add(name="ModelServerConfig").field.add(
        name="model_config_list",
        number=1,
        type=message,
        label=optional,
        type_name=".kp3dtest.ModelConfigList",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kp3dtest.ModelServerConfig"))


def _export_root(tmp_path):
    out = tmp_path / "out"
    for name in NAMES:
        (out / name / "1").mkdir(parents=True)
        (out / name / "1" / "saved_model.pb").write_bytes(b"")
    return out


def _entries(parsed):
    return [(c.name, c.base_path, c.model_platform) for c in parsed.model_config_list.config]


def test_models_config_without_tf_serving_protos_escapes_every_name(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # import -> ImportError
    out = _export_root(tmp_path)
    text = export.models_config(out)
    parsed = text_format.Parse(text, _local_model_server_config()())
    expected = ["tp_net", *sorted(NAMES[1:])]
    assert _entries(parsed) == [(n, f"/models/{n}", "tensorflow") for n in expected]
    # Plain names keep the layout TF-Serving's docs show.
    assert '  config {\n    name: "tp_net"\n    base_path: "/models/tp_net"\n' in text


def test_models_config_with_tf_serving_protos_parses_the_same(tmp_path, monkeypatch):
    pb2 = pytest.importorskip(
        "tensorflow_serving.config.model_server_config_pb2",
        reason="tensorflow-serving-api is not installed",
    )
    out = _export_root(tmp_path)
    parsed = text_format.Parse(export.models_config(out), pb2.ModelServerConfig())
    expected = ["tp_net", *sorted(NAMES[1:])]
    assert _entries(parsed) == [(n, f"/models/{n}", "tensorflow") for n in expected]
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    fallback = text_format.Parse(export.models_config(out), pb2.ModelServerConfig())
    assert fallback == parsed


def _tiny_tp(**kwargs):
    tp = TPNet(window=3, hidden=8, **kwargs)
    tp(np.zeros((1, 3, 16, 3), np.float32))
    return tp


def _loadable_looking(model_dir):
    return [p for p in model_dir.iterdir() if p.name.isdigit()]


def test_failing_save_leaves_no_version_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = export.export_tp_net(_tiny_tp(), out)
    assert first == out / "tp_net" / "1"

    def broken_save(module, path, signatures=None):
        (pathlib.Path(path) / "variables").mkdir(parents=True)
        (pathlib.Path(path) / "variables" / "variables.index").write_bytes(b"\0" * 10)
        raise OSError("No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        export.export_tp_net(_tiny_tp(), out)
    assert sorted(p.name for p in (out / "tp_net").iterdir()) == ["1"]  # no temporary left
    assert export.exported_models(out) == ["tp_net"]


_KILLED_EXPORT = """
import os, signal, sys
import numpy as np
import tensorflow as tf
from keras_pose3d.serving import export
from keras_pose3d.models.tp_net import TPNet

real_save = tf.saved_model.save
def save_then_die(*args, **kwargs):  # killed after the SavedModel is complete, before the rename
    real_save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
tf.saved_model.save = save_then_die
tp = TPNet(window=3, hidden=8, frame_rate=25.0)
tp(np.zeros((1, 3, 16, 3), np.float32))
export.export_tp_net(tp, sys.argv[1])
"""


@pytest.mark.slow
def test_killed_export_leaves_no_version_and_the_next_export_cleans_up(tmp_path):
    out = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_EXPORT, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left = list((out / "tp_net").iterdir())
    # What a non-atomic export would have left as "1/": a complete SavedModel. Here it sits
    # under a name TF-Serving ignores, and there is no all-digit folder at all.
    assert len(left) == 1 and left[0].name.startswith(".tmp-")
    assert (left[0] / "saved_model.pb").is_file()
    assert _loadable_looking(out / "tp_net") == [] and export.exported_models(out) == []

    path = export.export_tp_net(_tiny_tp(frame_rate=25.0), out)
    assert path == out / "tp_net" / "1" and (path / "saved_model.pb").is_file()
    assert [p.name for p in (out / "tp_net").iterdir()] == ["1"]  # the stale folder is gone
    meta = signatures.read_metadata(tf.saved_model.load(str(path)))
    assert meta == {"mode": "online", "window": 3, "frame_rate": 25.0}


def test_temporaries_of_live_writers_are_kept(tmp_path):
    from keras_pose3d import atomic_files

    live = atomic_files.temporary_name(tmp_path / "x")  # this process: alive
    live.mkdir()
    dead = tmp_path / live.name.replace(f"-{os.getpid()}-", "-999999999-")
    dead.mkdir()
    elsewhere = tmp_path / ".tmp-otherhost-1-abcdef12-x"
    elsewhere.mkdir()
    assert atomic_files.stale_temporaries(tmp_path) == [dead]
    assert export.remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, elsewhere.name])


def test_frame_rate_metadata_round_trips_and_is_none_when_unknown(tmp_path):
    path = export.export_tp_net(_tiny_tp(frame_rate=29.97), tmp_path)
    meta = signatures.read_metadata(tf.saved_model.load(str(path)))
    assert meta == {"mode": "online", "window": 3, "frame_rate": 29.97}  # float64: exact
    # A TPNet without a recorded rate.
    path = export.export_tp_net(_tiny_tp(), tmp_path)
    assert signatures.read_metadata(tf.saved_model.load(str(path)))["frame_rate"] is None
    # An export from before tp_frame_rate existed: mode and window only.
    old = tf.Module()
    old.tp_mode = tf.Variable("semi_online")
    old.tp_window = tf.Variable(5, dtype=tf.int32)
    tf.saved_model.save(old, str(tmp_path / "old"))
    assert signatures.read_metadata(tf.saved_model.load(str(tmp_path / "old"))) == {
        "mode": "semi_online",
        "window": 5,
        "frame_rate": None,
    }
    # The pipeline keeps it on its nested TP-Net module.
    nested = tf.Module()
    nested.tp_serving = signatures.TPNetServing(_tiny_tp(frame_rate=10.0))
    assert signatures.read_metadata(nested)["frame_rate"] == 10.0
