"""Reading one TOML table with errors that name the file, the field and the fix.

`TomlTable(data, file, section)` wraps a parsed table; its readers (`text`, `choice`, `flag`,
`whole`, `quantity`, `source`) return SI values or raise InputError("FILE: section.field: what is
wrong", "how to fix it"); `reject_unknown` refuses keys the table may not hold, naming the closest
valid one. A reader given a `Limit` (scenarios/fields.py) also refuses values outside it.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from scenarios.errors import InputError

if TYPE_CHECKING:
    from scenarios.fields import Limit


class TomlTable:
    """A TOML table plus where it came from, for error messages."""

    def __init__(self, data: Mapping[str, Any], file: str, section: str = ""):
        self.data = dict(data)
        self.file = file
        self.section = section

    def where(self, key: str) -> str:
        return f"{self.file}: {self.section + '.' if self.section else ''}{key}"

    def error(self, key: str, cause: str, fix: str) -> InputError:
        return InputError(f"{self.where(key)}: {cause}", fix)

    @property
    def title(self) -> str:
        """Where the table is, for a message: 'in [workload]', 'in copy_path[1]', 'at the top level'."""
        if not self.section:
            return "at the top level"
        return f"in {self.section}" if self.section.endswith("]") else f"in [{self.section}]"

    def reject_unknown(self, known: Iterable[str]) -> None:
        """The first key (in file order) the table may not hold is an error naming the closest valid key."""
        known = sorted(known)
        for key in self.data:
            if key not in known:
                raise self.error(key, f"unknown key {self.title}", did_you_mean(str(key), known))

    def sub(self, key: str) -> "TomlTable":
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "missing table" if value is None else "must be a table",
                             f"add a [{(self.section + '.' if self.section else '') + key}] table")
        return TomlTable(value, self.file, f"{self.section}.{key}" if self.section else key)

    def raw(self, key: str, example: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing field", f"add `{key} = {example}`")
        return self.data[key]

    def text(self, key: str, example: str = '"..."', default: str | None = None) -> str:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, example)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"{value!r} is not a non-empty string", f"write it like `{key} = {example}`")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, f'"{options[0]}"', default)
        if value not in options:
            raise self.error(key, f"unknown value {value!r}", f"use one of {', '.join(options)}")
        return value

    def flag(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "true")
        if not isinstance(value, bool):
            raise self.error(key, f"{value!r} is not true/false", f"write `{key} = true` or `{key} = false`")
        return value

    def whole(self, key: str, default: int | None = None, minimum: int = 1, limit: Limit | None = None) -> int:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "4")
        example = str(_example(limit)) if limit is not None else str(max(minimum, 4))
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"{value!r} is not a whole number", f"write it like `{key} = {example}`")
        if limit is not None:
            self._check(key, value, value, limit, example)
        elif value < minimum:
            raise self.error(key, f"{value!r} is not a whole number >= {minimum}", f"write it like `{key} = {example}`")
        return value

    def quantity(self, key: str, parser, example: str, default: Any = None, positive: bool = True,
                 limit: Limit | None = None) -> float:
        """A physical quantity written with its unit ("200Gbit/s", "8MiB", "10us")."""
        value = default if default is not None and key not in self.data else self.raw(key, f'"{example}"')
        if not isinstance(value, str):
            raise self.error(key, f"{value!r} has no unit", f'write it with its unit, like `{key} = "{example}"`')
        try:
            number = parser(value, self.where(key))
        except InputError as exc:
            raise InputError(exc.cause if self.file in exc.cause else f"{self.where(key)}: {exc.cause}",
                             exc.fix) from None
        if limit is not None:
            self._check(key, value, number, limit, f'"{example}"')
        elif not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise self.error(key, f"{value!r} must be {'greater than zero' if positive else 'zero or more'}",
                             f'give a physical value, like `{key} = "{example}"`')
        return number

    def number(self, key: str, default: float | None = None, limit: Limit | None = None) -> float:
        """A plain number (a count per I/O: no unit), checked against `limit`."""
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "1")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"{value!r} is not a number", f"write a plain number, like `{key} = 1`")
        self._check(key, value, float(value), limit, "1")
        return float(value)

    def _check(self, key: str, written: Any, number: float, limit: Limit | None, example: str) -> None:
        problem = limit.problem(number) if limit is not None else None
        if problem is not None:
            raise self.error(key, f"{written!r} is {problem}", f"give a physical value, like `{key} = {example}`")

    def source(self, key: str) -> str:
        src = self.data.get(f"{key}_source")
        if not isinstance(src, str) or not src.strip():
            raise self.error(f"{key}_source", f"the number `{key}` has no source",
                             f'add `{key}_source = "datasheet / paper / measurement it comes from"`')
        return src.strip()


def _example(limit: Limit) -> int:
    return int(limit.allowed[len(limit.allowed) // 2]) if limit.allowed else max(int(limit.low), 1)


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """'did you mean page_cache_hit?' (difflib), or the valid names when none is close."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    listed = ", ".join(valid)
    return f"valid keys: {listed[:300] + ' ...' if len(listed) > 300 else listed}"


def plain_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: cannot read {value!r} as a number", "write a plain number like 4")
    return float(value)
