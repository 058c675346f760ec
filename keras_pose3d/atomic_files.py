"""Write files and folders so that readers see the old version or the whole new one, never a part.

A kill -9 (or a crash, or a full disk) during a plain write leaves a truncated file under the
final name; a reader (TF-Serving polling models.config, `export` reading tp_net.keras) then
fails or, worse, loads it. Here everything is written under a temporary name in the same folder
(same filesystem, so the final `os.replace` is one atomic rename), flushed to disk, then renamed.
Temporary names start with TMP_PREFIX; `stale_temporaries` finds the ones a killed writer left.
"""

from __future__ import annotations

import errno
import os
import pathlib
import socket
import uuid
from collections.abc import Callable

TMP_PREFIX = ".tmp-"
# Bytes `check_writable` writes (and removes): a filesystem with less room left fails it.
PROBE_BYTES = 1 << 20


def temporary_name(final: str | pathlib.Path, suffix: str = "") -> pathlib.Path:
    """A fresh temporary path next to `final`: .tmp-<host>-<pid>-<random>-<name><suffix>.

    Host and pid say who wrote it (`stale_temporaries`); the name starts with a dot and holds
    letters, so TF-Serving never mistakes a temporary export folder for a version.
    """
    final = pathlib.Path(final)
    host = socket.gethostname().replace("-", "_") or "host"
    return final.with_name(
        f"{TMP_PREFIX}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}{suffix}"
    )


def _fsync(path: pathlib.Path) -> None:
    """Flush a file (or a folder's entries) to disk, so the rename never outruns the data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: pathlib.Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            _fsync(pathlib.Path(root) / name)
        _fsync(pathlib.Path(root))


def write_text(path: str | pathlib.Path, text: str) -> pathlib.Path:
    """Replace `path` with `text` atomically (module docstring)."""
    path = pathlib.Path(path)
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_with(
    path: str | pathlib.Path, writer: Callable[[pathlib.Path], object], suffix: str = ""
) -> pathlib.Path:
    """Call `writer(tmp)` to write a temporary file, then rename it to `path` atomically.

    Args:
        path: the final file.
        writer: writes the whole file to the path it is given.
        suffix: appended to the temporary name, for writers that check the extension (Keras
            saves only to names ending in .keras).

    On any error the temporary file is removed and `path` is left as it was; an OSError about
    the temporary file (a full or read-only disk) is raised again naming `path`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, suffix)
    try:
        writer(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.strerror and (err.filename is None or os.fsdecode(err.filename) == str(tmp)):
            raise OSError(err.errno, f"cannot write the file ({err.strerror})", str(path)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)
    return path


def publish_folder(tmp: pathlib.Path, final: pathlib.Path) -> None:
    """Rename the complete folder `tmp` to `final` (which must not exist) atomically.

    Raises:
        FileExistsError: `final` exists (another writer took the name); `tmp` is left in place.
    """
    _fsync_tree(tmp)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    # os.rename onto an existing empty folder would replace it silently; the check above and
    # the OSError below (a non-empty folder created in between) cover a concurrent writer.
    try:
        os.rename(tmp, final)
    except OSError as err:
        if final.exists():
            raise FileExistsError(f"{final} already exists") from err
        raise
    _fsync(final.parent)


def check_writable(path: str | pathlib.Path) -> None:
    """Raises OSError naming `path` unless files can be written in the folder `path`.

    The folder (and its parents) is created when absent; then a probe of PROBE_BYTES is written
    under a temporary name, flushed to disk and removed. A read-only filesystem, a folder
    without write permission (also for root, which ignores permission bits but not a read-only
    mount) and a full disk all fail here, in a second, instead of after hours of work.

    Raises:
        NotADirectoryError: `path` (or a parent) is a file.
        OSError: with the errno of the failure (EROFS, EACCES, ENOSPC, ...), naming `path`.
    """
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            errno.ENOTDIR, "exists and is not a folder; expected an output folder", str(path)
        ) from None
    except OSError as err:
        raise OSError(
            err.errno, f"cannot create the output folder ({err.strerror})", str(path)
        ) from err
    if not path.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, "exists and is not a folder; expected an output folder", str(path)
        )
    probe = temporary_name(path / "writable-probe")
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OSError(
            err.errno, f"output folder is not writable ({err.strerror})", str(path)
        ) from err
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def stale_temporaries(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Temporaries in `folder` whose writer is gone: written on this host by a dead process.

    A temporary from another host is never called stale (its writer may still be running).
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname().replace("-", "_") or "host"
    stale = []
    for p in folder.glob(TMP_PREFIX + "*"):
        parts = p.name[len(TMP_PREFIX) :].split("-")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            stale.append(p)
    return sorted(stale)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
