"""Real Human3.6M motion and cameras for the experiments: loading, placement, projection.

Data: `realdata/h36m_motion/S*.npz` (17-joint H36M positions in mm at 25 fps, root-relative;
we use the `<seq>/global_rot` arrays, which keep the root orientation, so the body turns as it
really did) and the real cameras of `realdata/h36m/metadata.xml` (through `keras_pose3d.camera`).

Placement (the motion has no global position; this is our choice, documented in README.md):
every sequence is put once into the H36M world frame (z up, floor near z = 0) with its pelvis at
a point drawn uniformly in a disc of radius `PLACE_RADIUS_MM` around the capture-area centre
(world origin), at height `PELVIS_HEIGHT_MM`, rotated about the vertical by a uniform random yaw.
The subject's four real cameras (~5.5 m from the origin, 1.5 m high, tilted down ~11 deg) then see
it at 4.3-6.6 m. The pelvis frame's own tilt (~10 deg from gravity, see the motion README) is kept.

Splits follow the paper: train S1, S5, S6, S7, S8; test S9, S11. The S5 sequences that are
byte-identical to S6/S8/S11 ones are dropped (motion README), so train and test are disjoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.camera import Camera, load_h36m_cameras

REALDATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
MOTION_DIR = REALDATA / "h36m_motion"
METADATA_XML = REALDATA / "h36m" / "metadata.xml"

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
# Byte-identical copies of other subjects' sequences (h36m_motion/README.md); dropped.
DUPLICATED = {"S5": ("SittingDown_2", "Smoking_1", "Smoking_2", "Posing_1", "Posing_2")}
FPS = 25.0
PLACE_RADIUS_MM = 1000.0
PELVIS_HEIGHT_MM = 900.0


@dataclasses.dataclass
class Sequence:
    """One real motion sequence.

    Attributes:
        subject: "S9".
        name: "Walking_1" (action and sub-action).
        poses: (T, 17, 3) float64 H36M-17, mm, root-relative, body frame (x right, y forward,
            z up of the first frame's pelvis).
    """

    subject: str
    name: str
    poses: np.ndarray

    @property
    def action(self) -> str:
        return self.name.rsplit("_", 1)[0]


def motion_available(motion_dir: pathlib.Path = MOTION_DIR) -> bool:
    """True when the real motion and metadata.xml are present."""
    return (motion_dir / "S1.npz").exists() and METADATA_XML.exists()


def load_motion(
    subjects: tuple[str, ...],
    motion_dir: pathlib.Path = MOTION_DIR,
    every: int = 1,
    global_rot: bool = True,
    max_sequences: int | None = None,
) -> list[Sequence]:
    """Loads real H36M motion sequences.

    Args:
        subjects: e.g. TRAIN_SUBJECTS.
        motion_dir: folder with S*.npz.
        every: keep every n-th frame (1 = 25 fps).
        global_rot: use the `/global_rot` arrays (root orientation kept).
        max_sequences: keep at most this many per subject (quick modes).
    Returns:
        Sequences sorted by subject then name, duplicated S5 entries dropped.
    """
    out = []
    for subject in subjects:
        path = pathlib.Path(motion_dir) / f"{subject}.npz"
        if not path.exists():
            raise FileNotFoundError(f"real motion file {path} is absent (see realdata/README.md)")
        with np.load(path) as z:
            names = sorted(k for k in z.files if "/" not in k)
            names = [n for n in names if n not in DUPLICATED.get(subject, ())]
            if max_sequences is not None:
                names = names[:max_sequences]
            for name in names:
                key = f"{name}/global_rot" if global_rot else name
                poses = np.asarray(z[key], dtype=np.float64)[::every]
                if poses.ndim != 3 or poses.shape[1:] != (17, 3):
                    raise ValueError(f"{path}: key {key!r} must be (T, 17, 3). Got {poses.shape}")
                out.append(Sequence(subject, name, poses))
    return out


def load_cameras(metadata_xml: pathlib.Path = METADATA_XML) -> dict[tuple[str, str], Camera]:
    """(subject, camera id) -> real H36M camera (keras_pose3d.camera)."""
    return load_h36m_cameras(metadata_xml)


def yaw_matrix(theta: float) -> np.ndarray:
    """(3, 3) rotation about the world z (up) axis."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def place_in_world(poses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, J, 3) root-relative body-frame poses -> world mm (one random placement per call)."""
    r = PLACE_RADIUS_MM * np.sqrt(rng.uniform())
    phi = rng.uniform(0.0, 2.0 * np.pi)
    root = np.array([r * np.cos(phi), r * np.sin(phi), PELVIS_HEIGHT_MM])
    rot = yaw_matrix(rng.uniform(0.0, 2.0 * np.pi))
    return poses @ rot.T + root


def to_camera_mpii(world17: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World H36M-17 poses -> MPII-16 camera-frame mm and distorted pixels.

    Args:
        world17: (T, 17, 3) world mm.
        camera: a real H36M camera.
    Returns:
        cam (T, 16, 3) camera mm; uv (T, 16, 2) pixels (distortion applied, as the real 2D).
    """
    cam = skeleton.h36m17_to_mpii(camera.world_to_camera(world17))
    return cam, camera.project(cam)


def zhou_normalise(cam: np.ndarray, uv: np.ndarray, fx: np.ndarray) -> dict[str, np.ndarray]:
    """Zhou et al.'s weak-perspective representation, root-centred (docs/architecture.md).

    The crop is the square box around the 2D joints with side `1.2 * max(w, h)` (mmpose rule);
    its half side `s` (px) is the unit. x, y = (uv - uv_root) / s; z = (Z - Z_root) fx / Z_root / s,
    so all three axes are in the same units and the structure losses see an isotropic pose.

    Args:
        cam: (N, 16, 3) camera mm.
        uv: (N, 16, 2) pixels.
        fx: (N,) focal length in px.
    Returns:
        dict with xy (N, 16, 2), z (N, 16), scale (N,) = s, root_depth (N,) mm, all float32.
    """
    root = skeleton.ROOT
    side = 1.2 * np.max(uv.max(axis=1) - uv.min(axis=1), axis=-1)  # (N,)
    s = side / 2.0
    xy = (uv - uv[:, root : root + 1]) / s[:, None, None]
    zr = cam[:, root, 2]
    z = (cam[..., 2] - zr[:, None]) * fx[:, None] / zr[:, None] / s[:, None]
    return {
        "xy": xy.astype(np.float32),
        "z": z.astype(np.float32),
        "scale": s.astype(np.float32),
        "root_depth": zr.astype(np.float32),
    }


def depth_to_camera_mm(
    z: np.ndarray, scale: np.ndarray, root_depth: np.ndarray, fx: np.ndarray, rays: np.ndarray
) -> np.ndarray:
    """Predicted normalised depth -> camera mm along known joint rays, root-relative.

    With ground-truth 2D, joint j lies on the ray (X/Z, Y/Z, 1) of its true image point; only
    the depth is predicted: Z_j = Z_root + z_j s Z_root / fx (the inverse of `zhou_normalise`,
    with the ground-truth root depth that the paper's protocol assumes).

    Args:
        z: (N, 16) normalised depth.
        scale: (N,) half crop side, px.
        root_depth: (N,) mm.
        fx: (N,) px.
        rays: (N, 16, 3) undistorted rays (x/z, y/z, 1).
    Returns:
        (N, 16, 3) root-relative camera mm.
    """
    depth = root_depth[:, None] + z * (scale * root_depth / fx)[:, None]
    pts = rays * depth[..., None]
    return pts - pts[:, skeleton.ROOT : skeleton.ROOT + 1]


# ----------------------------------------------------------------------------------------------
# Results files: a raw JSON beside a Markdown that is a pure function of it.
# ----------------------------------------------------------------------------------------------
def cpu_model() -> str | None:
    """The machine's CPU model: /proc/cpuinfo's `model name`, else lscpu's `Model name`."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def git_commit() -> str | None:
    """HEAD of the repository this file is in (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=pathlib.Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def command_line(module: str, argv: list[str] | None) -> str:
    """`python -m MODULE ARGS` exactly as run (arguments shell-quoted)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *args])


def make_record(
    module: str,
    argv: list[str] | None,
    results: dict,
    wall_s: float,
    cpu_s: float,
    provenance: str,
    commit: str | None = None,
) -> dict:
    """What a results JSON holds: the raw results plus what its Markdown prints about the run.

    Args:
        module: the generator, e.g. "experiments.temporal" (its `to_markdown(stored)` renders).
        argv: the command's arguments (None: sys.argv[1:]).
        results: the raw results dict of the run.
        wall_s, cpu_s: wall time and process CPU time (all threads) of the run, seconds.
        provenance: how the figures were obtained (a fresh run, or what they were rebuilt from).
        commit: the git commit the run started from (`git_commit()` taken at its start; other
            people may commit while it runs); None: HEAD now.
    """
    return {
        "generator": module,
        "command": command_line(module, argv),
        "provenance": provenance,
        "git_commit": commit or git_commit(),
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()},
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "results": results,
    }


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"results hold a {type(value).__name__}, which JSON cannot store: {value!r}")


