"""Writers of tiny raw-dataset fixtures in the exact on-disk formats (datasets.md section 5).

Each writer builds a directory tree the real reader cannot tell from the real release (same
containers, dtypes and awkward encodings) and returns what a correct reader must recover from
it. Nothing here is derived from the real data, except that `write_h36m_fixture` copies the
official `metadata.xml` from ../shared/realdata into the temporary tree when it is present
(never into the repository).

Frame identity: every video frame / test image `i` is filled with the grey level
`frame_level(i)`, so a test can decode a record's crop and prove that record frame i came from
video frame i (`level_to_frame`).
"""

from __future__ import annotations

import os
import pathlib
import shutil

import cv2
import numpy as np

from keras_pose3d import camera as camera_lib
from keras_pose3d import skeleton

REALDATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def job_flags(out: str | os.PathLike, num_shards: int = 1, crop_size: int = 32) -> list[str]:
    """The flags a test passes to a raw-data job on these fixtures: tiny crops, a fixed shard
    count, and any dead-letter fraction (the fixtures are broken on purpose)."""
    return [
        "--crop_size",
        str(crop_size),
        "--num_shards",
        str(num_shards),
        "--max_dead_letter_fraction",
        "1",
        "--output_dir",
        str(out),
    ]


def frame_level(i: int) -> int:
    """Grey level of frame i (steps of 25 survive mp4v / MJPG / JPEG; indices modulo 9)."""
    return 20 + 25 * (i % 9)


def level_to_frame(value: float) -> int:
    """Inverse of `frame_level` (frame index modulo 9)."""
    return round((float(value) - 20.0) / 25.0)


def _write_video(
    path: pathlib.Path, num_frames: int, size_wh: tuple[int, int], fourcc: str
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 50, size_wh)
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path} with {fourcc}")
    for i in range(num_frames):
        writer.write(np.full((size_wh[1], size_wh[0], 3), frame_level(i), np.uint8))
    writer.release()


def _write_garbage(path: pathlib.Path, n: int = 2000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())


# ==============================================================================================
# MPII
# ==============================================================================================
def _struct(records: list[dict], fields: list[str]) -> np.ndarray:
    """(1, n) MATLAB struct array with object fields."""
    arr = np.zeros((1, len(records)), dtype=[(f, "O") for f in fields])
    for i, rec in enumerate(records):
        for f in fields:
            arr[0, i][f] = rec.get(f, np.zeros((0, 0)))
    return arr


def _num(value, dtype) -> np.ndarray:
    return np.array([[value]], dtype=dtype)


def _coord(value: float) -> np.ndarray:
    # Like the real file: integers as the smallest unsigned type, fractions as float64.
    if float(value).is_integer():
        return _num(int(value), np.uint8 if 0 <= value <= 255 else np.uint16)
    return _num(value, np.float64)


def _vis(code):
    if code is None:
        return np.zeros((0, 0), np.uint8)  # the "empty" encoding
    if isinstance(code, str):
        return code  # the string encoding '0' / '1'
    return _num(code, np.uint8)


def _person_rect(points, objpos, scale, head, extra_fields=()) -> dict:
    """points: [(id, x1based, y1based, vis code)]."""
    rect = {}
    if head is not None:
        for k, v in zip(("x1", "y1", "x2", "y2"), head):
            rect[k] = _coord(v)
    if points is not None:
        pts = _struct(
            [
                {"x": _coord(x), "y": _coord(y), "id": _num(i, np.uint8), "is_visible": _vis(v)}
                for i, x, y, v in points
            ],
            ["x", "y", "id", "is_visible"],
        )
        rect["annopoints"] = _struct([{"point": pts}], ["point"])
    if scale is not None:
        rect["scale"] = _num(scale, np.float64)
    if objpos is not None:
        rect["objpos"] = _struct([{"x": _coord(objpos[0]), "y": _coord(objpos[1])}], ["x", "y"])
    for f in extra_fields:
        rect[f] = _num(1, np.uint8)
    return rect


def _full_points(cx: float, cy: float, step: float, vis_codes) -> list:
    """16 points around (cx, cy), 1-based; ids 8 and 9 fractional (float64 like the real file)."""
    offsets = np.array(
        [
            [-2, 6],
            [-2, 3],
            [-1, 0],
            [1, 0],
            [2, 3],
            [2, 6],
            [0, 0],
            [0, -3],
            [0.25, -4.5],
            [-0.25, -6.5],
            [-4, 0],
            [-3, -2],
            [-2, -3],
            [2, -3],
            [3, -2],
            [4, 0],
        ]
    )
    points = []
    for jid, (dx, dy) in enumerate(offsets):
        x, y = cx + dx * step, cy + dy * step
        if jid not in (8, 9):
            x, y = float(round(x)), float(round(y))
        else:
            x, y = x + 0.3759, y + 0.9694
        points.append((jid, x, y, vis_codes[jid]))
    return points


