r"""Evaluate a trained SAP-Net on validation records and write the paper's tables.

    python -m keras_pose3d.evaluate --run RUN_DIR --dataset h36m|mpi_inf_3dhp|mpii|synthetic \
        [--records GLOB ...] [--saved-model PATH] [--out DIR] [--batch-size 32]
        [--mpii-gt mpii_val_gt_tompson_format.mat --mpii-valid-h5 valid.h5]

Model: `RUN_DIR/sap_net.keras` with `RUN_DIR/config.yaml` (the run-directory contract of
`keras_pose3d.training.trainer`), or a SavedModel (`--saved-model`) with a `predict_raw`
signature (preferred: exact decoding) or `predict_image` (its decoder assumes the principal
point at the crop centre, a few mm off for off-centre crops; the report says which was used).

Decoding: the normalised pose is mapped to camera mm with the record's crop intrinsics and the
ground-truth root depth (the paper's protocol assumes the global position and scale known).

Outputs in `--out` (default `RUN_DIR/eval/<dataset>`): `<dataset>.md` (every table, printed too),
one CSV per table, `<dataset>.json` (all numbers). Tables per dataset:

* h36m: Tables 1-2 (`evaluation.h36m`) and Table 6 (structural validity).
* synthetic: Protocol 1/2 per sequence (procedural actions have no published numbers), Table 6.
* mpi_inf_3dhp: Table 5 (`evaluation.mpi_inf_3dhp`; ground truth `joints_3d_univ` when the
  records carry it, else `joints_3d` = annot3 with a loud note that it is not comparable;
  `valid_frame` honoured when present), Table 6.
* mpii: PCKh (`evaluation.mpii`); needs the Tompson ground truth (head boxes are not in the
  records) and Newell's `valid.h5` to match records (meta/frame = image index, person index in
  meta/sequence) to its rows.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable, Sequence

import numpy as np

from keras_pose3d import metrics, skeleton
from keras_pose3d.cli import exits_cleanly
from keras_pose3d.evaluation import h36m as h36m_eval
from keras_pose3d.evaluation import mpi_inf_3dhp as mpi3dhp_eval
from keras_pose3d.evaluation import mpii as mpii_eval
from keras_pose3d.evaluation import structural
from keras_pose3d.evaluation.tables import Table, to_markdown, write_report

DATASETS = ("h36m", "mpi_inf_3dhp", "mpii", "synthetic")
# Optional record keys outside schema v1 that evaluation understands.
KEY_JOINTS_3D_UNIV = "joints_3d_univ"
KEY_VALID_FRAME = "valid_frame"


# ----------------------------------------------------------------------------------------------
# Records: provenance and optional keys, in the same order as make_validation_dataset.
# ----------------------------------------------------------------------------------------------
def read_record_meta(files: Sequence[str]) -> list[dict]:
    """Provenance and optional evaluation keys of every record, in file order.

    Returns one dict per record: subject, sequence, action, camera (str), frame (int), box (4,),
    image_size (2,), and when present `joints_3d_univ` ((16, 3) or (17, 3) mm) and
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


def _check_mpii_inputs(mpii_gt: str | None, mpii_valid_h5: str | None) -> None:
    # Checked before the (long) prediction pass, not after it.
    if not mpii_gt or not mpii_valid_h5:
        raise ValueError("--dataset mpii needs --mpii-gt (mpii_val_gt_tompson_format.mat: head "
                         "boxes are not in the records) and --mpii-valid-h5 (row order)")
    for flag, path in (("--mpii-gt", mpii_gt), ("--mpii-valid-h5", mpii_valid_h5)):
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path} not found")


# ----------------------------------------------------------------------------------------------
# Models.
# ----------------------------------------------------------------------------------------------
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]


def keras_predictor(model) -> Predictor:
    """images (B,S,S,3), intrinsics (B,4), root depth (B,) -> {"pose_norm", "pose_2d"}."""

    def predict(images, intrinsics, root_depth):
        out = model(images, training=False)
        return {"pose_norm": np.asarray(out["pose_3d"], np.float64),
                "pose_2d": np.asarray(out["pose_2d"], np.float64)}

    return predict


