"""Fields as data: what a TOML table may hold, each key's type, unit and physical range.

A section of a platform or scenario file is a tuple of `Field`s. `read_section` refuses keys the
tuple does not name (with the closest valid name), reads every field with its unit, checks it
against its `Limit`, and collects the `<key>_source` of sourced fields. Adding a field to a
section is adding one row (and the dataclass attribute it fills).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from scenarios import spread
from scenarios.errors import InputError
from scenarios.toml_table import TomlTable
from scenarios.units import parse_freq, parse_rate, parse_size, parse_time, quantity_text

Parser = Callable[[Any, str], float]
# a quantity's parser -> (its unit for quantity_text, the unit suffix of its record keys)
_UNITS = {parse_rate: ("bytes/s", "bytes_per_s"), parse_size: ("bytes", "bytes"), parse_time: ("s", "seconds"),
          parse_freq: ("Hz", "")}         # clock_hz carries its unit in its name


@dataclass(frozen=True)
class Limit:
    """The physical range of one figure; `text` is the range as written (with its unit), `why`
    says where the bound comes from (printed with the error)."""
    low: float
    high: float
    text: str
    why: str
    allowed: tuple[float, ...] = ()   # only these values (PCIe widths, powers of two)
    whole: bool = False

    def problem(self, value: float) -> str | None:
        """What is wrong with `value` ("outside 576B..9216B (why)"), or None when it is physical."""
        if not math.isfinite(value):
            return f"not a finite number (the range is {self.text})"
        if self.allowed:
            if value not in self.allowed:
                return f"not one of {self.text} ({self.why})"
        elif not self.low <= value <= self.high:
            return f"outside {self.text} ({self.why})"
        if self.whole and value != int(value):
            return f"not a whole number (the range is {self.text})"
        return None


def span(low: str, high: str, parser: Parser, why: str) -> Limit:
    """A range written with units: span("576B", "9216B", parse_size, "...")."""
    return Limit(parser(low, "limit"), parser(high, "limit"), f"{low}..{high}", why)


def one_of(values: Sequence[str], parser: Parser, why: str) -> Limit:
    numbers = tuple(parser(v, "limit") for v in values)
    return Limit(min(numbers), max(numbers), ", ".join(values), why, allowed=numbers)


def count(low: int, high: int, why: str, allowed: Sequence[int] = ()) -> Limit:
    text = ", ".join(str(a) for a in allowed) if allowed else f"{low}..{high}"
    return Limit(float(low), float(high), text, why, tuple(float(a) for a in allowed), whole=True)


@dataclass(frozen=True)
class Field:
    key: str                        # the TOML key
    kind: str                       # quantity | whole | number | flag | text | choice | other (read by hand)
    example: str = ""
    parser: Parser | None = None
    limit: Limit | None = None
    attr: str = ""                  # the dataclass attribute, when it differs (clock -> clock_hz)
    default: Any = None             # None: required
    sourced: bool = False           # needs a `<key>_source` beside it
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.attr or self.key

    @property
    def is_number(self) -> bool:
        return self.kind in ("quantity", "whole", "number")

    @property
    def record_unit(self) -> str:
        """The unit suffix of this quantity's record keys ('bytes_per_s'), '' for none."""
        return _UNITS[self.parser][1] if self.kind == "quantity" else ""

    def as_text(self, value: float) -> str:
        """An SI value as this field is written in a file: 25e9 -> '25GB/s'; a whole number as digits."""
        if self.kind == "whole":
            return str(int(round(value)))
        if self.kind == "number":
            return f"{value:g}"
        return quantity_text(value, _UNITS[self.parser][0])

    def read(self, t: TomlTable, key: str | None = None) -> Any:
        """This field's value from `t[key]` (default: its own key), in SI units, checked."""
        key = key or self.key
        if self.kind == "quantity":
            return t.quantity(key, self.parser, self.example, default=self.default, limit=self.limit)
        if self.kind == "whole":
            return t.whole(key, default=self.default, limit=self.limit)
        if self.kind == "number":
            return t.number(key, default=self.default, limit=self.limit)
        if self.kind == "flag":
            return t.flag(key, default=self.default)
        if self.kind == "text":
            return t.text(key, self.example, default=self.default)
        if self.kind == "choice":
            return t.choice(key, self.options, default=self.default)
        raise ValueError(f"field {self.key} is read by hand")

    def check(self, value: float, where: str, written: Any = None) -> None:
        """A value (a sweep's, an override's) against this field's range; `written` as the user wrote it."""
        if self.limit is not None and (problem := self.limit.problem(value)) is not None:
            shown = repr(written) if written is not None else f"{value:g}"
            raise InputError(f"{where}: {shown} is {problem}", f"give a physical value, like {self.example}")


def quantity(key: str, parser: Parser, example: str, limit: Limit, **kw: Any) -> Field:
    return Field(key, "quantity", example, parser, limit, **kw)


def whole(key: str, limit: Limit, **kw: Any) -> Field:
    return Field(key, "whole", str(int(limit.low) if limit.low >= 1 else 1), limit=limit, **kw)


def number(key: str, limit: Limit, **kw: Any) -> Field:
    return Field(key, "number", "1", limit=limit, **kw)


def flag(key: str, **kw: Any) -> Field:
    return Field(key, "flag", "true", **kw)


def text(key: str, example: str, **kw: Any) -> Field:
    return Field(key, "text", example, **kw)


def choice(key: str, options: tuple[str, ...], **kw: Any) -> Field:
    return Field(key, "choice", f'"{options[0]}"', options=options, **kw)


def other(key: str, **kw: Any) -> Field:
    return Field(key, "other", **kw)


def known_keys(fields: Iterable[Field]) -> set[str]:
    """Every key a section may hold: its fields, and `<key>_source` beside each sourced one."""
    keys = set()
    for f in fields:
        keys.add(f.key)
        if f.sourced:
            keys.add(f"{f.key}_source")
        if f.sourced and f.is_number:       # a spread beside a figure, with its own source (scenarios/spread.py)
            keys.update((f"{f.key}_spread", f"{f.key}_spread_source"))
    return keys


def read_section(t: TomlTable, fields: Sequence[Field]) -> tuple[dict[str, Any], dict[str, str]]:
    """({attr: value} of every field not read by hand, {key: source} of the sourced ones)."""
    t.reject_unknown(known_keys(fields))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in fields:
        if f.kind == "other":
            continue
        values[f.name] = f.read(t)
        if f.sourced:
            sources[f.key] = t.source(f.key)
    return values, sources


def by_name(fields: Iterable[Field]) -> dict[str, Field]:
    """{attribute name: field}: how flat parameter names ('cpu.clock_hz') find their field."""
    return {f.name: f for f in fields}


def read_spreads(t: TomlTable, fields: Sequence[Field]) -> dict[str, spread.Spread]:
    """{key: Spread} of the figures that carry a `<key>_spread` (with its `<key>_spread_source`)."""
    out: dict[str, spread.Spread] = {}
    for f in fields:
        if not (f.sourced and f.is_number):
            continue
        if f"{f.key}_spread" not in t.data:
            if f"{f.key}_spread_source" in t.data:
                raise t.error(f"{f.key}_spread_source", "a spread's source without a spread",
                              f'add `{f.key}_spread = "LOW..HIGH"` or remove the source')
            continue
        source = t.source(f"{f.key}_spread")
        out[f.key] = spread.parse(t.data[f"{f.key}_spread"], f.read(t), f, t.where(f"{f.key}_spread"), source)
    return out