def write_mpii_fixture(root: str | os.PathLike, names_in_mat: dict[str, str] | None = None) -> dict:
    """An MPII release tree: `mpii_human_pose_v1_u12_1.mat` + `images/*.jpg`.

    Images (annolist order):
      0 `000000001.jpg` 320x120, train, two persons: person 0 has all 16 points with uint16 x,
        uint8 y, float64 ids 8/9 and all three is_visible encodings; person 1 has 7 points and
        a point at MATLAB x = 0 (uint8: underflows if not cast before subtracting 1).
      1 `000000002.jpg` 96x80, train, ONE person (a bare mat_struct under squeeze_me) with
        extra fields (part_occ1, head_r11); no objpos (box from joints).
      2 `000000003.jpg` test image: one person with only objpos and scale.
      3 `000000004.jpg` train, one person, the JPEG is corrupt.
      4 `000000005.jpg` train, one person with only 3 points (below --min_joints 4).
      5 `000000006.jpg` train, no person (empty annorect).
      6 `000000007.jpg` train, one person with a joint thousands of px outside the image.

    `names_in_mat` {file name: name stored in the .mat} stores other image names (e.g.
    `../000000002.jpg`) while the files keep theirs.

    Returns:
        dict: `persons` list of expected dicts (image_index, person_index, image_name,
        joints (16,2) 0-based, annotated (16,), box_center (2,), box_side, usable, reason),
        `encodings` Counter-like dict of (encoding, flag) -> count, `images` name -> (h, w).
    """
    root = pathlib.Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    sizes = {  # name -> (h, w)
        "000000001.jpg": (120, 320),
        "000000002.jpg": (80, 96),
        "000000003.jpg": (64, 64),
        "000000004.jpg": (64, 64),
        "000000005.jpg": (64, 64),
        "000000006.jpg": (48, 48),
        "000000007.jpg": (64, 64),
    }
    for name, (h, w) in sizes.items():
        if name == "000000004.jpg":
            _write_garbage(root / "images" / name, 300)
            continue
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / name), img)

    vis_p0 = [1, 0, "1", "0", 1, 1, 1, 1, None, None, 0, "1", 1, 1, 0, 1]
    p0 = _full_points(270.0, 60.0, 4.0, vis_p0)
    p1_ids = [0, 2, 6, 7, 9, 12, 13]
    p1 = [(i, x, y, 1) for i, x, y, _ in _full_points(20.0, 70.0, 3.0, [1] * 16) if i in p1_ids]
    p1[0] = (0, 0.0, 86.0, 1)  # MATLAB x = 0 -> 0-based -1
    p2 = _full_points(50.0, 40.0, 3.0, [1] * 16)
    p3 = _full_points(30.0, 30.0, 2.0, [1] * 16)[:10]
    p4 = _full_points(30.0, 30.0, 2.0, [1] * 16)[:3]
    p6 = _full_points(30.0, 30.0, 2.0, [1] * 16)
    p6[15] = (15, 3000.0, 30.0, 1)

    base = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]
    img0 = _struct(
        [
            _person_rect(p0, (270, 58), 0.12, (262, 30, 278, 42)),
            _person_rect(p1, (20, 68), 0.09, (16, 45, 24, 52)),
        ],
        base,
    )
    extra = ["part_occ1", "head_r11"]
    img1 = _struct(
        [_person_rect(p2, None, 0.1, (46, 18, 54, 26), extra)],
        ["x1", "y1", "x2", "y2", "annopoints", "scale"] + extra,
    )
    img2 = _struct([_person_rect(None, (30, 30), 0.1, None)], ["scale", "objpos"])
    img3 = _struct([_person_rect(p3, (30, 30), 0.08, (28, 14, 32, 18))], base)
    img4 = _struct([_person_rect(p4, (30, 30), 0.08, (28, 14, 32, 18))], base)
    img6 = _struct([_person_rect(p6, (30, 30), 0.08, (28, 14, 32, 18))], base)
    rects = [img0, img1, img2, img3, img4, np.zeros((0, 0)), img6]
    names = list(sizes)
    annolist = _struct(
        [
            {
                "image": _struct([{"name": (names_in_mat or {}).get(n, n)}], ["name"]),
                "annorect": r,
                "frame_sec": _num(10 + i, np.uint8),
                "vididx": _num(i + 1, np.uint16),
            }
            for i, (n, r) in enumerate(zip(names, rects))
        ],
        ["image", "annorect", "frame_sec", "vididx"],
    )
    img_train = np.array([[1, 1, 0, 1, 1, 1, 1]], np.uint8)
    single = np.empty((len(names), 1), dtype=object)
    for i in range(len(names)):
        single[i, 0] = _num(1, np.uint8) if i in (1, 3) else np.zeros((0, 0))
    cats = ["sports", "occupation", "", "sports", "dancing", "", "sports"]
    act = np.zeros((len(names), 1), dtype=[("cat_name", "O"), ("act_name", "O"), ("act_id", "O")])
    for i, c in enumerate(cats):
        act[i, 0]["cat_name"] = c if c else np.zeros((0, 0))
        act[i, 0]["act_name"] = f"activity {i}" if c else np.zeros((0, 0))
        act[i, 0]["act_id"] = _num(i if c else -1, np.int16)
    video_list = np.empty((1, 2), dtype=object)
    video_list[0, 0], video_list[0, 1] = "aaaaaaaaaaa", "bbbbbbbbbbb"
    release = _struct(
        [
            {
                "annolist": annolist,
                "img_train": img_train,
                "version": "12",
                "single_person": single,
                "act": act,
                "video_list": video_list,
            }
        ],
        ["annolist", "img_train", "version", "single_person", "act", "video_list"],
    )
    import scipy.io

    scipy.io.savemat(str(root / "mpii_human_pose_v1_u12_1.mat"), {"RELEASE": release})

    # ---------------- expectations ----------------
    def expect(image_index, person_index, points, objpos, scale, usable, reason=""):
        joints = np.zeros((16, 2))
        annotated = np.zeros(16, bool)
        for jid, x, y, _ in points or []:
            joints[jid] = (x - 1.0, y - 1.0)
            annotated[jid] = True
        if objpos is not None:
            center = np.array([objpos[0] - 1.0, objpos[1] - 1.0 + 15.0 * scale])
            side = 250.0 * scale
        else:
            lo, hi = joints[annotated].min(0), joints[annotated].max(0)
            center, side = 0.5 * (lo + hi), 1.2 * float(np.max(hi - lo))
        return {
            "image_index": image_index,
            "person_index": person_index,
            "image_name": names[image_index],
            "joints": joints,
            "annotated": annotated,
            "box_center": center,
            "box_side": side,
            "usable": usable,
            "reason": reason,
            "action": cats[image_index],
        }

    persons = [
        expect(0, 0, p0, (270, 58), 0.12, True),
        expect(0, 1, p1, (20, 68), 0.09, True),
        expect(1, 0, p2, None, 0.1, True),
        expect(3, 0, p3, (30, 30), 0.08, False, "image"),
        expect(4, 0, p4, (30, 30), 0.08, False, "min_joints"),
        expect(6, 0, p6, (30, 30), 0.08, False, "validate"),
    ]
    enc = {}
    for _, _, _, v in p0 + p1 + p2 + p3 + p4 + p6:
        key = (
            ("empty", -1) if v is None else (("str", int(v)) if isinstance(v, str) else ("int", v))
        )
        enc[key] = enc.get(key, 0) + 1
    return {"persons": persons, "encodings": enc, "images": sizes, "test_persons": 1}


