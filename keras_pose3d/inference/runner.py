"""3D pose on a video or an image folder: the library behind `python -m keras_pose3d.infer`.

`run(InferConfig(...))` makes two streaming passes over the frames, so memory does not grow with
the video (only the per-frame poses, ~1 KB each, are kept):

1. Pose: each frame's person boxes come from `--boxes`, or from the tracker (videos: the
   detector, then the previous frame's 2D joints, `tracking`), or from the detector alone
   (image folders, whose images need not be frames of one shot); SAP-Net runs on them through
   the serving graph (`predict_jpeg_boxes`). A frame where nobody is found uses the centred
   whole-image crop (its box is written as null).
2. Output: TP-Net refinement per track (`--online`, resampled to TP-Net's frame rate,
   `refine`), per-frame JSON, a BVH per track, `boxes.json`, and with rendering a second decode
   of the frames, each drawn and written as it comes (`render`).

Outputs in OUT: `json/frame_XXXXXX.json`, `boxes.json` (the person boxes used, in the format
`--boxes` reads: a dict keyed by frame index (video) or file name (images), a box or null; with
`all_people` a dict {track id: box} per frame), `motion.bvh` (`motion_track_K.bvh` per track
with `all_people`), `render/frame_XXXXXX.jpg` and `render.mp4` for a video. A track whose joints
collapse gets no BVH (warning).

Never a broken result, never a lost good one: a run writes into a temporary folder inside OUT
(`.tmp-...-infer`, `_Staging`) and every write is checked (`cv2.imwrite`'s return value, the
video writer opened and its file read back with every frame, JSON and BVH writes). Only when
the whole run succeeded are the earlier run's files of these names in OUT replaced by the new
ones (renames within OUT). A failed write stops the run with an OSError naming the file (the
command: one `error:` line, exit 2), the temporary folder is removed and OUT keeps the earlier
run's outputs byte for byte. A temporary folder left by a killed run is removed by the next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import sys

import cv2
import numpy as np

from keras_pose3d import atomic_files, skeleton
from keras_pose3d.data.jpeg import encode_jpeg
from keras_pose3d.inference import bvh, fitting, render, sources
from keras_pose3d.inference.boxes_file import boxes_json, load_boxes
from keras_pose3d.inference.detect import DetectorConfig, PersonDetector
from keras_pose3d.inference.frame_predictor import FramePredictor
from keras_pose3d.inference.refine import Refiner, load_refiner, refine_online
from keras_pose3d.inference.tracking import Tracker, TrackerConfig
from keras_pose3d.models.loading import TP_NET_FILE

logger = logging.getLogger(__name__)

# Camera frame (y down, z forward) -> y-up viewer frame: a 180-degree turn about x.
Y_UP = np.diag([1.0, -1.0, -1.0])
WHOLE_IMAGE = (0.0, 0.0, 0.0, 0.0)  # the serving graph's "no box": centred max(H, W) square


@dataclasses.dataclass(frozen=True)
class InferConfig:
    """One inference run (see the module docstring and `infer --help`).

    Exactly one of `video` / `images` and one of `saved_model` / `run_dir`. `boxes`: a
    boxes.json to use instead of detection. `fps`: frame rate of an image folder (and of a
    video that declares none). `track_images`: follow people across an image folder's images
    as in a video (the folder holds the frames of one shot).
    """

    out: str
    video: str | None = None
    images: str | None = None
    saved_model: str | None = None
    run_dir: str | None = None
    boxes: str | None = None
    online: bool = False
    tp_net: str | None = None
    focal_length: float = 0.0
    root_depth_mm: float = 0.0
    fps: float = 25.0
    batch: int = 16
    render: bool = True
    all_people: bool = False
    track_images: bool = False
    detector: DetectorConfig = dataclasses.field(default_factory=DetectorConfig)
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)


@dataclasses.dataclass
class Person:
    """One person in one frame: the pose model's outputs plus where its box came from."""

    track: int
    box: list[float] | None  # the person box given to the model; None = whole image
    box_source: str  # "given", "detector", "tracked", "held", "none"
    result: dict  # name -> np.ndarray of one person (joints_2d_px, confidence, ...)


@dataclasses.dataclass
class InferResult:
    frames: int
    names: list[str]
    times_s: np.ndarray  # (T,)
    people: list[list[Person]]  # per frame
    tracks: dict[int, np.ndarray]  # track id -> (T_k,) frame indices
    motion: dict[int, np.ndarray]  # track id -> (T_k, J, 3) root-relative (refined) poses
    detector_runs: int = 0

    @property
    def results(self) -> list[dict]:
        """Per frame, the first person's model outputs (single-person runs)."""
        return [frame[0].result if frame else {} for frame in self.people]