def dumps(stored: dict) -> str:
    """The JSON text of a results record (numpy scalars and arrays as numbers and lists)."""
    return json.dumps(stored, indent=1, ensure_ascii=False, default=_jsonable) + "\n"


def json_path_for(md_path: str | os.PathLike) -> pathlib.Path:
    """results_NAME.md -> results_NAME.json (the same folder)."""
    path = pathlib.Path(md_path)
    if path.suffix != ".md":
        raise ValueError(f"a results Markdown must end in .md. Received: {md_path}")
    return path.with_suffix(".json")


def write_results(stored: dict, to_markdown, out_md: str | os.PathLike | None) -> str:
    """Writes results_NAME.json and results_NAME.md beside it; returns (and prints) the Markdown.

    The Markdown is rendered from the JSON text as read back (not from the in-memory dict), so
    `render` on the written JSON gives the same bytes.
    """
    text = dumps(stored)
    md = to_markdown(json.loads(text))
    print(md)
    if out_md:
        json_path = json_path_for(out_md)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text, encoding="utf-8")
        pathlib.Path(out_md).write_text(md, encoding="utf-8")
    return md


def render(json_file: str | os.PathLike, to_markdown, out_md: str | os.PathLike | None = None):
    """Rewrites the Markdown of a stored results JSON (default: beside it, .md); returns it."""
    json_file = pathlib.Path(json_file)
    md = to_markdown(json.loads(json_file.read_text(encoding="utf-8")))
    pathlib.Path(out_md or json_file.with_suffix(".md")).write_text(md, encoding="utf-8")
    return md