# ==============================================================================================
# Human3.6M
# ==============================================================================================
# datasets.md 3.4 (facts): file prefixes of sub-actions 1 and 2, for the generated metadata.
H36M_MAPPING_TABLE = """
S1  Directions 1|Directions, Discussion 1|Discussion, Eating 2|Eating, Greeting 1|Greeting, Phoning 1|Phoning, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting 2, SittingDown 2|SittingDown, Smoking 1|Smoking, TakingPhoto 1|TakingPhoto, Waiting 1|Waiting, Walking 1|Walking, WalkingDog 1|WalkingDog, WalkTogether 1|WalkTogether
S5  Directions 1|Directions 2, Discussion 2|Discussion 3, Eating 1|Eating, Greeting 1|Greeting 2, Phoning 1|Phoning, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting, SittingDown|SittingDown 1, Smoking 1|Smoking, Photo|Photo 2, Waiting 1|Waiting 2, Walking 1|Walking, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether
S6  Directions 1|Directions, Discussion 1|Discussion, Eating 1|Eating 2, Greeting 1|Greeting, Phoning 1|Phoning, Posing 2|Posing, Purchases 1|Purchases, Sitting 1|Sitting 2, SittingDown 1|SittingDown, Smoking 1|Smoking, Photo|Photo 1, Waiting 3|Waiting, Walking 1|Walking, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether
S7  Directions 1|Directions, Discussion 1|Discussion, Eating 1|Eating, Greeting 1|Greeting, Phoning 2|Phoning, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting, SittingDown|SittingDown 1, Smoking 1|Smoking, Photo|Photo 1, Waiting 1|Waiting 2, Walking 1|Walking 2, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether
S8  Directions 1|Directions, Discussion 1|Discussion, Eating 1|Eating, Greeting 1|Greeting, Phoning 1|Phoning, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting, SittingDown|SittingDown 1, Smoking 1|Smoking, Photo 1|Photo, Waiting 1|Waiting, Walking 1|Walking, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether 2
S9  Directions 1|Directions, Discussion 1|Discussion 2, Eating 1|Eating, Greeting 1|Greeting, Phoning 1|Phoning, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting, SittingDown|SittingDown 1, Smoking 1|Smoking, Photo 1|Photo, Waiting 1|Waiting, Walking 1|Walking, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether
S11 Directions 1|Directions, Discussion 1|Discussion 2, Eating 1|Eating, Greeting 2|Greeting, Phoning 3|Phoning 2, Posing 1|Posing, Purchases 1|Purchases, Sitting 1|Sitting, SittingDown|SittingDown 1, Smoking 2|Smoking, Photo 1|Photo, Waiting 1|Waiting, Walking 1|Walking, WalkDog 1|WalkDog, WalkTogether 1|WalkTogether
"""
H36M_ACTIONS = (
    "Miscellaneous",
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "TakingPhoto",
    "Waiting",
    "Walking",
    "WalkingDog",
    "WalkingTogether",
)


