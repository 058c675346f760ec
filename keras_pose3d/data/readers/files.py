"""File access of the raw-data readers through `tf.io.gfile`, so any filesystem TensorFlow knows
(local disk, gs://, s3://, hdfs://, the in-process ram://) holds the raw releases.

Libraries that insist on a path on local disk (cv2.VideoCapture, cdflib) get one from
`local_copy`: the file itself when it already is local, else a private temporary copy that is
deleted afterwards. scipy.io.loadmat and h5py read the bytes from memory (`read_bytes` +
io.BytesIO); the camera-file parsers of `keras_pose3d.camera` take the text (`read_bytes`).

Path-escape checks: a dataset-derived name must stay under the input root, as text
(`escapes_root`, `not_a_plain_name`: no `../`, absolute paths, URLs) and on disk
(`resolves_outside`, `leaves_root`: no symlink in the release that points outside it).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator

import tensorflow as tf

# "gs://", "s3://", "hdfs://", "ram://", "file://": a URL scheme as tf.io.gfile reads it.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def has_scheme(path: str | os.PathLike) -> bool:
    """True for `gs://b/x`, `ram://x`, `file:///x`; False for plain local paths."""
    return bool(_SCHEME.match(os.fspath(path)))


def is_local(path: str | os.PathLike) -> bool:
    """True when `path` is on the local filesystem (no scheme, or file://)."""
    text = os.fspath(path)
    return not has_scheme(text) or text.startswith("file://")


def join(root: str | os.PathLike, *parts: str) -> str:
    """`os.path.join` that keeps URL roots intact (`gs://b/x` + `y` -> `gs://b/x/y`)."""
    root = os.fspath(root)
    if not has_scheme(root):
        return os.path.join(root, *parts)
    return posixpath.join(root, *parts)


def absolute(path: str | os.PathLike) -> str:
    """A local path made absolute; URLs unchanged (os.path.abspath would mangle `gs://`)."""
    text = os.fspath(path)
    return text if has_scheme(text) else os.path.abspath(text)


def check_filesystem(path: str | os.PathLike) -> None:
    """Raises ValueError when TensorFlow has no filesystem for the path's scheme.

    (`tf.io.gfile.isdir` answers False for an unknown scheme, which would read as "does not
    exist".) s3:// comes with the tensorflow-io plugin, not with TensorFlow itself.
    """
    text = os.fspath(path)
    try:
        tf.io.gfile.exists(text)
    except tf.errors.UnimplementedError as err:
        raise ValueError(
            f"cannot read {text!r}: {err.message} (TensorFlow reads local paths, gs://, "
            "hdfs://, ram://; s3:// needs the tensorflow-io plugin imported)"
        ) from None


def exists(path: str | os.PathLike) -> bool:
    return tf.io.gfile.exists(os.fspath(path))


def isfile(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return tf.io.gfile.exists(text) and not tf.io.gfile.isdir(text)


def isdir(path: str | os.PathLike) -> bool:
    return tf.io.gfile.isdir(os.fspath(path))


def glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern on any filesystem."""
    return sorted(tf.io.gfile.glob(pattern))


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """The whole file.

    Opened directly, without asking first whether it exists: on object storage every stat
    is a request, and the jobs read one file per image.

    Raises:
        FileNotFoundError: naming `what` and the path (also for a directory).
    """
    text = os.fspath(path)
    try:
        with tf.io.gfile.GFile(text, "rb") as f:
            return f.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"{what} not found: {text}") from None
    except (tf.errors.FailedPreconditionError, tf.errors.InvalidArgumentError):
        if isdir(text):  # local disk and ram:// say "is a directory" this way
            raise FileNotFoundError(f"{what} not found: {text} is a directory") from None
        raise


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The whole file as UTF-8 text.

    Raises:
        FileNotFoundError: naming `what` and the path.
        ValueError: the file is not UTF-8, naming it.
    """
    try:
        return read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{os.fspath(path)}: {what} is not UTF-8 text ({err})") from None


@contextlib.contextmanager
def local_copy(path: str | os.PathLike, what: str = "file") -> Iterator[str]:
    """A local path holding the file's bytes, for libraries that only open local paths.

    Local files are yielded as they are (no copy). Others are copied into a new temporary
    directory under the same base name (so extension sniffing still works) and deleted on
    exit. Errors raised inside that name the temporary copy are re-raised naming `path`.

    Raises:
        FileNotFoundError: naming `what` and the path.
    """
    text = os.fspath(path)
    if is_local(text):
        local = text.removeprefix("file://")
        if not os.path.isfile(local):
            raise FileNotFoundError(f"{what} not found: {text}")
        yield local
        return
    if not isfile(text):
        raise FileNotFoundError(f"{what} not found: {text}")
    tmp_dir = tempfile.mkdtemp(prefix="keras_pose3d-")
    local = os.path.join(tmp_dir, posixpath.basename(text) or "file")
    try:
        tf.io.gfile.copy(text, local, overwrite=True)
        try:
            yield local
        except ValueError as err:
            if local in str(err):
                raise ValueError(str(err).replace(local, text)) from err
            raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def escapes_root(name: str) -> str | None:
    """Why a dataset-derived relative file name is unsafe to join under the input root, or None.

    Refused: empty names, absolute paths (`/x`, `\\x`, `C:x`), URLs (`gs://...`) and names
    whose normalised form climbs above the root (`../x`, `a/../../x`); backslashes count as
    separators (names come from MATLAB / XML files written on any OS).
    """
    if not name or not name.strip():
        return "empty file name"
    if has_scheme(name):
        return f"file name {name!r} is a URL, expected a name relative to the input root"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return f"file name {name!r} is absolute, expected a name relative to the input root"
    normalised = posixpath.normpath(unified)
    if normalised == ".." or normalised.startswith("../"):
        return f"file name {name!r} leaves the input root"
    return None


def resolves_outside(root: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """Why the local file `path` is not inside the folder `root` once symlinks are followed
    (a link in the release that points elsewhere on the machine), or None.

    Both sides are resolved (`os.path.realpath`), so a root that is itself a link, or links
    that stay inside the root, are fine. Object stores (gs://, s3://, ram://) have no links:
    None for URLs.
    """
    root_text, path_text = os.fspath(root), os.fspath(path)
    if not (is_local(root_text) and is_local(path_text)):
        return None
    real_root = os.path.realpath(root_text.removeprefix("file://"))
    real = os.path.realpath(path_text.removeprefix("file://"))
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return f"{path_text} is a link to {real}, outside the input root {root_text}"


def leaves_root(root: str | os.PathLike, name: str) -> str | None:
    """Why the dataset-derived relative name cannot be read under `root`, or None: the name
    itself (`escapes_root`: `../`, absolute, URL) or, on local disk, a symlink on the way that
    resolves outside `root` (`resolves_outside`)."""
    reason = escapes_root(name)
    if reason is not None:
        return reason
    return resolves_outside(root, join(root, name))


def not_a_plain_name(name: str) -> str | None:
    """Why a dataset-derived name that should be one path component (a sequence name joined
    under several folders) is not, or None. Stricter than `escapes_root`: any separator is
    refused, so the name cannot reach another folder of the release, or leave it however deep
    it is joined (an absolute `/x` would replace the whole path in `os.path.join`)."""
    reason = escapes_root(name)
    if reason is not None:
        return reason
    if "/" in name or "\\" in name:
        return f"file name {name!r} holds a path separator, expected a plain name"
    if name.strip() in (".", ".."):
        return f"file name {name!r} is not a file name"
    return None