def _jpeg(image: np.ndarray) -> bytes:
    return encode_jpeg(image, order="bgr")  # (H, W, 3) BGR frame as read


def _split(res: dict, i: int) -> dict:
    return {k: v[i] for k, v in res.items() if k != "crop_boxes"} | {"box": res["crop_boxes"][i]}


# ----------------------------------------------------------------------------------------------
# Pass 1: poses.
# ----------------------------------------------------------------------------------------------
def _pose_pass(config: InferConfig, source, predictor, boxes, tracker, detector):
    names, times, people = [], [], []
    pending = []  # frames waiting for one batched model call (boxes not tracked)
    used, missing = set(), []  # boxes.json keys used; frames it has no entry for

    def predict(jobs):  # [(frame, [(track, box or None, source)])] -> per-frame [Person]
        jpegs, bx, owners = [], [], []
        for f, (frame, wanted) in enumerate(jobs):
            jpeg = _jpeg(frame.image) if wanted else None
            for track, box, src in wanted:
                jpegs.append(jpeg)
                bx.append(WHOLE_IMAGE if box is None else box)
                owners.append((f, track, box, src))
        out = [[] for _ in jobs]
        if jpegs:
            res = predictor(
                jpegs, np.asarray(bx, np.float32), config.focal_length, config.root_depth_mm
            )
            for i, (f, track, box, src) in enumerate(owners):
                out[f].append(
                    Person(
                        track, None if box is None else [float(v) for v in box], src, _split(res, i)
                    )
                )
        return out

    def flush():
        people.extend(predict(pending))
        pending.clear()
        print(f"frames {len(people)}", file=sys.stderr, flush=True)

    for frame in source:
        names.append(frame.name)
        times.append(frame.time_s)
        if tracker is not None:
            tracks = tracker.step(frame.index, frame.image)
            wanted = [(t.id, t.box.tolist(), t.source) for t in tracks]
            if not wanted and not config.all_people:
                wanted = [(0, None, "none")]
            got = predict([(frame, wanted)])[0]
            for p in got:
                if p.box_source == "none":
                    tracker.seed(frame.index, p.result["joints_2d_px"], p.result["confidence"])
                else:
                    tracker.update(p.track, p.result["joints_2d_px"], p.result["confidence"])
            people.append(got)
            if frame.index % 50 == 49:
                print(f"frames {len(people)}", file=sys.stderr, flush=True)
            continue
        if boxes is not None:
            key = frame.name if frame.name in boxes else str(frame.index)
            given = boxes.get(key)
            if given is None:
                missing.append(frame.name)
                given = {0: None}
            else:
                used.add(key)
            wanted = [
                (t, b, "given" if b is not None else "none")
                for t, b in sorted(given.items())
                if b is not None or not config.all_people
            ]
            wanted = wanted if config.all_people else wanted[:1]  # one person: the first track
            if not wanted and not config.all_people:  # {} for this frame: the whole image
                wanted = [(0, None, "none")]
        else:
            dets = detector(frame.image)
            chosen = dets if config.all_people else dets[:1]  # the detector ranks best first
            wanted = [(k, list(d.box), "detector") for k, d in enumerate(chosen)]
            if not wanted and not config.all_people:
                wanted = [(0, None, "none")]
        pending.append((frame, wanted))
        if len(pending) >= config.batch:
            flush()
    if pending:
        flush()
    if boxes is not None:
        # A boxes.json of another folder or video would otherwise give whole-image crops
        # without a word.
        unused = [k for k in boxes if k not in used]
        if unused:
            logger.warning(
                "%s: %d of its %d entries match no frame (e.g. %s)",
                config.boxes,
                len(unused),
                len(boxes),
                unused[:3],
            )
        if missing:
            logger.warning(
                "%s has no box for %d of the %d frames (e.g. %s): the whole image is used there",
                config.boxes,
                len(missing),
                len(names),
                missing[:3],
            )
    return names, np.asarray(times, np.float64), people


# ----------------------------------------------------------------------------------------------
# Pass 2: outputs.
# ----------------------------------------------------------------------------------------------
def _tracks(people: list[list[Person]]) -> dict[int, np.ndarray]:
    frames: dict[int, list[int]] = {}
    for f, frame_people in enumerate(people):
        for p in frame_people:
            frames.setdefault(p.track, []).append(f)
    return {t: np.asarray(v) for t, v in frames.items()}


