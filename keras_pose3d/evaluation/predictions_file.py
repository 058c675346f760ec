"""Stored predictions: published MPII `preds` files and this project's 3D `.npz` files.

MPII (`load_mpii_predictions`): a `.mat` (MATLAB v5, or v7.3 = HDF5) or `.h5` file holding an
array (key `preds` by default) of 2D predictions for Tompson's validation split, rows in
`valid.h5` order, in the pixel convention of the ground-truth file (original image, 1-based).
Published files store it as N x 16 x 2, 16 x 2 x N or 2 x 16 x N (shapes as MATLAB / h5py show
them); each is accepted, anything else is refused naming the file, key and shape.

3D (`load_pose_predictions` / `save_pose_predictions`): an `.npz` with

* `record_id` (N,) str: `evaluation.records.record_id` of the record each pose belongs to
  ("<dataset>/<subject>/<sequence>/<camera>/<frame>");
* `pose_3d_mm` (N, 16, 3) float: MPII-16 poses, camera frame, mm (any root position: every
  protocol root-aligns);
* `pose_scale` (scalar str, optional, default "annot3"): "annot3" = decoded at the size of the
  records' `joints_3d` (what `evaluate --run` writes: decoded with the ground-truth root depth),
  "univ" = already at the 3DHP univ_annot3 size (not rescaled; `evaluation.mpi_inf_3dhp`;
  refused for the other datasets).

`match_records` puts the poses in record order and refuses missing, extra or repeated ids.
"""

from __future__ import annotations

import pathlib
import zipfile
from collections.abc import Sequence

import numpy as np

from keras_pose3d import skeleton

MPII_KEY = "preds"
POSE_SCALES = ("annot3", "univ")
# name -> (shape given N, axes that turn it into (N, 16, 2))
_MPII_LAYOUTS = {
    "N x 16 x 2": (lambda n: (n, 16, 2), (0, 1, 2)),
    "16 x 2 x N": (lambda n: (16, 2, n), (2, 0, 1)),
    "2 x 16 x N": (lambda n: (2, 16, n), (2, 1, 0)),
}


def load_mat(path: str | pathlib.Path) -> dict:
    """`scipy.io.loadmat` (MATLAB v5) with a corrupt or truncated file reported by name.

    Raises:
        NotImplementedError: a MATLAB v7.3 (HDF5) file, which scipy cannot read.
        ValueError: naming the file, when it is not a readable .mat file.
    """
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise
    except Exception as err:  # scipy: ValueError, MatReadError, zlib errors, ... by content
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({err})") from err


