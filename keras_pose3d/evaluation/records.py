"""Validation records as evaluation sees them: provenance, ground truth and the record id.

`read_record_meta` reads every record's provenance and evaluation keys in file order (the order
`make_validation_dataset` yields them, so row k of the predictions is record k). `record_id`
names a record in stored predictions files (`evaluation.predictions_file`):

    "<meta/dataset>/<meta/subject>/<meta/sequence>/<meta/camera>/<meta/frame>"

e.g. "h36m/S9/Directions 1/55011271/120" or "mpi_inf_3dhp/TS1/TS1/TS1/2001". Fields are the
record's strings as written (empty fields stay empty: "mpii//005808361.jpg/0//2"); the frame is
the decimal `meta/frame`. Record ids must be unique within one evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Optional record keys outside the core of schema v1 that evaluation understands.
KEY_JOINTS_3D_UNIV = "joints_3d_univ"
KEY_VALID_FRAME = "valid_frame"
RECORD_ID_FIELDS = ("dataset", "subject", "sequence", "camera", "frame")


def record_id(meta: dict) -> str:
    """The record id of one `read_record_meta` entry (module docstring)."""
    return "/".join(str(meta[k]) for k in RECORD_ID_FIELDS)


def read_record_meta(files: Sequence[str]) -> list[dict]:
    """Provenance and ground truth of every record, in file order.

    Returns one dict per record: dataset, subject, sequence, action, camera (str), frame (int),
    box (4,) original px (crop edges), image_size (2,), joints_3d (16, 3) camera mm (zeros
    without 3D), has_3d (bool), and when present `joints_3d_univ` ((16, 3) or (17, 3) mm) and
    `valid_frame` (bool).
    """
    import tensorflow as tf

    from keras_pose3d.data import features

    out = []
    for path in files:
        for raw in tf.data.TFRecordDataset([path]).as_numpy_iterator():
            feat = tf.train.Example.FromString(raw).features.feature

            def text(key, feat=feat):
                return feat[key].bytes_list.value[0].decode() if key in feat else ""

            meta = {name: text(key) for name, key in features.META_STRING_FIELDS.items()}
            meta["frame"] = int(feat[features.KEY_FRAME].int64_list.value[0])
            meta["box"] = np.array(feat[features.KEY_BOX].float_list.value, np.float64)
            meta["image_size"] = np.array(feat[features.KEY_IMAGE_SIZE].int64_list.value)
            meta["joints_3d"] = np.array(feat[features.KEY_JOINTS_3D].float_list.value,
                                         np.float64).reshape(-1, 3)
            meta["has_3d"] = bool(feat[features.KEY_HAS_3D].int64_list.value[0])
            # Schema v1 optional key: honoured only when `has_3d_univ` (if written) is set.
            univ_flag = feat["has_3d_univ"].int64_list.value if "has_3d_univ" in feat else [1]
            if KEY_JOINTS_3D_UNIV in feat and univ_flag and univ_flag[0]:
                vals = np.array(feat[KEY_JOINTS_3D_UNIV].float_list.value, np.float64)
                if vals.size not in (16 * 3, 17 * 3):
                    raise ValueError(f"{path}: record {len(out)} key {KEY_JOINTS_3D_UNIV!r} has "
                                     f"{vals.size} floats; expected 48 (MPII-16) or 51 (3DHP-17)")
                meta[KEY_JOINTS_3D_UNIV] = vals.reshape(-1, 3)
            if KEY_VALID_FRAME in feat:
                v = feat[KEY_VALID_FRAME]
                flag = v.int64_list.value or v.float_list.value
                meta[KEY_VALID_FRAME] = bool(flag[0])
            out.append(meta)
    return out


def read_checked_meta(files: Sequence[str], dataset: str) -> list[dict]:
    """`read_record_meta`, checking that every record's `meta/dataset` is `dataset`.

    Raises:
        ValueError: naming the first file whose records hold another dataset (evaluating
            e.g. synthetic records as h36m would print meaningless tables).
    """
    meta: list[dict] = []
    for path in files:
        part = read_record_meta([path])
        found = sorted({m["dataset"] for m in part} - {dataset})
        if found:
            raise ValueError(f"records {path} hold meta/dataset {found[0]!r}, --dataset "
                             f"{dataset} expects {dataset!r}")
        meta += part
    return meta


def labels(meta: list[dict], *keys: str) -> list[str]:
    """Per-record group labels joining the given meta fields with "/"."""
    return ["/".join(str(m[k]) for k in keys) for m in meta]
