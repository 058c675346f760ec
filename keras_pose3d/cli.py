"""One convention for every entry point: a bad input prints `error: ...` and exits 2.

Errors raised for bad input already name the file, key or field; a traceback adds nothing for
the user. Bugs (anything else) still raise with their traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

# What bad input raises across the project (missing files, bad values, missing keys).
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)


def exits_cleanly(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a `main(argv=None)`: user errors become `error: ...` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"error: {message}", file=sys.stderr)
            return 2

    return wrapper