def read_h5_array(path: str | pathlib.Path, key: str, what: str = "HDF5") -> np.ndarray:
    """Array `key` of an HDF5 file; a file that is not HDF5, or lacks the key, is reported by
    name (ValueError)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable {what} file ({err})") from err
    with f:
        if key not in f:
            raise ValueError(f"{path}: key {key!r} missing; keys: {sorted(f)}")
        return np.asarray(f[key])


def _read_array(path: pathlib.Path, key: str) -> np.ndarray:
    """`key` of a .mat (v5 via scipy, v7.3 via h5py in MATLAB's axis order) or .h5 file."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        try:
            mat = load_mat(path)
        except NotImplementedError:  # MATLAB v7.3 is HDF5; h5py shows MATLAB's axes reversed
            return read_h5_array(path, key, "MATLAB v7.3 (HDF5)").transpose()
        if key not in mat:
            raise ValueError(
                f"{path}: key {key!r} missing; keys: "
                f"{sorted(k for k in mat if not k.startswith('__'))}"
            )
        return np.asarray(mat[key])
    if suffix in (".h5", ".hdf5"):
        return read_h5_array(path, key, "HDF5")
    raise ValueError(f"{path}: MPII predictions must be a .mat or .h5 file")


def load_mpii_predictions(
    path: str | pathlib.Path, num_rows: int, key: str = MPII_KEY
) -> tuple[np.ndarray, str]:
    """A published MPII predictions file -> ((num_rows, 16, 2) float64, layout name).

    Args:
        path: .mat or .h5 file.
        num_rows: persons in the ground truth (2958 for Tompson's split).
        key: the array's name.

    Raises:
        ValueError: naming the file, key and shape when the array is none of the layouts (or
            more than one, which only happens for num_rows = 2), or holds non-finite values.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} not found")
    arr = _read_array(path, key)
    found = [name for name, (shape, _) in _MPII_LAYOUTS.items() if arr.shape == shape(num_rows)]
    if len(found) != 1:
        what = "is ambiguous between" if found else "matches none of"
        raise ValueError(
            f"{path}: key {key!r} has shape {arr.shape}, which {what} the layouts "
            f"{', '.join(f'{n} = {s(num_rows)}' for n, (s, _) in _MPII_LAYOUTS.items())}"
            f" for the ground truth's {num_rows} persons"
        )
    pred = np.transpose(arr, _MPII_LAYOUTS[found[0]][1]).astype(np.float64)
    if not np.all(np.isfinite(pred)):
        bad = np.argwhere(~np.isfinite(pred))[:3].tolist()
        raise ValueError(f"{path}: key {key!r} holds non-finite values at (row, joint, xy) {bad}")
    return pred, found[0]


def save_pose_predictions(
    path: str | pathlib.Path,
    record_ids: Sequence[str],
    poses_mm: np.ndarray,
    pose_scale: str = "annot3",
) -> pathlib.Path:
    """Writes the 3D `.npz` of the module docstring."""
    poses = np.asarray(poses_mm, dtype=np.float64)
    if (
        poses.ndim != 3
        or poses.shape[1:] != (skeleton.NUM_JOINTS, 3)
        or len(poses) != len(record_ids)
    ):
        raise ValueError(
            f"save_pose_predictions: need (N, 16, 3) poses for N ids. Received: "
            f"{poses.shape} for {len(record_ids)} ids"
        )
    if pose_scale not in POSE_SCALES:
        raise ValueError(f"pose_scale must be one of {POSE_SCALES}. Received: {pose_scale!r}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        record_id=np.asarray(list(record_ids), dtype=str),
        pose_3d_mm=poses,
        pose_scale=np.asarray(pose_scale),
    )
    return path


def load_pose_predictions(path: str | pathlib.Path) -> tuple[list[str], np.ndarray, str]:
    """The 3D `.npz` -> (record ids, (N, 16, 3) poses mm, pose_scale)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} not found")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file: one bare array
        raise ValueError(  # noqa: TRY004  (bad file content: the entry points' user error)
            f"{path}: a single {type(archive).__name__} (an .npy file), expected an .npz "
            "archive with record_id (N,) and pose_3d_mm (N, 16, 3) (save_pose_predictions)"
        )
    with archive as z:
        for key in ("record_id", "pose_3d_mm"):
            if key not in z.files:
                raise ValueError(
                    f"{path}: key {key!r} missing; keys: {sorted(z.files)}; "
                    "expected record_id (N,) and pose_3d_mm (N, 16, 3)"
                )
        arrays = {}
        for key, dtype in (("record_id", None), ("pose_3d_mm", np.float64), ("pose_scale", None)):
            if key not in z.files:
                continue
            try:  # object (pickled) arrays, strings where numbers belong, a damaged member
                arrays[key] = np.asarray(z[key], dtype=dtype)
            except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(
                    f"{path}: key {key!r} cannot be read as "
                    f"{'numbers' if dtype else 'a plain array'} ({err})"
                ) from err
        ids = [str(v) for v in arrays["record_id"].reshape(-1)]
        poses = arrays["pose_3d_mm"]
        scale = str(arrays["pose_scale"]) if "pose_scale" in arrays else "annot3"
    if poses.shape != (len(ids), skeleton.NUM_JOINTS, 3):
        raise ValueError(
            f"{path}: key 'pose_3d_mm' has shape {poses.shape}; expected "
            f"({len(ids)}, 16, 3) for its {len(ids)} record ids"
        )
    if not np.all(np.isfinite(poses)):
        raise ValueError(f"{path}: key 'pose_3d_mm' holds non-finite values")
    if scale not in POSE_SCALES:
        raise ValueError(f"{path}: key 'pose_scale' is {scale!r}; expected one of {POSE_SCALES}")
    return ids, poses, scale


def match_records(
    ids: Sequence[str], poses: np.ndarray, record_ids: Sequence[str], source: str
) -> np.ndarray:
    """Poses reordered to `record_ids`; every record needs exactly one pose and vice versa.

    Raises:
        ValueError: naming `source`, on repeated ids (in either list), records without a pose
            or poses of no record (first few listed).
    """
    for name, lst in (("predictions", ids), ("records", record_ids)):
        if len(set(lst)) != len(lst):
            seen, dup = set(), []
            for i in lst:
                if i in seen:
                    dup.append(i)
                seen.add(i)
            raise ValueError(f"{source}: {name} repeat record ids, e.g. {dup[:3]}")
    index = {i: k for k, i in enumerate(ids)}
    missing = [r for r in record_ids if r not in index]
    extra = sorted(set(ids) - set(record_ids))
    if missing or extra:
        raise ValueError(
            f"{source}: {len(missing)} records have no prediction (e.g. "
            f"{missing[:3]}) and {len(extra)} predictions match no record (e.g. "
            f"{extra[:3]})"
        )
    return np.asarray(poses)[[index[r] for r in record_ids]]
