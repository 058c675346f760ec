"""BVH motion files: write 3D joint-position sequences, read them back, forward kinematics.

A BVH stores a fixed skeleton (per-joint OFFSETs) and per-frame joint rotations, so positions
are only reproducible when every bone keeps one length. `write_bvh` therefore fits the
sequence to one skeleton first (`fitting.fit_skeleton`; lengths from the rest pose, by default
the first frame) and returns the fitted positions it encoded.

Hierarchy: one BVH joint per skeleton joint, named as in `skeleton.MPII_JOINTS`. A BVH rotation
turns all children of a joint together, which cannot place the three children of the pelvis
(or of the thorax) independently; so a joint with several children gets one zero-offset
pass-through joint per child, named `<parent>_to_<child>`, that carries the rotation of that
bone. The joint's own rotation is the best rigid fit (Kabsch) of its children, so the
pass-through rotations stay small and the file animates sensibly in viewers. Single-child joints
rotate by the minimal (twist-free) rotation that takes the rest bone onto the current one.

Channels: the root has `Xposition Yposition Zposition Zrotation Xrotation Yrotation`, every
other joint `Zrotation Xrotation Yrotation`, angles in degrees. The local rotation is the matrix
product of the channel rotations in the listed order, R = Rz·Rx·Ry (the usual BVH reading, as in
Blender's importer). Positions are in the unit of the input (mm here); the frame is the input's
(callers convert camera frames to y-up first when they want viewer-friendly files).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.inference import fitting

ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


@dataclasses.dataclass
class Bvh:
    """A parsed BVH file.

    Attributes:
        names: name of each joint in file order (End Sites are named `<parent>_end`).
        parents: parent index of each joint, -1 for the root.
        offsets: (K, 3) OFFSET of each joint.
        channels: channel names of each joint (empty for End Sites).
        frame_time: seconds per frame.
        motion: (T, C) channel values, columns in file order.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    frame_time: float
    motion: np.ndarray


# ----------------------------------------------------------------------------------------------
# Rotation helpers (NumPy, batched over leading dimensions).
# ----------------------------------------------------------------------------------------------
def axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(...,) angles in degrees about "X", "Y" or "Z" -> (..., 3, 3) rotation matrices."""
    a = np.deg2rad(np.asarray(degrees, np.float64))
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    rows = {
        "X": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
        "Y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
        "Z": ((c, -s, zero), (s, c, zero), (zero, zero, one)),
    }[axis.upper()]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def euler_zxy_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) degrees (z, x, y) with R = Rz(z)·Rx(x)·Ry(y).

    At gimbal lock (|x| = 90°) y is set to 0 and z absorbs the remaining rotation.
    """
    rot = np.asarray(rot, np.float64)
    sx = np.clip(rot[..., 2, 1], -1.0, 1.0)
    x = np.arcsin(sx)
    locked = np.abs(sx) > 1.0 - 1e-10
    z = np.where(
        locked,
        np.arctan2(rot[..., 1, 0], rot[..., 0, 0]),
        np.arctan2(-rot[..., 0, 1], rot[..., 1, 1]),
    )
    y = np.where(locked, 0.0, np.arctan2(-rot[..., 2, 0], rot[..., 2, 2]))
    return np.rad2deg(np.stack([z, x, y], axis=-1))


