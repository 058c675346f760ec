"""One convention for every entry point: a bad input, or a filesystem / storage failure, prints
one line `error: ...` and exits 2.

What is caught (`exits_cleanly`):

* bad input (`USER_ERRORS`): missing files, bad values, missing keys; their messages already
  name the file, key or field;
* every other `OSError`: a read-only or full filesystem, a permission denied; printed as
  `PATH: reason` when the error carries the path;
* TensorFlow's I/O and data errors (`TF_ERRORS`: a corrupt record, a file it cannot read or
  write, an unknown filesystem); TensorFlow is looked up in `sys.modules`, never imported, so
  this module stays TensorFlow-free (an error of a library that was never loaded cannot occur);
* YAML syntax errors (the file, line and column are in the message).

A traceback adds nothing for the user; `--debug` on the command line (taken out before the
entry point parses its flags) or `KP3D_DEBUG=1` in the environment prints it above the
`error:` line. Bugs (anything else) still raise with their traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable

import yaml

# What bad input raises across the project (missing files, bad values, missing keys).
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)
# Environment failures that name a path: read-only, full, permission denied (all OSError).
ENVIRONMENT_ERRORS = (OSError, yaml.YAMLError)
# tf.errors classes (by name) that mean storage or data, not a bug in the program.
TF_ERRORS = (
    "DataLossError",
    "NotFoundError",
    "PermissionDeniedError",
    "AlreadyExistsError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "UnimplementedError",
    "UnavailableError",
    "UnauthenticatedError",
)
DEBUG_FLAG = "--debug"
DEBUG_ENV = "KP3D_DEBUG"


# True while an entry point that was given `--debug` runs (the flag is gone from its argv).
_debug_flag = False


def debug_requested(argv: list[str] | None = None) -> bool:
    """True when the running entry point was given `--debug`, `--debug` is in `argv` (default
    sys.argv) or KP3D_DEBUG is set to something other than 0 / false / no / empty."""
    if _debug_flag:
        return True
    if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return DEBUG_FLAG in (sys.argv[1:] if argv is None else list(argv))


def _tf_error_classes() -> tuple[type, ...]:
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None) if tf is not None else None
    if errors is None:
        return ()
    return tuple(getattr(errors, name) for name in TF_ERRORS if hasattr(errors, name))


def is_handled(error: BaseException) -> bool:
    """True for the errors `exits_cleanly` turns into one `error:` line (module docstring)."""
    return isinstance(error, USER_ERRORS + ENVIRONMENT_ERRORS + _tf_error_classes())


def _tf_message(error: BaseException) -> str:
    """The line of a TensorFlow error that says what happened, not where in the graph."""
    text = getattr(error, "message", None) or str(error)
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "Traceback")
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith(noise)] or lines or [""]
    line = useful[0]
    if line.startswith("{{function_node"):  # "{{function_node __wrapped__...}} message"
        line = line.split("}}", 1)[-1].strip()
    return line.split(" [Op:", 1)[0]


def error_message(error: BaseException) -> str:
    """The text after `error: ` for a handled error: one line that names the path when the
    error carries one."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, _tf_error_classes()):
        return _tf_message(error)
    if isinstance(error, yaml.YAMLError):
        return " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else None
        if where is None:
            return error.strerror
        text = f"{os.fsdecode(where)}: {error.strerror}"
        if error.filename2 is not None:
            text += f" (-> {os.fsdecode(error.filename2)})"
        return text
    return str(error)


def exits_cleanly(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a `main(argv=None)`: handled errors (module docstring) become one
    `error: ...` line on stderr and exit code 2; `--debug` is taken out of argv."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        global _debug_flag
        argv = args[0] if args else kwargs.get("argv")
        given = sys.argv[1:] if argv is None else list(argv)
        flag = DEBUG_FLAG in given
        if flag:
            kwargs.pop("argv", None)
            args = ([a for a in given if a != DEBUG_FLAG], *args[1:])
        outer, _debug_flag = _debug_flag, _debug_flag or flag
        try:
            return main(*args, **kwargs) or 0
        except Exception as e:
            if not is_handled(e):
                raise
            if debug_requested([]):
                traceback.print_exc()
            print(f"error: {error_message(e)}", file=sys.stderr)
            return 2
        finally:
            _debug_flag = outer

    return wrapper
