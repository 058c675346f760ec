"""Reader of the MPII Human Pose annotation (`mpii_human_pose_v1_u12_1.mat`, MATLAB v5).

`scipy.io.loadmat(struct_as_record=False, squeeze_me=True)` hands back `mat_struct` objects with
every quirk of datasets.md 2.3 normalised here:

* a single person's `annorect` (and a single point) is a bare `mat_struct`, not an array;
* integer coordinates arrive as uint8 / uint16 (or Python ints after squeezing); everything is
  cast to float64 **before** the 1-based -> 0-based subtraction;
* `is_visible` is an int 0/1, an empty uint8 array (mostly head points 8/9) or a string '0'/'1';
* missing joints are absent (a person has 5 to 16 points), not zero;
* the set of `annorect` fields varies between images; test-set persons carry only `objpos` and
  `scale`.

Both the official `RELEASE` file and the `mpii_val_release_format.mat` layout (a bare `annolist`
of one person each plus `RELEASE_img_index` / `RELEASE_person_index`, 1-based) are read.

Coordinates returned are 0-based pixels (MATLAB value - 1), joints in MPII id order, which is
the project's MPII-16 order.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.data.readers import files

ANNOTATION_FILE = "mpii_human_pose_v1_u12_1.mat"
IMAGES_DIR = "images"
NUM_JOINTS = skeleton.NUM_JOINTS  # 16; MPII ids 0..15 are the MPII-16 order

# The hourglass convention (datasets.md 2.5): objpos is moved down by 15 * scale px and the
# person box has side 200 * scale * 1.25 px.
CENTER_Y_SHIFT = 15.0
BOX_SIDE_PER_SCALE = 200.0 * 1.25

# is_visible encodings as reported by `parse_is_visible`.
VIS_INT, VIS_EMPTY, VIS_STR = "int", "empty", "str"


@dataclasses.dataclass(frozen=True)
class MpiiPerson:
    """One annotated rectangle of the MPII annotation.

    Attributes:
        image_index: 0-based index into `annolist`.
        person_index: 0-based index into the image's `annorect`.
        image_name: e.g. "005808361.jpg"; None when the file does not store names.
        joints: (16, 2) float64, 0-based pixels, zeros where missing.
        annotated: (16,) bool, True where the point exists in the annotation.
        is_visible: (16,) int8: 1 / 0 from the annotation, -1 when empty or missing.
        visible_encoding: 16 strings: "int", "empty", "str" as found, "" where missing.
        center: (2,) float64 0-based `objpos`, or None.
        scale: person height / 200 px, or None.
        head_box: (4,) float64 0-based x1, y1, x2, y2, or None.
        is_train: `img_train` flag of the image, or None when the file has none.
    """

    image_index: int
    person_index: int
    image_name: str | None
    joints: np.ndarray
    annotated: np.ndarray
    is_visible: np.ndarray
    visible_encoding: tuple[str, ...]
    center: np.ndarray | None
    scale: float | None
    head_box: np.ndarray | None
    is_train: bool | None

    @property
    def num_annotated(self) -> int:
        return int(self.annotated.sum())

    def person_box(self) -> tuple[np.ndarray, float] | None:
        """Hourglass person box: (centre (2,) 0-based px, side px), or None without objpos.

        The centre is objpos with y moved down by 15 * scale; the side is 200 * scale * 1.25.
        """
        if self.center is None or self.scale is None:
            return None
        centre = self.center + np.array([0.0, CENTER_Y_SHIFT * self.scale])
        return centre, BOX_SIDE_PER_SCALE * self.scale


# ----------------------------------------------------------------------------------------------
# Normalisation of scipy's squeezed values.
# ----------------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """A `mat_struct` array, a bare `mat_struct` or an empty array -> a Python list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [] if value.size == 0 else list(value.ravel())
    return [value]


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, np.ndarray) and value.size == 0)


def to_float(value: Any, where: str) -> float:
    """A scalar of any MATLAB integer / float type -> float64 (before any arithmetic)."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype == object or arr.dtype.kind in "US":
        raise ValueError(f"{where}: expected a numeric scalar, received {value!r}")
    return float(arr.astype(np.float64).reshape(-1)[0])


def parse_is_visible(value: Any, where: str = "is_visible") -> tuple[int, str]:
    """One `is_visible` value -> (flag, encoding).

    Returns:
        flag 1 / 0, or -1 for the empty encoding; encoding one of "int", "empty", "str".
    """
    if isinstance(value, str):
        if value.strip() not in ("0", "1"):
            raise ValueError(f"{where}: expected '0' or '1', received {value!r}")
        return int(value.strip()), VIS_STR
    if is_empty(value):
        return -1, VIS_EMPTY
    arr = np.asarray(value)
    if arr.dtype.kind in "US":  # unsqueezed char array
        return parse_is_visible(str(arr.reshape(-1)[0]), where)
    flag = int(to_float(value, where))
    if flag not in (0, 1):
        raise ValueError(f"{where}: expected 0 or 1, received {flag}")
    return flag, VIS_INT


def _field(struct: Any, name: str) -> Any:
    return getattr(struct, name, None)


# ----------------------------------------------------------------------------------------------
# Persons.
# ----------------------------------------------------------------------------------------------
def parse_person(
    rect: Any,
    image_index: int,
    person_index: int,
    image_name: str | None = None,
    is_train: bool | None = None,
    source: str = "<mat>",
) -> MpiiPerson:
    """One `annorect` `mat_struct` -> `MpiiPerson` (0-based pixels, MPII-16 order)."""
    where = f"{source}: annolist[{image_index}].annorect[{person_index}]"
    joints = np.zeros((NUM_JOINTS, 2), np.float64)
    annotated = np.zeros(NUM_JOINTS, bool)
    is_visible = np.full(NUM_JOINTS, -1, np.int8)
    encoding = [""] * NUM_JOINTS
    annopoints = _field(rect, "annopoints")
    points = [] if is_empty(annopoints) else as_list(_field(annopoints, "point"))
    for k, point in enumerate(points):
        pwhere = f"{where}.annopoints.point[{k}]"
        jid = int(to_float(_field(point, "id"), pwhere + ".id"))
        if not 0 <= jid < NUM_JOINTS:
            raise ValueError(f"{pwhere}.id: expected a joint id in [0, 15], received {jid}")
        if annotated[jid]:
            raise ValueError(f"{pwhere}.id: joint id {jid} appears twice")
        # Cast before subtracting: uint8 253 - 1 is fine, but uint8 0 - 1 wraps to 255.
        joints[jid] = (
            to_float(_field(point, "x"), pwhere + ".x") - 1.0,
            to_float(_field(point, "y"), pwhere + ".y") - 1.0,
        )
        annotated[jid] = True
        vis = _field(point, "is_visible")
        is_visible[jid], encoding[jid] = parse_is_visible(vis, pwhere + ".is_visible")

    center = None
    objpos = _field(rect, "objpos")
    if not is_empty(objpos) and not is_empty(_field(objpos, "x")):
        center = np.array(
            [
                to_float(objpos.x, where + ".objpos.x") - 1.0,
                to_float(objpos.y, where + ".objpos.y") - 1.0,
            ]
        )
    scale_raw = _field(rect, "scale")
    scale = None if is_empty(scale_raw) else to_float(scale_raw, where + ".scale")
    head_box = None
    if all(not is_empty(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")):
        head_box = np.array(
            [to_float(_field(rect, k), f"{where}.{k}") - 1.0 for k in ("x1", "y1", "x2", "y2")]
        )
    return MpiiPerson(
        image_index=image_index,
        person_index=person_index,
        image_name=image_name,
        joints=joints,
        annotated=annotated,
        is_visible=is_visible,
        visible_encoding=tuple(encoding),
        center=center,
        scale=scale,
        head_box=head_box,
        is_train=is_train,
    )


def load_mat(path: str | os.PathLike) -> dict[str, Any]:
    """`scipy.io.loadmat` with squeezed `mat_struct`s, from any `tf.io.gfile` path; errors
    name the file."""
    import scipy.io

    path = os.fspath(path)
    data = files.read_bytes(path, "MPII annotation file")
    try:
        return scipy.io.loadmat(io.BytesIO(data), struct_as_record=False, squeeze_me=True)
    except Exception as err:  # scipy raises several types for corrupt / v7.3 files
        raise ValueError(f"{path}: not a readable MATLAB v5 MPII annotation ({err})") from err


def iter_persons(mat: dict[str, Any], source: str = "<mat>") -> Iterator[MpiiPerson]:
    """All persons of a loaded annotation, images in file order, persons in image order.

    Args:
        mat: the dict returned by `load_mat`.
        source: file name for error messages.
    """
    if "RELEASE" in mat:
        release = mat["RELEASE"]
        annolist = as_list(_field(release, "annolist"))
        img_train = np.atleast_1d(np.asarray(_field(release, "img_train"))).ravel()
        if img_train.size not in (0, len(annolist)):
            raise ValueError(
                f"{source}: RELEASE.img_train has {img_train.size} entries, expected "
                f"{len(annolist)} (one per annolist entry)"
            )
        for i, entry in enumerate(annolist):
            image = _field(entry, "image")
            name = None if is_empty(image) else str(_field(image, "name"))
            train = None if img_train.size == 0 else bool(int(img_train[i]))
            for p, rect in enumerate(as_list(_field(entry, "annorect"))):
                yield parse_person(rect, i, p, name, train, source)
    elif "annolist" in mat and "RELEASE_img_index" in mat:
        # Validation release format: one person per entry, indices into the full RELEASE.
        annolist = as_list(mat["annolist"])
        img_idx = np.atleast_1d(mat["RELEASE_img_index"]).astype(np.int64).ravel()
        per_idx = np.atleast_1d(mat["RELEASE_person_index"]).astype(np.int64).ravel()
        if not len(annolist) == img_idx.size == per_idx.size:
            raise ValueError(
                f"{source}: annolist ({len(annolist)}), RELEASE_img_index ({img_idx.size}) and "
                f"RELEASE_person_index ({per_idx.size}) must have the same length"
            )
        for k, entry in enumerate(annolist):
            rects = as_list(_field(entry, "annorect"))
            if len(rects) != 1:
                raise ValueError(
                    f"{source}: annolist[{k}].annorect: expected one person, found {len(rects)}"
                )
            image = _field(entry, "image")
            name = None if is_empty(image) else str(_field(image, "name"))
            yield parse_person(
                rects[0], int(img_idx[k]) - 1, int(per_idx[k]) - 1, name, True, source
            )
    else:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise KeyError(
            f"{source}: expected a 'RELEASE' struct or 'annolist' + 'RELEASE_img_index'; "
            f"found keys {keys}"
        )


# ----------------------------------------------------------------------------------------------
# The train / validation split.
# ----------------------------------------------------------------------------------------------
def read_split_file(path: str | os.PathLike) -> set[tuple[int, int]] | set[str]:
    """Validation persons from a split file.

    * `.h5` (Newell's `valid.h5`): 0-based `index` (image) and `person` datasets ->
      {(image_index, person_index)}.
    * text, `image_index person_index` per line (0-based integers) -> the same set.
    * text, one image name per line (Tompson's `valid_images.txt`) -> {image name}: every
      person of those images is validation.
    """
    path = os.fspath(path)
    if path.endswith((".h5", ".hdf5")):
        data = files.read_bytes(path, "MPII split file")
        import h5py

        try:
            handle = h5py.File(io.BytesIO(data), "r")
        except OSError as err:
            raise ValueError(f"{path}: not a readable HDF5 split file ({err})") from err
        with handle as f:
            for key in ("index", "person"):
                if key not in f:
                    raise KeyError(f"{path}: missing dataset '{key}' (found {sorted(f)})")
            index = np.asarray(f["index"]).astype(np.int64).ravel()
            person = np.asarray(f["person"]).astype(np.int64).ravel()
        if index.shape != person.shape:
            raise ValueError(f"{path}: 'index' {index.shape} and 'person' {person.shape} differ")
        return set(zip(index.tolist(), person.tolist()))
    text = files.read_text(path, "MPII split file")
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if lines and all(len(t) == 2 and t[0].isdigit() and t[1].isdigit() for t in lines):
        return {(int(a), int(b)) for a, b in lines}
    if lines and all(len(t) == 1 for t in lines):
        return {t[0] for t in lines}
    raise ValueError(
        f"{path}: expected lines of 'image_index person_index' or one image name per line"
    )


def split_of(person: MpiiPerson, validation: Sequence | set | None) -> str:
    """'validation' if the person is listed in `validation`, else 'train'."""
    if not validation:
        return "train"
    if (person.image_index, person.person_index) in validation:
        return "validation"
    if person.image_name is not None and person.image_name in validation:
        return "validation"
    return "train"


def unmatched_split_entries(
    persons: Sequence[MpiiPerson], validation: Sequence | set
) -> list[tuple[int, int] | str]:
    """Entries of a split set (`read_split_file`) that name no person, sorted.

    A split file of the wrong convention (e.g. 1-based indices) matches few or no persons and
    would silently put them in `train`; callers report these entries.
    """
    keys: set = set()
    for person in persons:
        keys.add((person.image_index, person.person_index))
        if person.image_name is not None:
            keys.add(person.image_name)
    # A split set is homogeneous (all pairs or all names), so plain sorting works.
    return sorted(entry for entry in validation if entry not in keys)