def _minimal_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3) directions a, b -> (..., 3, 3) the smallest rotation taking a onto b."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)[..., None, None]
    vx = np.zeros(v.shape[:-1] + (3, 3))
    vx[..., 0, 1], vx[..., 0, 2] = -v[..., 2], v[..., 1]
    vx[..., 1, 0], vx[..., 1, 2] = v[..., 2], -v[..., 0]
    vx[..., 2, 0], vx[..., 2, 1] = -v[..., 1], v[..., 0]
    eye = np.broadcast_to(np.eye(3), vx.shape)
    rot = eye + vx + vx @ vx / np.maximum(1.0 + c, 1e-12)  # Rodrigues with sin, cos from v, c
    # Opposite directions: 180 degrees about any axis perpendicular to a.
    opposite = c[..., 0, 0] < -1.0 + 1e-9
    if np.any(opposite):
        ao = a[opposite]
        helper = np.where(np.abs(ao[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        axis = np.cross(ao, helper)
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        rot[opposite] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return rot


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(..., K, 3) vectors -> (..., 3, 3) rotation R minimising sum ||R src_k - dst_k||^2."""
    h = np.swapaxes(src, -1, -2) @ dst  # (..., 3, 3)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[..., 2, 2] = d
    return np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)


# ----------------------------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Node:
    name: str
    parent: int  # node index, -1 for the root
    joint: int  # skeleton joint this node sits at
    child: int | None  # skeleton joint whose bone this node's rotation aims (None: several/leaf)
    offset: np.ndarray


def _build_nodes(rest: np.ndarray, parents: Sequence[int], names: Sequence[str]) -> list[_Node]:
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(parents))}
    nodes: list[_Node] = []

    def add(joint: int, parent_node: int, offset: np.ndarray) -> None:
        kids = children[joint]
        me = len(nodes)
        nodes.append(
            _Node(names[joint], parent_node, joint, kids[0] if len(kids) == 1 else None, offset)
        )
        for kid in kids:
            bone = rest[kid] - rest[joint]
            if len(kids) == 1:
                add(kid, me, bone)
            else:
                via = len(nodes)
                nodes.append(_Node(f"{names[joint]}_to_{names[kid]}", me, joint, kid, np.zeros(3)))
                add(kid, via, bone)

    add(int(np.flatnonzero(np.asarray(parents) < 0)[0]), -1, np.zeros(3))
    return nodes


def _global_rotations(
    nodes: list[_Node], poses: np.ndarray, rest: np.ndarray, parents: Sequence[int]
) -> np.ndarray:
    """(T, K, 3, 3) global rotation of every node so that FK reproduces `poses`."""
    frames = poses.shape[0]
    glob = np.zeros((frames, len(nodes), 3, 3))
    for k, node in enumerate(nodes):
        parent_rot = (
            glob[:, node.parent] if node.parent >= 0 else np.broadcast_to(np.eye(3), (frames, 3, 3))
        )
        kids = [c for c, p in enumerate(parents) if p == node.joint]
        if node.child is not None:  # aim one bone: minimal rotation on top of the parent's
            current = poses[:, node.child] - poses[:, node.joint]
            rest_now = np.einsum("tij,j->ti", parent_rot, rest[node.child] - rest[node.joint])
            glob[:, k] = _minimal_rotation(rest_now, current) @ parent_rot
        elif kids:  # several children: best rigid fit; the pass-through nodes correct each bone
            src = np.broadcast_to(rest[kids] - rest[node.joint], (frames, len(kids), 3))
            dst = poses[:, kids] - poses[:, node.joint][:, None]
            glob[:, k] = _kabsch(src, dst)
        else:  # leaf: nothing hangs off it
            glob[:, k] = parent_rot
    return glob


def write_bvh(
    path: str | pathlib.Path,
    poses: np.ndarray,
    frame_time: float = 1.0 / 25.0,
    rest_pose: np.ndarray | None = None,
    lengths=None,
    parents: Sequence[int] = skeleton.MPII_PARENTS,
    names: Sequence[str] = skeleton.MPII_JOINTS,
) -> np.ndarray:
    """Write a joint-position sequence as a BVH file.

    Args:
        path: output file.
        poses: (T, J, 3) joint positions (root-relative or absolute; the root channels carry the
            root position).
        frame_time: seconds per frame (1/fps).
        rest_pose: (J, 3) pose whose bone vectors become the OFFSETs; default the first frame.
        lengths: bone lengths to fit every frame to (`fitting.bone_length_table`); default the
            rest pose's own lengths.
        parents, names: the skeleton (MPII-16 by default).

    Returns:
        (T, J, 3) the fitted positions the file encodes (FK of the file reproduces them).
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (len(parents), 3) or poses.shape[0] < 1:
        raise ValueError(f"poses must be (T, {len(parents)}, 3). Received: shape={poses.shape}")
    bones = [(j, p) for j, p in enumerate(parents) if p >= 0]
    rest = poses[0] if rest_pose is None else np.asarray(rest_pose, np.float64)
    if lengths is None:
        lengths = skeleton.bone_lengths(rest, bones)
    rest = fitting.fit_skeleton(rest, lengths, parents)
    fitted = fitting.fit_skeleton(poses, lengths, parents)

    nodes = _build_nodes(rest, parents, names)
    glob = _global_rotations(nodes, fitted, rest, parents)
    columns = []
    for k, node in enumerate(nodes):
        parent_rot = glob[:, node.parent] if node.parent >= 0 else np.eye(3)
        local = np.swapaxes(parent_rot, -1, -2) @ glob[:, k]
        if node.parent < 0:
            columns.append(fitted[:, node.joint])
        columns.append(euler_zxy_from_matrix(local))
    motion = np.concatenate(columns, axis=1)  # (T, C)

    lines = ["HIERARCHY"]
    kids_of = {k: [i for i, n in enumerate(nodes) if n.parent == k] for k in range(len(nodes))}

    def emit(k: int, depth: int) -> None:
        pad = "  " * depth
        node = nodes[k]
        lines.append(f"{pad}{'ROOT' if node.parent < 0 else 'JOINT'} {node.name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET " + " ".join(f"{v:.6f}" for v in node.offset))
        chans = ROOT_CHANNELS if node.parent < 0 else JOINT_CHANNELS
        lines.append(f"{pad}  CHANNELS {len(chans)} " + " ".join(chans))
        for kid in kids_of[k]:
            emit(kid, depth + 1)
        if not kids_of[k]:  # a leaf joint: zero-length end site (the joint itself is the tip)
            lines.extend(
                [
                    f"{pad}  End Site",
                    f"{pad}  {{",
                    f"{pad}    OFFSET 0.000000 0.000000 0.000000",
                    f"{pad}  }}",
                ]
            )
        lines.append(f"{pad}}}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {motion.shape[0]}", f"Frame Time: {frame_time:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return fitted


# ----------------------------------------------------------------------------------------------
# Reading and forward kinematics.
# ----------------------------------------------------------------------------------------------
def read_bvh(path: str | pathlib.Path) -> Bvh:
    """Parse a BVH file (any channel order; End Sites become joints named `<parent>_end`)."""
    path = pathlib.Path(path)
    tokens = path.read_text().split()
    names, parents, offsets, channels = [], [], [], []
    pos, stack = 0, []

    def expect(word: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != word:
            got = tokens[pos] if pos < len(tokens) else "end of file"
            raise ValueError(
                f"{path}: malformed BVH, expected {word!r} at token {pos}, got {got!r}"
            )
        pos += 1

    expect("HIERARCHY")
    while pos < len(tokens) and tokens[pos] != "MOTION":
        word = tokens[pos]
        if word in ("ROOT", "JOINT"):
            names.append(tokens[pos + 1])
            pos += 2
        elif word == "End":
            names.append(f"{names[stack[-1]]}_end")
            pos += 2
        elif word == "}":
            stack.pop()
            pos += 1
            continue
        else:
            raise ValueError(f"{path}: malformed BVH, unexpected token {word!r} at {pos}")
        parents.append(stack[-1] if stack else -1)
        stack.append(len(names) - 1)
        expect("{")
        expect("OFFSET")
        offsets.append([float(v) for v in tokens[pos : pos + 3]])
        pos += 3
        if tokens[pos] == "CHANNELS":
            n = int(tokens[pos + 1])
            channels.append(tuple(tokens[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        else:
            channels.append(())
    expect("MOTION")
    expect("Frames:")
    frames = int(tokens[pos])
    pos += 1
    expect("Frame")
    expect("Time:")
    frame_time = float(tokens[pos])
    pos += 1
    width = sum(len(c) for c in channels)
    values = np.asarray(tokens[pos:], np.float64)
    if values.size != frames * width:
        raise ValueError(
            f"{path}: MOTION has {values.size} values, expected Frames ({frames}) x channels "
            f"({width})"
        )
    return Bvh(
        names,
        parents,
        np.asarray(offsets, np.float64),
        channels,
        frame_time,
        values.reshape(frames, width),
    )


def forward_kinematics(bvh: Bvh) -> np.ndarray:
    """Global position of every joint of a parsed BVH in every frame: (T, K, 3)."""
    frames = bvh.motion.shape[0]
    pos = np.zeros((frames, len(bvh.names), 3))
    rot = np.zeros((frames, len(bvh.names), 3, 3))
    col = 0
    for k, chans in enumerate(bvh.channels):
        translation = np.broadcast_to(bvh.offsets[k], (frames, 3)).copy()
        local = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
        for name in chans:
            values = bvh.motion[:, col]
            col += 1
            if name.endswith("position"):
                translation[:, "XYZ".index(name[0].upper())] += values
            elif name.endswith("rotation"):
                local = local @ axis_rotation(name[0], values)
            else:
                raise ValueError(f"unknown BVH channel {name!r} on joint {bvh.names[k]!r}")
        parent = bvh.parents[k]
        if parent < 0:
            pos[:, k], rot[:, k] = translation, local
        else:
            pos[:, k] = pos[:, parent] + np.einsum("tij,tj->ti", rot[:, parent], translation)
            rot[:, k] = rot[:, parent] @ local
    return pos


def joint_positions(bvh: Bvh, names: Sequence[str] = skeleton.MPII_JOINTS) -> np.ndarray:
    """FK positions of the named joints, (T, len(names), 3)."""
    missing = [n for n in names if n not in bvh.names]
    if missing:
        raise KeyError(f"BVH has no joints named {missing}; it has {bvh.names}")
    return forward_kinematics(bvh)[:, [bvh.names.index(n) for n in names]]