def saved_model_predictor(path: str) -> tuple[Predictor, str]:
    """A SavedModel's `predict_raw` (exact) or `predict_image` signature."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    sigs = loaded.signatures
    if "predict_raw" in sigs:
        fn = sigs["predict_raw"]

        def predict(images, intrinsics, root_depth):
            out = fn(images=tf.constant(images, tf.float32))
            return {"pose_norm": out["pose_3d"].numpy().astype(np.float64),
                    "pose_2d": out["pose_2d"].numpy().astype(np.float64)}

        return predict, "predict_raw"
    if "predict_image" in sigs:
        fn = sigs["predict_image"]

        def predict(images, intrinsics, root_depth):
            out = fn(images=tf.constant(images, tf.float32),
                     focal_length=tf.constant(intrinsics[:, 0], tf.float32),
                     root_depth_mm=tf.constant(root_depth, tf.float32))
            return {"pose_mm": out["joints_3d_mm"].numpy().astype(np.float64),
                    "pose_2d_px": out["joints_2d_px"].numpy().astype(np.float64)}

        return predict, "predict_image"
    raise ValueError(f"SavedModel {path} has neither 'predict_raw' nor 'predict_image'; "
                     f"signatures: {sorted(sigs)}")


def run_predictions(predict: Predictor, files: Sequence[str], input_size: int,
                    heatmap_size: int, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Predictions and ground truth over validation records.

    Returns:
        pred_mm (N,16,3) camera mm, gt_mm (N,16,3), pred_px / gt_px (N,16,2) input px,
        visibility (N,16).
    """
    from keras_pose3d.data import pose_codec
    from keras_pose3d.data.dataset import make_validation_dataset

    ds = make_validation_dataset(list(files), input_size=input_size, heatmap_size=heatmap_size,
                                 batch_size=batch_size)
    parts: dict[str, list] = {k: [] for k in ("pred_mm", "gt_mm", "pred_px", "gt_px",
                                              "visibility")}
    for inputs, targets in ds.as_numpy_iterator():
        intr = targets["intrinsics"].astype(np.float64)
        root = targets["root_depth"].astype(np.float64)
        out = predict(inputs["image"], intr, root)
        if "pose_norm" in out:
            pred_mm = pose_codec.decode_pose_3d(out["pose_norm"], intr, root, input_size)
            pred_px = pose_codec.denormalise_2d(out["pose_2d"], input_size)
        else:  # predict_image returns mm and pixels of the S x S input already
            pred_mm, pred_px = out["pose_mm"], out["pose_2d_px"]
        parts["pred_mm"].append(pred_mm)
        parts["gt_mm"].append(targets["joints_3d"].astype(np.float64))
        parts["pred_px"].append(pred_px)
        parts["gt_px"].append(pose_codec.denormalise_2d(targets["pose_2d"], input_size))
        parts["visibility"].append(targets["visibility"].astype(np.float64))
    if not parts["pred_mm"]:
        raise ValueError(f"no records in {list(files)}")
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# Per-dataset table builders (pure functions of arrays + meta).
# ----------------------------------------------------------------------------------------------
def _labels(meta: list[dict], *keys: str) -> list[str]:
    return ["/".join(m[k] for k in keys) for m in meta]


def tables_h36m(arrays: dict, meta: list[dict]) -> tuple[dict, list[Table]]:
    res = h36m_eval.h36m_tables(arrays["pred_mm"], arrays["gt_mm"], [m["action"] for m in meta],
                                [m["subject"] for m in meta], [m["camera"] for m in meta])
    struct = structural.structural_validity(arrays["pred_mm"],
                                            _labels(meta, "subject", "sequence", "camera"))
    return ({"h36m": res, "structural": struct},
            h36m_eval.h36m_markdown_tables(res) + structural.structural_markdown_tables(struct))


