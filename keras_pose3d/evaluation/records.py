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

RECORD_ID_FIELDS = ("dataset", "subject", "sequence", "camera", "frame")


def record_id(meta: dict) -> str:
    """The record id of one `read_record_meta` entry (module docstring)."""
    return "/".join(str(meta[k]) for k in RECORD_ID_FIELDS)


def read_record_meta(files: Sequence[str]) -> list[dict]:
    """Provenance and ground truth of every record, in file order.

    Records are parsed by the schema's owner (`features.decode_record`: a record of another
    schema or with a missing key raises ValueError naming the key). The 3DHP job writes valid
    test frames only (the others are its "invalid_frames" dead letters), so every record is
    scored.

    Returns one dict per record: dataset, subject, sequence, action, camera (str), frame (int),
    box (4,) original px (crop edges), image_size (2,), joints_3d (16, 3) camera mm (zeros
    without 3D), has_3d (bool), and `joints_3d_univ` (16, 3) mm only for records that carry
    universal 3D (`has_3d_univ`).
    """
    import tensorflow as tf

    from keras_pose3d.data import features

    out = []
    for path in files:
        for raw in tf.data.TFRecordDataset([path]).as_numpy_iterator():
            try:
                record = features.decode_record(raw)
            except ValueError as e:
                raise ValueError(f"{path}: record {len(out)}: {e}") from None
            meta = {name: record[name] for name in features.META_STRING_FIELDS}
            meta["frame"] = record["frame"]
            meta["box"] = record["box"].astype(np.float64)
            meta["image_size"] = record["image_size"]
            meta["joints_3d"] = record["joints_3d"].astype(np.float64)
            meta["has_3d"] = record["has_3d"]
            if record["has_3d_univ"]:
                meta["joints_3d_univ"] = record["joints_3d_univ"].astype(np.float64)
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
            raise ValueError(
                f"records {path} hold meta/dataset {found[0]!r}, --dataset "
                f"{dataset} expects {dataset!r}"
            )
        meta += part
    return meta


def labels(meta: list[dict], *keys: str) -> list[str]:
    """Per-record group labels joining the given meta fields with "/"."""
    return ["/".join(str(m[k]) for k in keys) for m in meta]
