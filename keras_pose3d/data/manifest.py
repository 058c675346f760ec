"""`manifest.json`, the contract between a data job and those who read its output (training
workers wait for it; `synthetic_to_tfrecord` reuses a complete dataset).

A Beam job (`pipelines.sharded_write`) writes it last, after every shard and the dead-letter
file, so a reader that finds a complete manifest finds whole data. Keys: `complete` (false when
the job's output cannot be trusted), `problems` (why), `schema_version`, `person_margin`,
`num_examples`, `splits` -> {split: {num_examples, num_shards, files, shard_sizes, subjects,
actions, datasets, has_3d, has_3d_univ}}, `dead_letter_count`, `dead_letter_failures`
(letters), `dead_letter_by_stage` ({stage: letters}, so documented exclusions such as
"excluded", "frame_count", "invalid_frames" and "test_persons" are told apart from failures
at a glance), `dead_letter_records_by_stage` ({stage: records the letters stand for}),
`failed_records`, `dead_letter_file`, `job_args`.

Readers need no Beam: this module imports TensorFlow's file system and the record schema only
(neither `apache_beam` nor `cv2`), so a training worker can wait for the chief's data without
the Beam jobs' dependencies.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from keras_pose3d.data import features

MANIFEST_NAME = "manifest.json"


def read_manifest(data_dir: str) -> dict[str, Any] | None:
    """The manifest of `data_dir`, or None when there is none."""
    path = os.path.join(data_dir, MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def manifest_is_complete(data_dir: str) -> bool:
    """True when a manifest says `complete` and all its shard files exist."""
    manifest = read_manifest(data_dir)
    if not manifest or not manifest.get("complete"):
        return False
    if manifest.get("schema_version") != features.SCHEMA_VERSION:
        return False
    return all(
        tf.io.gfile.exists(os.path.join(data_dir, name))
        for entry in manifest["splits"].values()
        for name in entry["files"]
    )