def tables_synthetic(arrays: dict, meta: list[dict]) -> tuple[dict, list[Table]]:
    seqs = _labels(meta, "subject", "sequence")
    pred, gt = arrays["pred_mm"], arrays["gt_mm"]
    p1 = metrics.grouped_means(metrics.mpjpe(pred, gt, root=skeleton.ROOT), seqs)
    p2 = metrics.grouped_means(metrics.pa_mpjpe(pred, gt), seqs)
    struct = structural.structural_validity(pred, _labels(meta, "subject", "sequence", "camera"))
    rows = [[s, p1.per_group[s], p2.per_group[s], p1.counts[s]] for s in p1.per_group]
    rows.append([metrics.ACTION_MEAN + " (over sequences)", p1.action_mean, p2.action_mean,
                 len(pred)])
    rows.append([metrics.FRAME_MEAN, p1.frame_mean, p2.frame_mean, len(pred)])
    table = Table("Synthetic validation: MPJPE and PA-MPJPE per sequence, mm",
                  ["sequence", f"{metrics.PROTOCOL_1} (16 MPII joints)", metrics.PROTOCOL_2,
                   "frames"], rows, ["Procedural data: no published reference numbers."])
    return ({"synthetic": {"protocol_1": p1.as_dict(), "protocol_2": p2.as_dict(),
                           "n_frames": len(pred), "frames": dict(p1.counts)},
             "structural": struct}, [table] + structural.structural_markdown_tables(struct))


def tables_mpi_inf_3dhp(arrays: dict, meta: list[dict]) -> tuple[dict, list[Table]]:
    has_univ = [KEY_JOINTS_3D_UNIV in m for m in meta]
    if all(has_univ):
        gt = np.stack([m[KEY_JOINTS_3D_UNIV] for m in meta])
        gt_note = "ground truth: univ_annot3 (records' joints_3d_univ)"
    elif not any(has_univ):
        gt = arrays["gt_mm"]
        gt_note = ("WARNING: the records carry no joints_3d_univ; annot3 (joints_3d) was used. "
                   "These numbers are NOT comparable with published 3DHP results.")
    else:
        raise ValueError(f"{sum(has_univ)} of {len(meta)} records carry {KEY_JOINTS_3D_UNIV!r}; "
                         "mixed ground truths cannot be evaluated together")
    valid = np.array([m.get(KEY_VALID_FRAME, True) for m in meta])
    res = mpi3dhp_eval.mpi3dhp_tables(arrays["pred_mm"], gt, valid,
                                      [m["action"] for m in meta], [m["sequence"] for m in meta])
    res["ground_truth"] = gt_note
    struct = structural.structural_validity(arrays["pred_mm"][valid],
                                            [m["sequence"] for m, v in zip(meta, valid) if v])
    tables = mpi3dhp_eval.mpi3dhp_markdown_tables(res)
    tables[0].notes.append(gt_note)
    return {"mpi_inf_3dhp": res, "structural": struct}, tables + \
        structural.structural_markdown_tables(struct)


def tables_mpii(arrays: dict, meta: list[dict], gt_mat: str | None, valid_h5: str | None
                ) -> tuple[dict, list[Table]]:
    """PCKh in network-input pixels with the head size rescaled into the same pixels.

    PCKh is a ratio of distances, so it is the same in any similarity frame: the head size of the
    Tompson row (original px) times S * margin / box width (input px per original px).
    """
    if not gt_mat or not valid_h5:
        raise ValueError("--dataset mpii needs --mpii-gt (mpii_val_gt_tompson_format.mat: head "
                         "boxes are not in the records) and --mpii-valid-h5 (row order)")
    import h5py

    from keras_pose3d.data.features import PERSON_MARGIN

    gt = mpii_eval.load_tompson_gt(gt_mat)
    with h5py.File(valid_h5, "r") as f:
        rows = {(int(i), int(p)): r for r, (i, p) in
                enumerate(zip(np.asarray(f["index"]), np.asarray(f["person"])))}
    keep, headboxes = [], []
    input_size = arrays["input_size"]
    for k, m in enumerate(meta):
        person = int(m["sequence"].rsplit("/", 1)[-1])
        row = rows.get((m["frame"], person))
        if row is None:
            continue
        px_per_orig = input_size * PERSON_MARGIN / (m["box"][2] - m["box"][0])
        headboxes.append(gt["headboxes"][row] * px_per_orig)
        keep.append(k)
    if not keep:
        raise ValueError(f"no record matched a row of {valid_h5} by (meta/frame, person index)")
    keep = np.array(keep)
    res = mpii_eval.mpii_tables(arrays["pred_px"][keep], arrays["gt_px"][keep],
                                np.stack(headboxes), arrays["visibility"][keep])
    res["unmatched_records"] = int(len(meta) - len(keep))
    return {"mpii": res}, mpii_eval.mpii_markdown_tables(res)