def run_footer(stored: dict) -> str:
    """The closing line of a results Markdown: times, cores, CPU model, provenance."""
    machine = stored["machine"]
    cpu = machine.get("cpu_model") or "CPU model not recorded"
    text = f"Wall time: {stored['wall_s']:.0f} s"
    if stored.get("cpu_s") is not None:
        text += f" (process CPU time {stored['cpu_s']:.0f} s)"
    text += f"; {machine['cpu_count']} cores, {cpu}."
    if stored.get("git_commit"):
        text += f" Commit {stored['git_commit'][:10]}."
    return text + f"\n\nProvenance: {stored['provenance']}\n"


def add_results_arguments(parser, default_out: str) -> None:
    """`--out` (the results Markdown; its JSON goes beside it) and `--render JSON` (rewrite the
    Markdown from a stored JSON, no run): every experiment's command has both."""
    parser.add_argument(
        "--out",
        default=default_out,
        help="results Markdown; the raw results go to the .json beside it",
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="only rewrite the Markdown beside this stored results JSON (no run)",
    )


def run_and_write(module: str, argv, compute, to_markdown, out_md) -> dict:
    """Run `compute()` (-> the raw results dict), time it, and write results_NAME.{json,md}
    through `make_record` and `write_results`; returns the results."""
    t0, cpu0, commit = time.time(), time.process_time(), git_commit()
    results = compute()
    stored = make_record(
        module,
        argv,
        results,
        wall_s=time.time() - t0,
        cpu_s=time.process_time() - cpu0,
        provenance="a run of the command above; every figure is this run's output.",
        commit=commit,
    )
    write_results(stored, to_markdown, out_md)
    return results


def mean_std(values, digits: int = 1) -> str:
    """Mean ± sample std over seeds (the mean alone for one seed), `digits` decimals; a mean
    that rounds to zero prints as 0, not -0."""
    v = np.asarray(values, np.float64)
    mean = f"{float(np.round(v.mean(), digits)) + 0.0:.{digits}f}"
    return mean if len(v) == 1 else f"{mean} ± {v.std(ddof=1):.{digits}f}"
