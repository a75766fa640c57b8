"""read_toml: a spec or space file is read only if it is a short, regular, UTF-8 TOML file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tuner.tomlfile import MAX_BYTES, MAX_DEPTH, TomlFileError, read_toml


def problem(path: Path | str) -> TomlFileError:
    with pytest.raises(TomlFileError) as caught:
        read_toml(Path(path))
    return caught.value


def test_a_regular_utf8_file_reads_and_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("\ufeffa = 'café'\n", encoding="utf-8")
    assert read_toml(path) == {"a": "café"}


def test_missing_file_is_flagged_as_missing(tmp_path: Path) -> None:
    missing = problem(tmp_path / "absent.toml")
    assert missing.missing and str(missing) == "no such file"
    assert not problem(tmp_path).missing


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/dev/zero", "is not a regular file (a device, FIFO or socket); give a TOML file"),
        ("/dev/null", "is not a regular file (a device, FIFO or socket); give a TOML file"),
        ("/", "is a folder; give the path of a TOML file"),
        ("a\x00b.toml", "is not a valid path; check the path"),
    ],
)
def test_only_regular_files_are_opened(path: str, message: str) -> None:
    assert str(problem(path)) == message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    assert "is not a regular file" in str(problem(tmp_path / "fifo.toml"))


def test_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * MAX_BYTES)
    assert read_toml(path) == {}
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    assert (
        str(problem(path)) == "is larger than 1048576 bytes; a spec or space is a short TOML file"
    )


@pytest.mark.parametrize(
    ("text", "nests"),
    [
        ("a" + ".a" * MAX_DEPTH + " = 1", False),  # MAX_DEPTH tables deep: the limit
        ("a" + ".a" * (MAX_DEPTH + 1) + " = 1", True),
        ("a" + ".a" * 100000 + " = 1", True),  # found before tomllib's quadratic time
        ('"a"' + ' . "a"' * 100000 + " = 1", True),
        ("x = {" + "a." * MAX_DEPTH + "b = 1}", True),
        ("[" + "a." * 3000 + "a]", True),
        ("a = " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, False),
        ("a = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), True),
    ],
)
def test_nesting_cap(tmp_path: Path, text: str, nests: bool) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    if nests:
        assert str(problem(path)) == "tables and arrays nest more than 8 deep; flatten them"
    else:
        read_toml(path)
