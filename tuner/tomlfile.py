"""Reading a user's TOML file (a study spec or a space) without trusting it.

A path may name a device, a FIFO or a folder (``space = "/dev/zero"`` reads until the kernel
kills the process); the bytes may be binary or latin-1; the TOML may nest so deep that tomllib
overflows the stack, or hold a key of 100000 dotted parts, which tomllib reads in time
quadratic in its parts (hours) and which would overflow every recursive walk after it. Each of
these is a one-line problem here, before anything else reads the file.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

#: The largest spec or space file read: real ones are a few hundred bytes.
MAX_BYTES = 1 << 20
#: The longest path or reference a file may name (Linux's PATH_MAX).
MAX_PATH = 4096
#: The deepest nesting of tables and arrays accepted; a space needs 3 (optimizer.sgd.lr's range).
MAX_DEPTH = 8

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
#: A dotted key nesting deeper than MAX_DEPTH, where a key may start (a line, after `{` or `,`):
#: found before tomllib spends quadratic time on it. A string that looks like one there (after a
#: comma, ten dotted words) is refused too; no spec or space holds such a string.
_DEEP_KEY = re.compile(
    rf"(?:^|[{{,])[ \t]*{_PART}(?:[ \t]*\.[ \t]*{_PART}){{{MAX_DEPTH + 1},}}", re.MULTILINE
)


class TomlFileError(Exception):
    """Why a file cannot be read as TOML, as "<problem>; <fix>" without the file's name.

    Not a UserError: the caller adds the file's name and raises its own error type.
    """

    def __init__(self, problem: str, *, missing: bool = False) -> None:
        super().__init__(problem)
        self.missing = missing


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document in ``path``: a regular UTF-8 file of at most `MAX_BYTES`, nested at
    most `MAX_DEPTH` deep.

    Raises:
        TomlFileError: on the first problem; ``missing`` is set when no file is there.
    """
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise TomlFileError("no such file", missing=True) from None
    except OSError as exc:
        raise TomlFileError(f"cannot be read ({exc.strerror}); check the path") from None
    except ValueError:  # a NUL in the path
        raise TomlFileError("is not a valid path; check the path") from None
    if _DEEP_KEY.search(text):
        raise _too_deep()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"invalid TOML: {exc}; fix the syntax there") from None
    except ValueError:  # tomllib's one plain ValueError: int() refuses so many digits
        raise TomlFileError(
            f"invalid TOML: an integer has over {sys.get_int_max_str_digits()} digits; "
            "write a smaller number"
        ) from None
    except RecursionError:
        raise TomlFileError(
            "invalid TOML: arrays or tables nested too deep to read; flatten them"
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise _too_deep()
    return data


def _read_text(path: Path) -> str:
    """The file's text, read only if it is a regular file within the size cap.

    The first stat refuses a device or FIFO without opening it (opening a FIFO blocks until a
    writer comes); the second, on the opened file, closes the race of a path swapped in
    between. The read stops one byte past the cap, for files whose size the stat misreports.
    """
    _check_kind(os.stat(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        _check_kind(os.fstat(file.fileno()))
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _too_big()
    try:
        return data.decode("utf-8-sig")  # an editor's byte-order mark is harmless
    except UnicodeDecodeError as exc:
        raise TomlFileError(
            f"is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); save it as UTF-8"
        ) from None


def _check_kind(status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise TomlFileError("is a folder; give the path of a TOML file")
    if not stat.S_ISREG(status.st_mode):
        raise TomlFileError("is not a regular file (a device, FIFO or socket); give a TOML file")
    if status.st_size > MAX_BYTES:
        raise _too_big()


def _too_big() -> TomlFileError:
    return TomlFileError(f"is larger than {MAX_BYTES} bytes; a spec or space is a short TOML file")


def _too_deep() -> TomlFileError:
    return TomlFileError(f"tables and arrays nest more than {MAX_DEPTH} deep; flatten them")


def _depth(data: Any) -> int:
    """How deep tables and arrays nest in ``data``, found without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest
