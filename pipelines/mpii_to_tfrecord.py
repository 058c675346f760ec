r"""MPII Human Pose -> TFRecords (2D only), one example per usable annotated person.

    python -m pipelines.mpii_to_tfrecord --input_dir /data/mpii --output_dir /data/records/mpii \
        --split_file /data/mpii/valid.h5 [--crop_size 448] [Beam options]

Input layout: `<input_dir>/mpii_human_pose_v1_u12_1.mat` and `<input_dir>/images/*.jpg`.

Splits:
  * with `--split_file` (Newell's `valid.h5`, a text list of `image_index person_index`
    (0-based), or Tompson's `valid_images.txt` of image names): the listed persons form
    `validation` (Tompson's 2,958-person split), every other usable training person `train`;
  * without it every usable person is `train` and `validation` is written empty. There is no
    silent random hold-out: the standard split is Tompson's, pass its file.

A person is usable when its image is a training image (`img_train` = 1; test persons carry only
`objpos`/`scale`) and it has at least `--min_joints` annotated points. The person box follows
the hourglass convention (datasets.md 2.5): centre = objpos with y += 15 * scale, side =
200 * scale * 1.25 (0-based pixels); a person without objpos/scale gets the joint box (centre
of the joints' bounding box, side 1.2 * max extent). The stored crop is PERSON_MARGIN times
that box (`pipelines.person_crop.crop_person`).

Records: `joints_2d` in crop pixels with missing joints at 0, `visibility` 1 for annotated
joints inside the crop, `has_3d` 0, `intrinsics` zeros, provenance `meta/sequence` =
"<image name>/<person index>", `meta/frame` = 0-based annolist image index, `meta/action` =
the MPII activity category (`act.cat_name`, "" when absent).

Inputs may live on any filesystem `tf.io.gfile` knows (local, gs://, s3://, hdfs://). Images
are decoded strictly (`keras_pose3d.data.readers.images`): a truncated JPEG is a dead letter,
not a grey-padded record.

Dead letters: missing, truncated, corrupt (libjpeg's corrupt-data warnings) or undecodable
images (stage "image"), image names from the .mat that leave `<input_dir>/images` (`../`,
absolute paths, a symlink that points outside; stage "path"), too few joints
("min_joints"),
joints far outside the image or non-finite ("validate"), one summary line counting the test
persons that were skipped ("test_persons"), one line counting `--split_file` entries that match no
person ("split_file"; a split file that matches nobody, e.g. 1-based, is an error).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import cv2
import numpy as np

from keras_pose3d.data import crop_geometry
from keras_pose3d.data.jpeg import encode_jpeg
from keras_pose3d.data.readers import files, images, mpii
from pipelines import counters, dead_letters, person_crop, pose_checks, running

_LOG = logging.getLogger(__name__)
DATASET = "mpii"
SPLITS = ("train", "validation")
DEFAULT_CROP_SIZE = 448  # 256 network input x PERSON_MARGIN 1.75: native resolution after crop
DEFAULT_MIN_JOINTS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_dir", required=True, help="MPII root (annotation .mat + images/)")
    parser.add_argument(
        "--annotation_file",
        default=None,
        help=f"Annotation .mat (default <input_dir>/{mpii.ANNOTATION_FILE}).",
    )
    parser.add_argument(
        "--split_file",
        default=None,
        help="valid.h5, 'image_index person_index' list or image-name list of "
        "validation persons. Without it everything is 'train'.",
    )
    parser.add_argument("--crop_size", type=int, default=DEFAULT_CROP_SIZE)
    parser.add_argument(
        "--min_joints",
        type=int,
        default=DEFAULT_MIN_JOINTS,
        help="Fewest annotated points for a usable person.",
    )


def required_layout(args: argparse.Namespace) -> tuple[str, list[str]]:
    patterns = [args.annotation_file or mpii.ANNOTATION_FILE, mpii.IMAGES_DIR]
    if args.split_file:
        patterns.append(files.absolute(args.split_file))
    return args.input_dir, patterns


def _activity(mat: dict[str, Any], num_images: int) -> list[str]:
    """MPII `act.cat_name` per image ("" when absent or when the file has no `act`)."""
    release = mat.get("RELEASE")
    acts = mpii.as_list(getattr(release, "act", None)) if release is not None else []
    out = []
    for i in range(num_images):
        name = getattr(acts[i], "cat_name", "") if i < len(acts) else ""
        out.append(name if isinstance(name, str) else "")
    return out


def person_box(person: mpii.MpiiPerson) -> tuple[np.ndarray, float]:
    """(centre (2,), side) of the person box; joint box when objpos/scale are absent."""
    box = person.person_box()
    if box is not None:
        return box
    return crop_geometry.person_box(person.joints[person.annotated])


def _split_file_letters(
    persons: Sequence[mpii.MpiiPerson], validation: set, split_file: str, annotation_path: str
) -> list[dict[str, Any]]:
    """One "split_file" dead letter when some split entries match no person; raises if none do.

    A split file that matches nobody (e.g. 1-based indices) would put every person in train.
    """
    unmatched = mpii.unmatched_split_entries(persons, validation)
    if not unmatched:
        return []
    first = [list(e) if isinstance(e, tuple) else e for e in unmatched[:5]]
    if len(unmatched) == len(validation):
        raise ValueError(
            f"{split_file}: none of its {len(validation)} entries matches a person of "
            f"{annotation_path} (expected 0-based 'image_index person_index' pairs or image "
            f"names); first entries: {first}"
        )
    return [
        {
            "id": "split_file",
            "stage": "split_file",
            "reason": (
                f"{len(unmatched)} of {len(validation)} entries of {split_file} match no person "
                f"of {annotation_path}; first: {first}"
            ),
            "unmatched": len(unmatched),
            "first_unmatched": first,
        }
    ]


def list_items(
    annotation_path: str, split_file: str | None, min_joints: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reads the annotation in the driver and groups usable persons per image.

    Returns:
        (work items, dead letters). A work item is one image: {image_name, image_index,
        action, persons: [{person_index, split, joints, annotated, center, side}]} with small
        lists only, so items pickle cheaply to workers.
    """
    mat = mpii.load_mat(annotation_path)
    persons = list(mpii.iter_persons(mat, source=annotation_path))
    validation = mpii.read_split_file(split_file) if split_file else None
    num_images = 1 + max((p.image_index for p in persons), default=-1)
    activities = _activity(mat, num_images)
    items: dict[int, dict[str, Any]] = {}
    letters: list[dict[str, Any]] = []
    if validation:
        letters += _split_file_letters(persons, validation, split_file, annotation_path)
    skipped_test = 0
    for person in persons:
        pid = f"{person.image_name}/{person.person_index}"
        if person.is_train is False:
            skipped_test += 1
            continue
        if person.num_annotated < min_joints:
            letters.append(
                {
                    "id": pid,
                    "stage": "min_joints",
                    "reason": (
                        f"{person.num_annotated} annotated joints < --min_joints {min_joints}"
                    ),
                }
            )
            continue
        if person.image_name is None:
            raise ValueError(f"{annotation_path}: annolist[{person.image_index}] has no image name")
        center, side = person_box(person)
        item = items.setdefault(
            person.image_index,
            {
                "image_name": person.image_name,
                "image_index": person.image_index,
                "action": activities[person.image_index],
                "persons": [],
            },
        )
        item["persons"].append(
            {
                "person_index": person.person_index,
                "split": mpii.split_of(person, validation),
                "joints": person.joints.tolist(),
                "annotated": person.annotated.tolist(),
                "center": [float(v) for v in center],
                "side": float(side),
            }
        )
    if skipped_test:
        letters.append(
            {
                "id": "test_set",
                "stage": "test_persons",
                "reason": (
                    f"{skipped_test} persons of test images (img_train = 0) carry no joints; "
                    "skipped"
                ),
            }
        )
    return [items[k] for k in sorted(items)], letters


