"""Scenario and platform files: built-in names, paths, and reading TOML with one-line errors.

Whatever is wrong with a file the user names (missing, a directory, unreadable, not UTF-8, empty,
not TOML) is one InputError naming the file and the fix, never a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from scenarios.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent
PLATFORM_DIR = PACKAGE_DIR / "platforms"
LIST_HINT = "`rdmarig scenarios list` shows the built-in ones"


def builtin_scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE_DIR.glob("*.toml"))}


def builtin_platforms() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PLATFORM_DIR.glob("*.toml"))}


def parse_toml(text: bytes, path: Path | str, kind: str) -> dict[str, Any]:
    """TOML bytes -> mapping; bad encoding, bad syntax and an empty file are one-line errors."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start})",
                         "TOML files are UTF-8: re-save it as UTF-8, or check that it is the file you meant") from None
    try:
        data = tomllib.loads(decoded)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})", "fix the TOML syntax at that line") from None
    if not data:
        raise InputError(f"{path}: empty {kind} file (no TOML keys)",
                         f"fill it in, like the built-in ones ({LIST_HINT})")
    return data


def read_toml(path: Path, kind: str) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind} file", f"check the path; {LIST_HINT}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {kind} file", "name a .toml file inside it") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read the {kind} file (permission denied)",
                         "check its permissions, or copy it somewhere readable") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {kind} file ({exc.strerror or exc})",
                         "check the path and its permissions") from None
    return parse_toml(text, path, kind)


def resolve(name_or_path: str | Path, builtins: dict[str, Path], kind: str, relative_to: Path | None = None) -> Path:
    """A built-in name, or a path (relative ones also tried beside `relative_to`), as a file path."""
    text = str(name_or_path)
    if text in builtins:
        return builtins[text]
    path = Path(text)
    if relative_to is not None and not path.is_absolute() and (relative_to / path).exists():
        path = relative_to / path
    if path.suffix == ".toml" or path.exists() or "/" in text:
        if path.is_dir():
            raise InputError(f"{text}: is a directory, not a {kind} file", "name a .toml file inside it")
        if not path.is_file():
            raise InputError(f"{text}: no such {kind} file", f"check the path; {LIST_HINT}")
        return path
    raise InputError(f"unknown {kind} {text!r}",
                     f"use one of {', '.join(builtins) or '(none)'} or a path to a .toml file; {LIST_HINT}")


def file_kind(name_or_path: str | Path) -> str:
    """'platform' or 'scenario': what a built-in name or .toml file holds."""
    text = str(name_or_path)
    if text in builtin_platforms():
        return "platform"
    if text in builtin_scenarios():
        return "scenario"
    path = Path(text)
    if path.is_file():
        data = read_toml(path, "scenario or platform")
        scenario_keys = {"platform", "network", "workload", "sweep", "copy_paths", "copy_path"}
        platform_keys = {"cpu", "memory", "nic", "dma", "base", "measured"}
        if not scenario_keys & set(data) and platform_keys & set(data):
            return "platform"
    return "scenario"