def parse_mapping_table(text: str = H36M_MAPPING_TABLE) -> dict[str, list[tuple[str, str]]]:
    """datasets.md 3.4 table -> subject -> 15 (prefix sub-action 1, prefix sub-action 2)."""
    table = {}
    for line in text.strip().splitlines():
        subject, rest = line.split(None, 1)
        table[subject] = [tuple(cell.strip().split("|")) for cell in rest.split(",")]
    return table


def _generated_metadata_xml() -> str:
    """A small metadata.xml with the real tags and layout (see camera.load_h36m_metadata)."""
    table = parse_mapping_table()
    subjects = [f"S{i}" for i in range(1, 12)]
    td = lambda v: f"<td>{v}</td>"
    rows = ["<tr>" + td("Action") + td("subaction") + "".join(td(s) for s in subjects) + "</tr>"]
    prefixes = {}  # (action index, sub) -> per-subject prefix
    for a in range(1, 17):
        for sub in (1, 2):
            cells = []
            for s in subjects:
                if a == 1:
                    name = "_ALL 1" if sub == 1 else "_ALL"
                elif s in table:
                    name = table[s][a - 2][sub - 1]
                else:
                    name = f"{H36M_ACTIONS[a - 1]} {sub}"
                cells.append(name)
            prefixes[(a, sub)] = cells
            rows.append("<tr>" + td(a) + td(sub) + "".join(td(c) for c in cells) + "</tr>")
    rows.append(
        "<tr>" + td("Action") + td("subaction") + "".join(td(f"N{s}") for s in subjects) + "</tr>"
    )
    rows.append(
        "<tr><td /><td />"
        + "".join(td("[1002 1000;1000 1000;1000 1000;1002 1000]") for _ in subjects)
        + "</tr>"
    )
    frames = []
    for _ in subjects:
        cells = "".join(td("[100 102 102 100 404]") for _ in range(32))
        frames.append(f"<tr><td />{cells}</tr>")
    w0 = []
    rng = np.random.default_rng(7)
    for _c in range(4):
        for _s in range(11):
            w0 += list(rng.uniform(-0.3, 0.3, 3)) + list(rng.uniform(-3000, 3000, 3))
    # Synthetic intrinsics of the real order of magnitude (f ~ 1145 px, c ~ image centre).
    intr = [
        (
            1140.0 + 3 * c,
            1139.0 + 3 * c,
            510.0 + c,
            505.0 - c,
            -0.2 + 0.01 * c,
            0.24 - 0.01 * c,
            -0.003,
            -0.0014 + 0.0005 * c,
            -0.001,
        )
        for c in range(4)
    ]
    for row in intr:
        w0 += list(row)
    actions = "".join(f"<item>{a}</item>" for a in H36M_ACTIONS)
    cams = "".join(f"<item>{c}</item>" for c in camera_lib.H36M_CAMERA_IDS)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<a>\n'
        f"<mapping>{''.join(rows)}</mapping>\n<frames>{''.join(frames)}</frames>\n"
        "<train_subjects>[1 7 8 9 11]</train_subjects>\n<val_subjects>[5 6]</val_subjects>\n"
        "<test_subjects>[2 3 4 10]</test_subjects>\n"
        f"<w0>[{' '.join(f'{v:.10g}' for v in w0)}]</w0>\n"
        f"<dbcameras><index2id>{cams}</index2id></dbcameras>\n"
        f"<actionnames>{actions}</actionnames>\n</a>\n"
    )