def _record(index: int, name: str, time_s: float, person: Person) -> dict:
    return {
        "frame": index,
        "source": name,
        "time_s": time_s,
        "track": person.track,
        "person_box": person.box,
        "box_source": person.box_source,
    } | {k: np.asarray(v).tolist() for k, v in person.result.items()}


def _render_pass(config, source, stage: _Staging, result: InferResult, frame_time: float) -> None:
    """Decodes the frames again and writes each rendered frame as it is drawn (into `stage`);
    the video is read back at the end (`_Staging.check_video`)."""
    primary = next(iter(result.motion.values()), None)
    if primary is None:
        logger.warning("nobody found in any frame: nothing to render")
        return
    roots = {}  # sideways placement of several people: camera-frame pelvis x
    for f, frame_people in enumerate(result.people):
        for p in frame_people:
            roots.setdefault(f, {})[p.track] = float(p.result["joints_3d_mm"][skeleton.ROOT][0])
    spread = 0.0
    offsets: dict[int, dict[int, float]] = {}
    for f, r in roots.items():
        mean = float(np.mean(list(r.values())))
        offsets[f] = {t: x - mean for t, x in r.items()}
        spread = max(spread, *(abs(v) for v in offsets[f].values()))
    first = max(result.motion.values(), key=len)
    scene = render.Scene.fit(first, spread_mm=spread)
    pose_at = {t: dict(zip(result.tracks[t].tolist(), m)) for t, m in result.motion.items()}
    stage.mkdir("render")
    writer, written = None, 0
    try:
        for frame in source:
            if frame.index >= result.frames:  # a second decode that yields more frames
                logger.warning(
                    "%s: the render pass decoded more than the %d frames of the "
                    "first; the rest are not rendered",
                    source.path,
                    result.frames,
                )
                break
            persons = [
                render.Person(
                    p.result["joints_2d_px"],
                    p.result["confidence"],
                    pose_at[p.track][frame.index],
                    offsets.get(frame.index, {}).get(p.track, 0.0),
                    p.box,
                )
                for p in result.people[frame.index]
            ]
            image = render.side_by_side(frame.image, persons, scene)
            stage.write_image(f"render/frame_{frame.index:06d}.jpg", image)
            if source.is_video:
                if writer is None:
                    writer = stage.open_video(
                        VIDEO_NAME, 1.0 / frame_time, (image.shape[1], image.shape[0])
                    )
                writer.write(image)
                written += 1
    finally:
        if writer is not None:
            writer.release()
    if writer is not None:
        stage.check_video(VIDEO_NAME, written)


def _load_tp_net(config: InferConfig) -> Refiner:
    if config.tp_net:
        tp_path = pathlib.Path(config.tp_net)
    elif config.run_dir:
        tp_path = pathlib.Path(config.run_dir) / TP_NET_FILE
        if not tp_path.exists():
            raise FileNotFoundError(
                f"--online needs a TP-Net: {tp_path} not found; pass --tp-net (temporal_train "
                "writes runs/temporal/tp_net.keras)"
            )
    else:
        raise ValueError(
            "--online with --saved-model needs --tp-net (a .keras file or a tp_net SavedModel)"
        )
    refiner = load_refiner(tp_path)
    if refiner.mode != "online":
        raise ValueError(f"--online needs an online TP-Net; {tp_path} is {refiner.mode}")
    return refiner


# What a run writes in OUT (relative globs): the earlier run's files replaced by a new run.
OUTPUT_PATTERNS = (
    "json/frame_*.json",
    "boxes.json",
    "motion.bvh",
    "motion_track_*.bvh",
    "render/frame_*.jpg",
    "render.mp4",
)
VIDEO_NAME = "render.mp4"
_STAGE_SUFFIX = "infer"


