"""Reading one TOML table with errors that name the file, the field and the fix.

`TomlTable(data, file, section)` wraps a parsed table; its readers (`text`, `choice`, `flag`,
`whole`, `quantity`, and the `sourced*` variants that also demand a `<field>_source`) return SI
values or raise InputError("FILE: section.field: what is wrong", "how to fix it").
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from scenarios.errors import InputError


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

    def whole(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "4")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"{value!r} is not a whole number >= {minimum}",
                             f"write it like `{key} = {max(minimum, 4)}`")
        return value

    def quantity(self, key: str, parser, example: str, default: Any = None, positive: bool = True) -> float:
        """A physical quantity written with its unit ("200Gbit/s", "8MiB", "10us")."""
        value = default if default is not None and key not in self.data else self.raw(key, f'"{example}"')
        if not isinstance(value, str):
            raise self.error(key, f"{value!r} has no unit", f'write it with its unit, like `{key} = "{example}"`')
        try:
            number = parser(value, self.where(key))
        except InputError as exc:
            raise InputError(exc.cause if self.file in exc.cause else f"{self.where(key)}: {exc.cause}",
                             exc.fix) from None
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise self.error(key, f"{value!r} must be {'greater than zero' if positive else 'zero or more'}",
                             f'give a physical value, like `{key} = "{example}"`')
        return number

    def sourced(self, key: str, parser, example: str, sources: dict[str, str], positive: bool = True) -> float:
        number = self.quantity(key, parser, example, positive=positive)
        sources[key] = self._source(key)
        return number

    def sourced_whole(self, key: str, sources: dict[str, str], minimum: int = 1) -> int:
        number = self.whole(key, minimum=minimum)
        sources[key] = self._source(key)
        return number

    def sourced_flag(self, key: str, sources: dict[str, str]) -> bool:
        value = self.flag(key)
        sources[key] = self._source(key)
        return value

    def _source(self, key: str) -> str:
        src = self.data.get(f"{key}_source")
        if not isinstance(src, str) or not src.strip():
            raise self.error(f"{key}_source", f"the number `{key}` has no source",
                             f'add `{key}_source = "datasheet / paper / measurement it comes from"`')
        return src.strip()


def plain_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: cannot read {value!r} as a number", "write a plain number like 4")
    return float(value)
