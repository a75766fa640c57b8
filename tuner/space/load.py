"""Finding and reading space files: built-in names, paths, and ``extends`` chains.

A file may start with ``extends = "default"`` (a built-in name) or ``extends = "base.toml"`` (a
path relative to the file). It is then deep-merged over its base: tables merge key by key, and
anything else the file writes (one value, a list, a range table) replaces the base's value whole.
A range is replaced whole on purpose: merging ``{ low = 1, high = 4 }`` into a base range that
had ``log = true`` would keep a setting the file does not show. So a user space can fix or narrow
any knob in a few lines. Note that a per-choice value (``[optimizer.sgd] lr``) still wins over a
shared one (``[optimizer] lr``), whichever file wrote each.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from tuner.space.auto_lr import reject_auto
from tuner.space.parse import parse_space
from tuner.space.schema import SearchSpace, Source, SpaceError
from tuner.text import shown_toml
from tuner.tomlfile import MAX_PATH, TomlFileError, read_toml

#: The longest ``extends`` chain followed: each link is a file read and a frame of recursion.
MAX_EXTENDS = 32


def builtin_spaces() -> tuple[str, ...]:
    """Names of the spaces shipped in the ``search_spaces`` package (its ``*.toml`` stems)."""
    files = resources.files("search_spaces").iterdir()
    return tuple(sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml")))


def load_space(ref: str | Path) -> SearchSpace:
    """Load a built-in space by name, or a space file by path, and validate it.

    A string equal to a built-in name means the built-in; anything else is a path.

    Example:
        >>> space = load_space("quick")
        >>> [branch.name for branch in space.optimizers]
        ['sgd', 'adam', 'adamw', 'rmsprop']

    Raises:
        SpaceError: the file is missing, is not valid TOML, has an ``extends`` cycle, or holds
            an invalid field (``lr = "auto"`` included: only preparing a study can resolve it,
            `tuner.space.auto_lr`); the one-line message names the file, field, value and fix.
    """
    raw, source = read_space(ref)
    reject_auto(raw, source)
    return parse_space(raw, source)


def read_space(ref: str | Path) -> tuple[dict[str, Any], Source]:
    """The raw space of `ref`, its ``extends`` chain merged but not validated, and its Source.

    For `tuner.space.auto_lr`, which must see ``lr = "auto"`` before validation would refuse it.

    Raises:
        SpaceError: the file is missing, is not valid TOML or has a bad ``extends`` chain.
    """
    path, label = _locate(ref, None)
    origins: dict[str, str] = {}
    files: list[str] = []
    raw = _read(path, label, origins, (), files)
    return raw, Source(label, origins, tuple(files))


def _locate(ref: str | Path, relative_to: Path | None) -> tuple[Path, str]:
    """The file of ``ref`` and the label errors call it by."""
    if isinstance(ref, str) and ref in builtin_spaces():
        return Path(str(resources.files("search_spaces") / f"{ref}.toml")), f"{ref}.toml (built-in)"
    path = Path(ref) if relative_to is None else relative_to / ref
    return path, str(path)


def _read(
    path: Path,
    label: str,
    origins: dict[str, str],
    chain: tuple[tuple[Path, str], ...],
    files: list[str],
) -> dict[str, Any]:
    """Read ``path`` merged over its ``extends`` chain, recording in ``origins`` who wrote what
    and in ``files`` the chain's labels, extending files first."""
    try:
        data = read_toml(path)
    except TomlFileError as exc:
        if not exc.missing:
            raise SpaceError(f"{label}: {exc}") from None
        builtins = ", ".join(builtin_spaces())
        where = f"{chain[-1][1]}: extends: " if chain else ""
        raise SpaceError(
            f"{where}{label}: no such file; give a space file path or a built-in name ({builtins})"
        ) from None
    chain = (*chain, (_real(path), label))
    files.append(label)
    base: dict[str, Any] = {}
    if "extends" in data:
        extends = data.pop("extends")
        if not isinstance(extends, str) or not extends.isprintable() or len(extends) > MAX_PATH:
            raise SpaceError(
                f"{label}: extends: {shown_toml(extends)} is not a name; "
                'write extends = "default" or a path'
            )
        if len(chain) == MAX_EXTENDS:
            raise SpaceError(
                f'{label}: extends: "{extends}" makes a chain of more than {MAX_EXTENDS} files; '
                "shorten the chain"
            )
        base_path, base_label = _locate(extends, path.parent)
        seen = [key for key, _ in chain]
        if _real(base_path) in seen:
            cycle = " -> ".join([*(name for _, name in chain), base_label])
            raise SpaceError(
                f'{label}: extends: "{extends}" makes a cycle ({cycle}); '
                "remove one of these extends"
            )
        base = _read(base_path, base_label, origins, chain, files)
    return _merge(base, data, origins, label, "")


def _real(path: Path) -> Path:
    """``path`` with symlinks resolved, for spotting cycles. Unlike ``Path.resolve``, which
    raises RuntimeError on a symlink loop, a loop is left as written (reading it then fails)."""
    return Path(os.path.realpath(path))


def _merge(
    base: dict[str, Any], child: dict[str, Any], origins: dict[str, str], label: str, prefix: str
) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        path = prefix + key
        old = merged.get(key)
        if _is_table(old) and _is_table(value):
            merged[key] = _merge(old, value, origins, label, path + ".")
            origins[path] = label
        else:
            _unmark(old, origins, path)
            merged[key] = value
            _mark(value, origins, label, path)
    return merged


def _is_table(value: Any) -> TypeGuard[dict[str, Any]]:
    """A section table, as opposed to a range table (which has low/high and is replaced whole)."""
    return isinstance(value, dict) and "low" not in value and "high" not in value


def _mark(value: Any, origins: dict[str, str], label: str, path: str) -> None:
    origins[path] = label
    if isinstance(value, dict):
        for key, item in value.items():
            _mark(item, origins, label, f"{path}.{key}")


def _unmark(value: Any, origins: dict[str, str], path: str) -> None:
    """Forget who wrote the parts of a replaced value, walking the value itself: scanning all
    of ``origins`` per key instead is quadratic, minutes for a file of 50000 keys."""
    if isinstance(value, dict):
        for key, item in value.items():
            origins.pop(f"{path}.{key}", None)
            _unmark(item, origins, f"{path}.{key}")