def write_pose_cdf(path: str | os.PathLike, pose: np.ndarray) -> None:
    """(N, 32, D) -> an H36M-style CDF: zVariable `Pose`, CDF_FLOAT, Dim_Sizes [N, 32*D]."""
    import cdflib
    from cdflib.cdfwrite import CDF as CDFWriter

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    flat = np.asarray(pose, np.float32).reshape(pose.shape[0], -1)
    writer = CDFWriter(str(path), cdf_spec={"Majority": "Row_major"}, delete=True)
    var_spec = {
        "Variable": "Pose",
        "Data_Type": cdflib.cdfwrite.CDF.CDF_FLOAT,
        "Num_Elements": 1,
        "Rec_Vary": True,
        "Dim_Sizes": [flat.shape[0], flat.shape[1]],
    }
    writer.write_var(var_spec, var_attrs={}, var_data=flat[np.newaxis])
    writer.close()


def _h36m_pose(num_frames: int, seed: int) -> np.ndarray:
    """(N, 32, 3) camera-frame mm: a person ~1.6 m tall about 5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    base = np.zeros((32, 3))
    base[:, 0] = rng.uniform(-350, 350, 32)
    base[:, 1] = rng.uniform(-800, 800, 32)
    base[:, 2] = rng.uniform(-200, 200, 32)
    base[0] = (0.0, 0.0, 0.0)
    shift = np.array([rng.uniform(-300, 300), rng.uniform(-100, 100), 5000.0])
    motion = np.arange(num_frames)[:, None, None] * np.array([10.0, 0.0, 5.0])
    return base[None] + shift + motion


def write_h36m_fixture(root: str | os.PathLike, use_real_metadata: bool = True) -> dict:
    """An H36M release tree with real names (spaces included).

    Sequences (subject, file prefix, camera): frames written / poses
      S1 `TakingPhoto 1` 54138969: video 6 / poses 6, D2 present
      S1 `TakingPhoto 1` 55011271: video 6 / poses 6, D2 present
      S5 `Photo` 58860488: video 7 / poses 5, no D2 (the job projects D3 itself)
      S9 `Walking 1` 60457274: video 4 / poses 6, a NaN joint in frame 2 (test split)
      S9 `Greeting` 54138969: present but a known defect (excluded, never read)
      S1 `Walking 1` 54138969: corrupt video (garbage bytes), poses 6

    Returns:
        dict with `metadata` (path), `sequences` {(subject, prefix, camera): dict(d3 (N,32,3),
        d2 (N,32,2) or None, video_frames, camera)}, `real_metadata` bool.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    real = REALDATA / "h36m" / "metadata.xml"
    meta_path = root / "metadata.xml"
    if use_real_metadata and real.is_file():
        shutil.copyfile(real, meta_path)
    else:
        meta_path.write_text(_generated_metadata_xml())
    meta = camera_lib.load_h36m_metadata(meta_path)

    spec = [  # subject, prefix, camera, video frames, poses, write d2, nan frame, corrupt
        ("S1", "TakingPhoto 1", "54138969", 6, 6, True, None, False),
        ("S1", "TakingPhoto 1", "55011271", 6, 6, True, None, False),
        ("S5", "Photo", "58860488", 7, 5, False, None, False),
        ("S9", "Walking 1", "60457274", 4, 6, True, 2, False),
        ("S9", "Greeting", "54138969", 3, 3, True, None, False),
        ("S1", "Walking 1", "54138969", 0, 6, True, None, True),
    ]
    sequences = {}
    for k, (subject, prefix, cam_id, n_video, n_pose, with_d2, nan_frame, corrupt) in enumerate(
        spec
    ):
        cam = meta.cameras[(subject, cam_id)]
        d3 = _h36m_pose(n_pose, seed=11 + k)
        d2 = cam.project(d3)
        if nan_frame is not None:
            d3[nan_frame, 3, 1] = np.nan
            d2[nan_frame, 3, :] = np.nan
        pose_dir = root / subject / "MyPoseFeatures"
        write_pose_cdf(pose_dir / "D3_Positions_mono" / f"{prefix}.{cam_id}.cdf", d3)
        if with_d2:
            write_pose_cdf(pose_dir / "D2_Positions" / f"{prefix}.{cam_id}.cdf", d2)
        video = root / subject / "Videos" / f"{prefix}.{cam_id}.mp4"
        if corrupt:
            _write_garbage(video)
        else:
            _write_video(video, n_video, (cam.width, cam.height), "mp4v")
        sequences[(subject, prefix, cam_id)] = {
            "d3": d3.astype(np.float32),
            "d2": d2.astype(np.float32),
            "has_d2_file": with_d2,
            "video_frames": n_video,
            "poses": n_pose,
            "camera": cam,
            "nan_frame": nan_frame,
            "corrupt": corrupt,
        }
    return {
        "metadata": meta_path,
        "sequences": sequences,
        "real_metadata": meta_path.read_bytes() == (real.read_bytes() if real.is_file() else b""),
    }


