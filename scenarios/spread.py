"""Spreads: how far a platform figure may lie from the value its profile gives, and why.

Beside a sourced figure a profile may write its spread and the spread's own source:

    smb_request_time = "5us"
    smb_request_time_source = "assumption: ..."
    smb_request_time_spread = "log 2us..20us"
    smb_request_time_spread_source = "why the figure lies in that range"

Forms (the ends in the figure's unit; the figure itself must lie inside):

    "LOW..HIGH"            uniform between the ends: a datasheet range, a bound either way
    "±20%" or "+-20%"      uniform within 20 % of the figure, either way
    "log LOW..HIGH"        log-uniform: every factor in the range equally likely (an order-of-
                           magnitude guess: 2us..20us is as likely below 6.3us as above)
    "normal LOW..HIGH"     normal, LOW..HIGH its central 95 % (a calibration interval); ends at
                           different distances from the figure give two half-normals
    "one of A, B, C"       each value equally likely: discrete figures (Max_Payload_Size, the read
                           completion boundary) and counts, the only spread a count takes

A measured figure's low..high (scenarios/profile.py) is a spread too: normal with the central
share its `interval` names ("95% fit interval"), or uniform when it names no share (a range over
repetitions). Drawing values is the model's business (models/uncertainty.py); this module only
reads and checks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scenarios.errors import InputError

if TYPE_CHECKING:
    from scenarios.fields import Field

KINDS = ("uniform", "log-uniform", "normal", "one-of")
NORMAL_CONFIDENCE = 0.95        # the central share "normal LOW..HIGH" covers
FORMS = '"LOW..HIGH", "±20%", "log LOW..HIGH", "normal LOW..HIGH" or "one of A, B"'
_PERCENT_RE = re.compile(r"^\s*(?:±|\+-|\+/-)\s*([0-9]*\.?[0-9]+)\s*%\s*$")
_SHARE_RE = re.compile(r"([0-9]{1,2}(?:\.[0-9]+)?)\s*%")


@dataclass(frozen=True)
class Spread:
    kind: str                       # one of KINDS
    value: float                    # the figure the profile gives (SI)
    low: float                      # SI; for one-of the smallest value
    high: float
    text: str                       # as written ("log 2us..20us", "95% fit interval 42GB/s .. 49GB/s")
    source: str                     # why the figure lies in that range
    values: tuple[float, ...] = ()  # one-of
    confidence: float = 0.0         # normal: the share of draws inside low..high

    @property
    def width(self) -> float:
        return self.high - self.low


def parse(text: object, value: float, field: Field, where: str, source: str) -> Spread:
    """A spread as written beside a figure of `field` whose value is `value`; every end is read in
    the field's unit, checked against its physical range, and must enclose the figure."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: {text!r} is not a spread", f"write it like {FORMS}")
    written = text.strip()
    if written.startswith("one of"):
        values = tuple(_read(field, part, where, text) for part in written[len("one of"):].split(","))
        if not any(math.isclose(value, v, rel_tol=1e-9) for v in values):
            raise InputError(f"{where}: {text!r} leaves out the figure itself ({field.as_text(value)})",
                             "list the figure among the values")
        return Spread("one-of", value, min(values), max(values), written, source, values=tuple(sorted(set(values))))
    if field.kind != "quantity" or field.limit is None or field.limit.allowed:
        allowed = f"; allowed values: {field.limit.text}" if field.limit is not None and field.limit.allowed else ""
        raise InputError(f"{where}: {text!r}: {field.key} takes discrete values, so its spread is a list{allowed}",
                         f'write it like "one of {field.as_text(value)}, ..."')
    percent = _PERCENT_RE.match(written)
    if percent:
        share = float(percent.group(1)) / 100
        if not 0 <= share < 1:
            raise InputError(f"{where}: {text!r} reaches zero or below", "give a share under 100%, like ±20%")
        low, high = value * (1 - share), value * (1 + share)
        _check_end(field, low, where, text)
        _check_end(field, high, where, text)
        return Spread("uniform", value, low, high, written, source)
    kind, rest = "uniform", written
    for word, name in (("log ", "log-uniform"), ("normal ", "normal")):
        if written.startswith(word):
            kind, rest = name, written[len(word):]
    ends = rest.split("..")
    if len(ends) != 2:
        raise InputError(f"{where}: cannot read {text!r} as a spread", f"write it like {FORMS}")
    low, high = (_read(field, end, where, text) for end in ends)
    if not low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
        raise InputError(f"{where}: {text!r} does not enclose the figure itself ({field.as_text(value)})",
                         "give LOW <= figure <= HIGH")
    if kind == "log-uniform" and low <= 0:
        raise InputError(f"{where}: {text!r}: a log-uniform range starts above zero", "give a LOW above zero")
    return Spread(kind, value, low, high, written, source,
                  confidence=NORMAL_CONFIDENCE if kind == "normal" else 0.0)


def of_interval(value: float, low: float, high: float, interval: str, source: str) -> Spread:
    """A measured figure's interval as a spread: normal of the central share the interval's text
    names ('95% fit interval'), uniform over a range that names none ('range over the repetitions')."""
    share = _SHARE_RE.search(interval)
    confidence = float(share.group(1)) / 100 if share else 0.0
    kind = "normal" if confidence > 0 else "uniform"
    return Spread(kind, value, low, high, interval, source, confidence=confidence)


def _read(field: Field, text: str, where: str, written: object) -> float:
    try:
        number = field.parser(text.strip(), where) if field.kind == "quantity" else float(text.strip())
    except (InputError, ValueError):
        raise InputError(f"{where}: cannot read {text.strip()!r} of {written!r} as a value of {field.key}",
                         f"write each value in the figure's unit, like {field.example}") from None
    _check_end(field, number, where, written)
    return number


def _check_end(field: Field, number: float, where: str, written: object) -> None:
    problem = field.limit.problem(number) if field.limit is not None else None
    if problem is not None:
        raise InputError(f"{where}: {written!r} reaches {field.as_text(number)}, which is {problem}",
                         "keep the spread inside the physical range")