class _Staging:
    """A temporary folder inside OUT that a run writes into; `publish` replaces the earlier
    run's outputs with its files once everything is written (module docstring).

    Every write goes through a method that checks it and raises OSError naming the file as it
    will be in OUT (`failed`). `discard` removes the folder (after `publish`, nothing is left).
    """

    def __init__(self, out: pathlib.Path):
        self.out = out
        self.dir = atomic_files.temporary_name(out / _STAGE_SUFFIX)
        self._previous = self.dir / ".previous"  # where the earlier outputs go while swapping
        try:
            for folder in (self.dir / "json", self._previous / "json", self._previous / "render"):
                folder.mkdir(parents=True)
        except OSError as err:
            self.discard()
            raise OSError(
                err.errno, f"cannot write in the output folder ({err.strerror})", str(out)
            ) from err

    def failed(self, name: str, reason: str) -> OSError:
        free = ""
        with contextlib.suppress(OSError):
            free = f"; {shutil.disk_usage(self.dir).free // 1024} KiB free there"
        return OSError(
            f"cannot write {self.out / name}: {reason}{free}. Nothing in {self.out} was "
            "changed: it keeps the previous run's outputs"
        )

    def mkdir(self, name: str) -> None:
        try:
            (self.dir / name).mkdir(exist_ok=True)
        except OSError as err:
            raise self.failed(name, err.strerror or str(err)) from err

    def write_text(self, name: str, text: str) -> None:
        try:
            (self.dir / name).write_text(text, encoding="utf-8")
        except OSError as err:
            raise self.failed(name, err.strerror or str(err)) from err

    def write_with(self, name: str, writer) -> None:
        """`writer(path)` writes the file (e.g. `bvh.write_bvh`)."""
        try:
            writer(self.dir / name)
        except OSError as err:
            raise self.failed(name, err.strerror or str(err)) from err

    def write_image(self, name: str, image: np.ndarray) -> None:
        try:
            ok = cv2.imwrite(str(self.dir / name), image)
        except cv2.error as err:
            raise self.failed(name, f"OpenCV: {err}") from err
        if not ok:  # OpenCV says no more than this: a full or read-only disk, mostly
            raise self.failed(name, "cv2.imwrite failed (disk full or not writable?)")

    def open_video(self, name: str, fps: float, size: tuple[int, int]):
        writer = cv2.VideoWriter(str(self.dir / name), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            writer.release()
            raise self.failed(name, "cv2.VideoWriter cannot open it (codec mp4v)")
        return writer

    def check_video(self, name: str, frames: int) -> None:
        """The written video must exist, be non-empty and read back with `frames` frames: its
        writer reports failed frame writes on stderr only (FFmpeg: Failed to write frame)."""
        path = self.dir / name
        size = path.stat().st_size if path.is_file() else 0
        if size == 0:
            raise self.failed(name, "the video writer left an empty file")
        capture = cv2.VideoCapture(str(path))
        try:
            opened = capture.isOpened()
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
        finally:
            capture.release()
        if not opened or count != frames:
            raise self.failed(
                name,
                f"the written video does not read back ({count} of {frames} frames)"
                if opened
                else "the written video cannot be opened",
            )

    def publish(self) -> None:
        """Moves the earlier run's outputs aside, the new ones into OUT, then removes both
        (renames within OUT); on a failure every move is undone and OSError raised."""
        previous = sorted(
            p.relative_to(self.out) for pattern in OUTPUT_PATTERNS for p in self.out.glob(pattern)
        )
        new = sorted(
            p.relative_to(self.dir)
            for p in self.dir.rglob("*")
            if p.is_file() and self._previous not in p.parents
        )
        moved_old, moved_new = [], []
        try:
            for rel in previous:
                os.replace(self.out / rel, self._previous / rel)
                moved_old.append(rel)
            for rel in new:
                (self.out / rel).parent.mkdir(exist_ok=True)
                os.replace(self.dir / rel, self.out / rel)
                moved_new.append(rel)
        except OSError as err:
            for rel in reversed(moved_new):
                os.replace(self.out / rel, self.dir / rel)
            for rel in reversed(moved_old):
                os.replace(self._previous / rel, self.out / rel)
            raise OSError(
                f"cannot move the new outputs into {self.out} ({err}); it keeps the previous "
                "run's outputs"
            ) from err
        if previous:
            logger.info("%s: replaced %d outputs of an earlier run", self.out, len(previous))

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _remove_stale_stages(out: pathlib.Path) -> None:
    """Temporary folders of runs that were killed (their process is gone) are removed."""
    for path in atomic_files.stale_temporaries(out):
        if path.name.endswith(f"-{_STAGE_SUFFIX}") and path.is_dir():
            logger.info("%s: removing %s, left by a run that was stopped", out, path.name)
            shutil.rmtree(path, ignore_errors=True)


def run(config: InferConfig, predictor=None, detector=None) -> InferResult:
    """Runs inference and writes the outputs (module docstring). `predictor` / `detector`
    replace the model and the person detector (tests)."""
    if (config.video is None) == (config.images is None):
        raise ValueError("give exactly one of --video and --images")
    if config.batch < 1:
        raise ValueError(f"--batch must be >= 1. Received: {config.batch}")
    if not config.fps > 0:  # also the fallback of a video that declares no rate
        raise ValueError(f"--fps must be > 0. Received: {config.fps}")
    out = pathlib.Path(config.out)
    source = (
        sources.VideoSource(config.video, config.fps)
        if config.video
        else sources.ImageSource(config.images, config.fps)
    )
    boxes = load_boxes(config.boxes)
    # Loaded and checked before any frame is processed: a bad TP-Net fails in seconds.
    refiner = _load_tp_net(config) if config.online else None
    if refiner is not None and refiner.frame_rate and not source.is_video:
        logger.info(
            "image folder: frames taken %.4g s apart (--fps %.4g) for TP-Net (trained at %.4g fps)",
            1.0 / source.fps,
            source.fps,
            refiner.frame_rate,
        )
    if predictor is None:
        predictor = FramePredictor(config.saved_model, config.run_dir)
    tracker = None
    if boxes is None:
        if detector is None:
            detector = PersonDetector(config.detector)
        if source.is_video or config.track_images:
            tracker = Tracker(detector, config.tracker, all_people=config.all_people)
    atomic_files.check_writable(out)  # a read-only or full OUT fails before any frame
    _remove_stale_stages(out)
    stage = _Staging(out)
    try:
        result = _run_into(config, source, predictor, boxes, tracker, detector, refiner, stage)
        stage.publish()
    finally:
        stage.discard()
    print(f"wrote {result.frames} frames ({len(result.tracks)} track(s)) to {out}", file=sys.stderr)
    return result


def _run_into(config, source, predictor, boxes, tracker, detector, refiner, stage) -> InferResult:
    """Both passes, every output written into `stage` (not yet published)."""
    names, times, people = _pose_pass(config, source, predictor, boxes, tracker, detector)
    frame_time = sources.frame_interval(times, source.fps, str(source.path))
    tracks = _tracks(people)
    motion = {}
    for t, frames in tracks.items():
        poses = np.stack(
            [_person(people[f], t).result["joints_3d_root_relative_mm"] for f in frames]
        )  # (T_k, J, 3)
        if refiner is not None:
            # A track absent from some frames (an edited boxes.json) is refined run by run:
            # a window never reaches across the frames the person was not in.
            cuts = np.flatnonzero(np.diff(frames) > 1) + 1
            poses = np.concatenate(
                [
                    refine_online(
                        run_poses,
                        refiner,
                        refiner.window,
                        times_s=times[run_frames],
                        video_fps=1.0 / frame_time,
                    )
                    for run_poses, run_frames in zip(np.split(poses, cuts), np.split(frames, cuts))
                ]
            )
            for f, refined in zip(frames, poses):
                _person(people[f], t).result["joints_3d_refined_mm"] = refined
        motion[t] = poses
    result = InferResult(
        len(names),
        names,
        times,
        people,
        tracks,
        motion,
        tracker.detector_runs if tracker is not None else 0,
    )

    for f, (name, frame_people) in enumerate(zip(names, people)):
        records = [_record(f, name, float(times[f]), p) for p in frame_people]
        if config.all_people:
            doc = {"frame": f, "source": name, "time_s": float(times[f]), "people": records}
        else:
            doc = records[0]
        stage.write_text(f"json/frame_{f:06d}.json", json.dumps(doc))
    used = boxes_json(
        result.names, result.people, config.all_people
    )  # one line per frame: easy to edit by hand
    stage.write_text(
        "boxes.json",
        "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in used.items()) + "\n}\n",
    )

    # BVH: one skeleton per track (its median bone lengths), y-up.
    for t, poses in motion.items():
        name = f"motion_track_{t}.bvh" if config.all_people else "motion.bvh"
        lengths = fitting.sequence_bone_lengths(poses)
        if not np.all(lengths > 0):  # e.g. a short track whose joints collapse to one point
            logger.warning(
                "track %d: median bone lengths %s include zeros; no %s written",
                t,
                np.round(lengths, 1).tolist(),
                name,
            )
            continue
        stage.write_with(
            name,
            lambda path, poses=poses, lengths=lengths: bvh.write_bvh(
                path, poses @ Y_UP.T, frame_time=frame_time, lengths=lengths
            ),
        )
    if config.render:
        _render_pass(config, source, stage, result, frame_time)
    return result


def _person(frame_people: list[Person], track: int) -> Person:
    return next(p for p in frame_people if p.track == track)
