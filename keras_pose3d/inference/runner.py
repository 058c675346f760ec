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
with `all_people`), `render/frame_XXXXXX.jpg` and `render.mp4` for a video. A run first removes
these files left in OUT by an earlier run; a track whose joints collapse gets no BVH (warning).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sys

import cv2
import numpy as np

from keras_pose3d import skeleton
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


def _render_pass(config, source, out, result: InferResult, frame_time: float) -> None:
    """Decodes the frames again and writes each rendered frame as it is drawn."""
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
    (out / "render").mkdir(exist_ok=True)
    writer = None
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
            cv2.imwrite(str(out / "render" / f"frame_{frame.index:06d}.jpg"), image)
            if source.is_video:
                if writer is None:
                    writer = cv2.VideoWriter(
                        str(out / "render.mp4"),
                        cv2.VideoWriter_fourcc(*"mp4v"),
                        1.0 / frame_time,
                        (image.shape[1], image.shape[0]),
                    )
                writer.write(image)
    finally:
        if writer is not None:
            writer.release()


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


def _clear_previous_outputs(out: pathlib.Path) -> None:
    """Removes an earlier run's outputs from OUT (only the names this module writes): a shorter
    re-run would otherwise leave the old run's later frames and tracks beside its own."""
    old = [
        p
        for pattern in ("json/frame_*.json", "render/frame_*.jpg", "motion*.bvh", "render.mp4")
        for p in out.glob(pattern)
    ]
    if old:
        logger.info("%s: removing %d outputs of an earlier run", out, len(old))
    for p in old:
        p.unlink()


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
    _clear_previous_outputs(out)
    (out / "json").mkdir(parents=True, exist_ok=True)

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
        (out / "json" / f"frame_{f:06d}.json").write_text(json.dumps(doc))
    used = boxes_json(
        result.names, result.people, config.all_people
    )  # one line per frame: easy to edit by hand
    (out / "boxes.json").write_text(
        "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in used.items()) + "\n}\n"
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
        bvh.write_bvh(out / name, poses @ Y_UP.T, frame_time=frame_time, lengths=lengths)
    if config.render:
        _render_pass(config, source, out, result, frame_time)
    print(f"wrote {len(names)} frames ({len(tracks)} track(s)) to {out}", file=sys.stderr)
    return result


def _person(frame_people: list[Person], track: int) -> Person:
    return next(p for p in frame_people if p.track == track)