# ----------------------------------------------------------------------------------------------
# Entry points.
# ----------------------------------------------------------------------------------------------
def evaluate_run(run_dir: str, dataset: str, records: str | Sequence[str] | None = None,
                 out_dir: str | None = None, *, saved_model: str | None = None,
                 batch_size: int = 32, mpii_gt: str | None = None,
                 mpii_valid_h5: str | None = None, verbose: bool = True) -> dict:
    """Evaluates a run directory (or SavedModel) and writes the tables.

    Args:
        run_dir: directory with config.yaml and sap_net.keras.
        dataset: one of DATASETS.
        records: TFRecord glob(s); None = the config's validation patterns
            (`data.val_files`, else `data_dir/validation-*.tfrecord`).
        out_dir: where to write; None = RUN_DIR/eval/<dataset>.
        saved_model: evaluate this SavedModel instead of sap_net.keras.
        batch_size: evaluation batch.
        mpii_gt, mpii_valid_h5: MPII ground truth files (dataset "mpii" only).
        verbose: print the Markdown tables.

    Returns:
        dict with the numbers ("results"), the written paths ("files") and "model".
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}. Received: {dataset!r}")
    if dataset == "mpii":
        _check_mpii_inputs(mpii_gt, mpii_valid_h5)
    from keras_pose3d.config import load_config
    from keras_pose3d.data.dataset import list_files

    run = pathlib.Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} not found (run directory contract: config.yaml + "
                                "sap_net.keras)")
    cfg = load_config(cfg_path)
    patterns = records if records is not None else list(cfg.data.val_patterns())
    if not patterns:
        raise ValueError(f"no records: pass --records or set data.val_files in {cfg_path}")
    files = list_files(patterns)
    meta = read_checked_meta(files, dataset)
    if saved_model:
        predict, model_desc = saved_model_predictor(saved_model)
        model_desc = f"SavedModel {saved_model} ({model_desc})"
    else:
        import keras

        import keras_pose3d.models.sap_net  # noqa: F401  (registers the serializable classes)

        model_path = run / "sap_net.keras"
        if not model_path.exists():
            raise FileNotFoundError(f"{model_path} not found")
        predict = keras_predictor(keras.saving.load_model(model_path, compile=False))
        model_desc = str(model_path)
    arrays = run_predictions(predict, files, cfg.data.input_size, cfg.data.heatmap_size,
                             batch_size)
    arrays["input_size"] = cfg.data.input_size
    if len(meta) != len(arrays["pred_mm"]):
        raise RuntimeError(f"{len(meta)} records read but {len(arrays['pred_mm'])} predicted")
    if dataset == "h36m":
        results, tables = tables_h36m(arrays, meta)
    elif dataset == "mpi_inf_3dhp":
        results, tables = tables_mpi_inf_3dhp(arrays, meta)
    elif dataset == "mpii":
        results, tables = tables_mpii(arrays, meta, mpii_gt, mpii_valid_h5)
    else:
        results, tables = tables_synthetic(arrays, meta)
    out = pathlib.Path(out_dir) if out_dir else run / "eval" / dataset
    header = (f"# Evaluation: {dataset}\n\nModel: {model_desc}. Records: {len(files)} files, "
              f"{len(meta)} examples. 3D decoded with crop intrinsics and ground-truth root depth.")
    paths = write_report(tables, {"dataset": dataset, "model": model_desc, **results}, out,
                         dataset, header)
    if verbose:
        print(header + "\n")
        for t in tables:
            print(to_markdown(t))
    return {"results": results, "files": paths, "model": model_desc}


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    """Command line; bad input prints `error: ...` and returns 2."""
    parser = argparse.ArgumentParser(description="Evaluate SAP-Net: the paper's tables.")
    parser.add_argument("--run", required=True, help="run directory (config.yaml, sap_net.keras)")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--records", nargs="+", default=None, help="TFRecord glob(s)")
    parser.add_argument("--saved-model", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mpii-gt", default=None)
    parser.add_argument("--mpii-valid-h5", default=None)
    args = parser.parse_args(argv)
    evaluate_run(args.run, args.dataset, args.records, args.out, saved_model=args.saved_model,
                 batch_size=args.batch_size, mpii_gt=args.mpii_gt,
                 mpii_valid_h5=args.mpii_valid_h5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