class CropPersons(beam.DoFn):
    """One image item -> (split, item_id, PoseRecord) per person, or dead letters."""

    def __init__(self, images_dir: str, crop_size: int):
        self._images_dir = images_dir
        self._crop_size = crop_size

    def process(self, item):
        name = item["image_name"]
        # The name comes from the .mat: never let it point outside the images folder, as text
        # (../, absolute) or through a symlink in the folder.
        unsafe = files.leaves_root(self._images_dir, name)
        if unsafe is not None:
            for person in item["persons"]:
                yield dead_letters.dead_letter(
                    f"{name}/{person['person_index']}", "path", unsafe, split=person["split"]
                )
            return
        path = files.join(self._images_dir, name)
        try:
            bgr = images.decode_bgr(files.read_bytes(path, "image"))
        except FileNotFoundError:
            reason = f"missing image: {path}"
        except ValueError as err:
            reason = f"{err}: {path}"
        else:
            reason = None
        if reason is not None:
            for person in item["persons"]:
                yield dead_letters.dead_letter(
                    f"{name}/{person['person_index']}", "image", reason, split=person["split"]
                )
            return
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        for person in item["persons"]:
            item_id = f"{item['image_name']}/{person['person_index']}"
            joints = np.asarray(person["joints"], np.float64)
            annotated = np.asarray(person["annotated"], bool)
            # A joint more than one image size outside the image is a broken annotation.
            reason = pose_checks.validate_joints(
                joints,
                annotated.astype(np.float64),
                image_size=(h, w),
                max_outside_px=float(max(h, w)),
            )
            if reason is not None:
                yield dead_letters.dead_letter(item_id, "validate", reason, split=person["split"])
                continue
            crop, joints_crop, _, box = person_crop.crop_person(
                image, person["center"], person["side"], self._crop_size, joints
            )
            inside = np.all((joints_crop >= -0.5) & (joints_crop <= self._crop_size - 0.5), axis=1)
            visibility = (annotated & inside).astype(np.float32)
            joints_crop = np.where(annotated[:, None], joints_crop, 0.0)
            counters.counter("mpii_persons").inc()
            yield (
                person["split"],
                item_id,
                {
                    "image_jpeg": encode_jpeg(crop),
                    "joints_2d": joints_crop,
                    "visibility": visibility,
                    "joints_3d": None,
                    "has_3d": False,
                    "intrinsics": None,
                    "distortion": None,
                    "box": box,
                    "dataset": DATASET,
                    "subject": "",
                    "sequence": item_id,
                    "action": item["action"],
                    "camera": "",
                    "frame": int(item["image_index"]),
                    "orig_size": np.array([h, w]),
                },
            )


def build(pipeline: beam.Pipeline, args: argparse.Namespace):
    annotation = files.join(args.input_dir, args.annotation_file or mpii.ANNOTATION_FILE)
    items, letters = list_items(annotation, args.split_file, args.min_joints)
    _LOG.info(
        "mpii: %d images with usable persons, %d driver dead letters", len(items), len(letters)
    )
    outs = (
        pipeline
        | "Images" >> beam.Create(items, reshuffle=True)
        | "CropPersons"
        >> beam.ParDo(
            CropPersons(files.join(args.input_dir, mpii.IMAGES_DIR), args.crop_size)
        ).with_outputs(dead_letters.DEAD_LETTER_TAG, main="records")
    )
    driver_letters = pipeline | "DriverDeadLetters" >> beam.Create(letters)
    dead = (outs[dead_letters.DEAD_LETTER_TAG], driver_letters) | "AllDeadLetters" >> beam.Flatten()
    return outs.records, dead


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job; returns the manifest. Bad input raises (see `main`)."""
    return running.run_job(
        argv,
        add_arguments,
        build,
        splits=SPLITS,
        dataset_name=DATASET,
        required_layout=required_layout,
        description=__doc__,
    )


main = running.job_main(run)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
