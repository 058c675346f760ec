"""keras_pose3d.data.manifest: what a reader accepts as whole data, without Beam."""

import ast
import json
import pathlib

from keras_pose3d.data import features, manifest
from keras_pose3d.data.manifest import MANIFEST_NAME, manifest_is_complete, read_manifest


def _write(directory, **changes):
    manifest = {
        "complete": True,
        "schema_version": features.SCHEMA_VERSION,
        "splits": {"train": {"files": ["train-00000-of-00001.tfrecord"]}},
    }
    manifest.update(changes)
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    return manifest


def test_manifest_is_complete_needs_the_flag_the_schema_and_every_shard(tmp_path):
    assert read_manifest(str(tmp_path)) is None and not manifest_is_complete(str(tmp_path))
    manifest = _write(tmp_path)
    assert read_manifest(str(tmp_path)) == manifest
    assert not manifest_is_complete(str(tmp_path))  # the shard is missing
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    assert manifest_is_complete(str(tmp_path))
    _write(tmp_path, complete=False)
    assert not manifest_is_complete(str(tmp_path))
    _write(tmp_path, schema_version=features.SCHEMA_VERSION + 1)
    assert not manifest_is_complete(str(tmp_path))


def test_the_manifest_module_imports_neither_beam_nor_opencv():
    # Training workers read manifests; the Beam jobs' dependencies must not come with them.
    tree = ast.parse(pathlib.Path(manifest.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] in ("apache_beam", "cv2", "pipelines")}