# ==============================================================================================
# MPI-INF-3DHP
# ==============================================================================================
def _calibration_text(num_cameras: int, size: int, f: float, c: float) -> str:
    """`camera.calibration` in the real layout, trailing spaces included."""
    lines = ["Skeletool Camera Calibration File V1.0 "]
    for cam in range(num_cameras):
        fx = f + cam
        intr = f"{fx:.3f} 0 {c:.3f} 0 0 {fx + 0.5:.3f} {c + 1:.3f} 0 0 0 1 0 0 0 0 1"
        ang = 0.1 * cam
        r = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
        ext = np.eye(4)
        ext[:3, :3] = r
        ext[:3, 3] = (-100.0 * cam, 50.0, 3000.0)
        lines += [
            f"name          {cam} ",
            "  sensor      10 10 ",
            f"  size        {size} {size} ",
            "  animated    0 ",
            f"  intrinsic   {intr} ",
            "  extrinsic   " + " ".join(f"{v:.7g}" for v in ext.reshape(-1)) + " ",
            "  radial      0 ",
        ]
    return "\n".join(lines) + "\n"


# Same layout as the official ts1-4cameras.calib (tabs, "# in mm" comments), made-up values.
TS14_CALIB = """tc camera calibration v0.3
camera\t0\tcam_fixture
\tframe\t0
\t\tsensorSize\t10\t10\t# in mm
\t\tfocalLength\t7.1\t# in mm
\t\tpixelAspect\t1.0008
\t\tcenterOffset\t-0.05\t0.08\t# in mm (positive values move right and down)
\t\tdistortionModel\tOpenCV
\t\tdistortion\t\t0.0 0.0 0.0 0.0 0.0
\t\t\torigin\t3000.0\t1200.0\t400.0
\t\t\tup\t-0.2\t0.97\t0.1
\t\t\tright\t0.0\t0.1\t-0.99
"""


def _pose28(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.stack(
        [rng.uniform(-300, 300, 28), rng.uniform(-700, 700, 28), rng.uniform(-150, 150, 28)], axis=1
    )
    return base[None] + np.array([0.0, 0.0, 4000.0]) + np.arange(n)[:, None, None] * 7.0


def write_3dhp_train_fixture(root: str | os.PathLike, size: int = 96) -> dict:
    """`S1/Seq1/` with annot.mat (14 cameras), camera.calibration and MJPG videos.

    Cameras 0 and 1: videos of 5 frames, annotations of 6 rows (one extra row, as S3/Seq1);
    camera 1 has a NaN in annot3 at frame 2; camera 2: a corrupt video.

    Returns:
        dict with `cameras` {cam: dict(annot2 (N,28,2), annot3, univ (N,28,3), K (3,3))},
        `video_frames`, `rows`.
    """
    import scipy.io

    root = pathlib.Path(root)
    seq = root / "S1" / "Seq1"
    (seq / "imageSequence").mkdir(parents=True, exist_ok=True)
    text = _calibration_text(14, size, 80.0, size / 2.0)
    (seq / "camera.calibration").write_text(text)
    cams = camera_lib.load_3dhp_calibration(seq / "camera.calibration")
    rows, n_video = 6, 5
    a2c = np.empty((14, 1), object)
    a3c = np.empty((14, 1), object)
    u3c = np.empty((14, 1), object)
    out = {}
    for c in range(14):
        a3 = _pose28(rows, 100 + c)
        a2 = cams[str(c)].project(a3)
        u3 = a3 * 0.9 + 5.0
        if c == 1:
            a3[2, 5, 2] = np.nan
        a2c[c, 0] = a2.reshape(rows, 56)
        a3c[c, 0] = a3.reshape(rows, 84)
        u3c[c, 0] = u3.reshape(rows, 84)
        out[c] = {"annot2": a2, "annot3": a3, "univ": u3, "camera": cams[str(c)]}
    scipy.io.savemat(
        str(seq / "annot.mat"),
        {
            "annot2": a2c,
            "annot3": a3c,
            "univ_annot3": u3c,
            "cameras": np.arange(14, dtype=np.uint8)[None],
            "frames": np.arange(rows)[:, None],
        },
    )
    _write_video(seq / "imageSequence" / "video_0.avi", n_video, (size, size), "MJPG")
    _write_video(seq / "imageSequence" / "video_1.avi", n_video, (size, size), "MJPG")
    _write_garbage(seq / "imageSequence" / "video_2.avi")
    return {"cameras": out, "video_frames": n_video, "rows": rows}


def write_3dhp_test_fixture(root: str | os.PathLike, size: int = 80) -> dict:
    """`TS1/annot_data.mat` (MATLAB 7.3 via hdf5storage) + 1-based JPEGs + the .calib file.

    6 frames, valid_frame [1, 1, 0, 1, 1, 0]; image of frame 3 is corrupt.

    Returns:
        dict with `annot2` (N,17,2), `annot3`, `univ` (N,17,3), `valid`, `activity`,
        `camera` (the expected Camera for the written image size).
    """
    import hdf5storage

    root = pathlib.Path(root)
    ts = root / "TS1"
    (ts / "imageSequence").mkdir(parents=True, exist_ok=True)
    calib_dir = root / "test_util" / "camera_calibration"
    calib_dir.mkdir(parents=True, exist_ok=True)
    (calib_dir / "ts1-4cameras.calib").write_text(TS14_CALIB)
    cam = camera_lib.load_3dhp_test_calib(calib_dir / "ts1-4cameras.calib", (size, size))[0]
    n = 6
    a3 = _pose28(n, 55)[:, list(skeleton.MPI3DHP17_FROM_28)]  # the 17 relevant joints
    a2 = cam.project(a3)
    univ = a3 * 0.95
    valid = np.array([1, 1, 0, 1, 1, 0], np.float64)
    activity = np.array([1, 2, 2, 3, 7, 0], np.float64)
    # MATLAB layouts: annot3 3x17x1xN (h5py sees N x 1 x 17 x 3), valid_frame N x 1.
    hdf5storage.savemat(
        str(ts / "annot_data.mat"),
        {
            "annot2": np.ascontiguousarray(a2[:, None].transpose(3, 2, 1, 0)),
            "annot3": np.ascontiguousarray(a3[:, None].transpose(3, 2, 1, 0)),
            "univ_annot3": np.ascontiguousarray(univ[:, None].transpose(3, 2, 1, 0)),
            "valid_frame": valid[:, None],
            "activity_annotation": activity[:, None],
            "bb_crop": np.zeros((n, 4)),
        },
        format="7.3",
        matlab_compatible=True,
        store_python_metadata=False,
    )
    for i in range(n):
        path = ts / "imageSequence" / f"img_{i + 1:06d}.jpg"
        if i == 3:
            _write_garbage(path, 200)
        else:
            cv2.imwrite(str(path), np.full((size, size, 3), frame_level(i), np.uint8))
    return {
        "annot2": a2,
        "annot3": a3,
        "univ": univ,
        "valid": valid,
        "activity": activity,
        "camera": cam,
        "size": size,
    }


# ==============================================================================================
# Healthy motion sequences: what the end-to-end test trains on (tests/test_paper_configs_e2e.py)
# ==============================================================================================
# (subject, file prefix, camera): training subjects S1 and S5, test subjects S9 and S11, file
# prefixes from the mapping table, all on camera 55011271 (S11 `Directions 1` is corrupt on
# 54138969 only), so a job selects them with --sequences and --cameras 55011271.
E2E_H36M_CAMERA = "55011271"
E2E_H36M_SEQUENCES = tuple(
    (subject, prefix, E2E_H36M_CAMERA)
    for subject, prefix in (
        ("S1", "TakingPhoto 1"),
        ("S1", "Walking 1"),
        ("S5", "Photo"),
        ("S9", "Walking 1"),
        ("S9", "Eating 1"),
        ("S11", "Directions 1"),
    )
)


def write_h36m_motion_fixture(
    root: str | os.PathLike,
    sequences: tuple[tuple[str, str, str], ...] = E2E_H36M_SEQUENCES,
    num_frames: int = 20,
) -> dict:
    """An H36M release tree of healthy sequences: `num_frames` video frames and poses each (50
    fps), D2 and D3 pose files, metadata.xml as `write_h36m_fixture` gives it.

    Returns:
        dict with `metadata` (path) and `sequences` {(subject, prefix, camera): d3 (N, 32, 3)}.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    real = REALDATA / "h36m" / "metadata.xml"
    meta_path = root / "metadata.xml"
    if real.is_file():
        shutil.copyfile(real, meta_path)
    else:
        meta_path.write_text(_generated_metadata_xml())
    meta = camera_lib.load_h36m_metadata(meta_path)
    out = {}
    for k, (subject, prefix, cam_id) in enumerate(sequences):
        cam = meta.cameras[(subject, cam_id)]
        d3 = _h36m_pose(num_frames, seed=101 + k)
        pose_dir = root / subject / "MyPoseFeatures"
        write_pose_cdf(pose_dir / "D3_Positions_mono" / f"{prefix}.{cam_id}.cdf", d3)
        write_pose_cdf(pose_dir / "D2_Positions" / f"{prefix}.{cam_id}.cdf", cam.project(d3))
        video = root / subject / "Videos" / f"{prefix}.{cam_id}.mp4"
        _write_video(video, num_frames, (cam.width, cam.height), "mp4v")
        out[(subject, prefix, cam_id)] = d3.astype(np.float32)
    return {"metadata": meta_path, "sequences": out}


def _write_3dhp_train_sequence(
    seq: pathlib.Path, rows: int, video_cameras: tuple[int, ...], size: int, seed: int
) -> None:
    """annot.mat for 14 cameras, camera.calibration, MJPG videos of `rows` frames for
    `video_cameras`."""
    import scipy.io

    (seq / "imageSequence").mkdir(parents=True, exist_ok=True)
    (seq / "camera.calibration").write_text(_calibration_text(14, size, 80.0, size / 2.0))
    cams = camera_lib.load_3dhp_calibration(seq / "camera.calibration")
    a2c, a3c, u3c = (np.empty((14, 1), object) for _ in range(3))
    for c in range(14):
        a3 = _pose28(rows, seed + c)
        a2c[c, 0] = cams[str(c)].project(a3).reshape(rows, 56)
        a3c[c, 0] = a3.reshape(rows, 84)
        u3c[c, 0] = (a3 * 0.9 + 5.0).reshape(rows, 84)
    scipy.io.savemat(
        str(seq / "annot.mat"),
        {
            "annot2": a2c,
            "annot3": a3c,
            "univ_annot3": u3c,
            "cameras": np.arange(14, dtype=np.uint8)[None],
            "frames": np.arange(rows)[:, None],
        },
    )
    for c in video_cameras:
        _write_video(seq / "imageSequence" / f"video_{c}.avi", rows, (size, size), "MJPG")


def write_3dhp_motion_fixture(
    train_root: str | os.PathLike,
    test_root: str | os.PathLike,
    seconds: float = 0.4,
    test_frames: int = 12,
    size: int = 96,
) -> dict:
    """Healthy 3DHP sequences: S1/Seq1 (25 fps) and S1/Seq2 (50 fps), `seconds` long, videos of
    camera 0; test sequences TS1 and TS2, `test_frames` valid frames each (activities 1 then 3),
    with the ts1-4 calibration.

    Returns:
        dict with `train_frames` {(subject, seq): frames}, `test_frames` {ts: frames} and
        `activities` {ts: (N,) activity ids}.
    """
    import hdf5storage

    train_root, test_root = pathlib.Path(train_root), pathlib.Path(test_root)
    train_frames = {}
    for k, (seq, fps) in enumerate((("Seq1", 25), ("Seq2", 50))):
        rows = round(seconds * fps)
        _write_3dhp_train_sequence(train_root / "S1" / seq, rows, (0,), size, 200 + 20 * k)
        train_frames[("S1", seq)] = rows
    calib_dir = test_root / "test_util" / "camera_calibration"
    calib_dir.mkdir(parents=True, exist_ok=True)
    (calib_dir / "ts1-4cameras.calib").write_text(TS14_CALIB)
    cam = camera_lib.load_3dhp_test_calib(calib_dir / "ts1-4cameras.calib", (size, size))[0]
    activities = {}
    for k, ts in enumerate(("TS1", "TS2")):
        (test_root / ts / "imageSequence").mkdir(parents=True, exist_ok=True)
        a3 = _pose28(test_frames, 300 + k)[:, list(skeleton.MPI3DHP17_FROM_28)]
        activity = np.where(np.arange(test_frames) < test_frames // 2, 1.0, 3.0)
        hdf5storage.savemat(
            str(test_root / ts / "annot_data.mat"),
            {
                "annot2": np.ascontiguousarray(cam.project(a3)[:, None].transpose(3, 2, 1, 0)),
                "annot3": np.ascontiguousarray(a3[:, None].transpose(3, 2, 1, 0)),
                "univ_annot3": np.ascontiguousarray((a3 * 0.95)[:, None].transpose(3, 2, 1, 0)),
                "valid_frame": np.ones((test_frames, 1)),
                "activity_annotation": activity[:, None],
                "bb_crop": np.zeros((test_frames, 4)),
            },
            format="7.3",
            matlab_compatible=True,
            store_python_metadata=False,
        )
        for i in range(test_frames):
            path = test_root / ts / "imageSequence" / f"img_{i + 1:06d}.jpg"
            cv2.imwrite(str(path), np.full((size, size, 3), frame_level(i), np.uint8))
        activities[ts] = activity.astype(int)
    return {
        "train_frames": train_frames,
        "test_frames": {ts: test_frames for ts in activities},
        "activities": activities,
    }
