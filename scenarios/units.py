"""Units: the only place with unit constants and parsers.

Inside rdmarig every quantity is an SI float: bytes, bytes/s, seconds, hertz. Strings such as
"200Gbit/s", "8MiB", "46GB/s", "250ns" are parsed here and nowhere else, and formatted back here.
"""

from __future__ import annotations

import math
import re

from scenarios.errors import InputError

KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12
KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
BITS_PER_BYTE = 8
NS, US, MS = 1e-9, 1e-6, 1e-3
MHZ, GHZ = 1e6, 1e9

_SIZE_PREFIX = {
    "": 1, "k": KB, "K": KB, "M": MB, "G": GB, "T": TB,
    "Ki": KiB, "Mi": MiB, "Gi": GiB, "Ti": TiB,
}
_TIME_UNIT = {"s": 1.0, "ms": MS, "us": US, "µs": US, "ns": NS, "min": 60.0, "h": 3600.0}

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_SIZE_RE = re.compile(rf"^\s*{_NUM}\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?(B|b|bit|bits|byte|bytes)?\s*$")
_RATE_RE = re.compile(rf"^\s*{_NUM}\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?(B|b|bit|bits|byte|bytes)\s*(?:/s|ps)\s*$")
_TIME_RE = re.compile(rf"^\s*{_NUM}\s*(s|ms|us|µs|ns|min|h)?\s*$")
_FREQ_RE = re.compile(rf"^\s*{_NUM}\s*(k|K|M|G)?Hz\s*$")


def _bad(what: str, text: object, example: str, where: str) -> InputError:
    place = f"{where}: " if where else ""
    return InputError(f"{place}cannot read {text!r} as {what}", f"write it like {example!r}")


def _is_bits(unit: str | None) -> bool:
    return unit in ("b", "bit", "bits")


# Every quantity rdmarig handles lies far inside 1e-24..1e24 in SI units (the SI prefixes yocto..
# yotta): a value outside is a typo ("1e999GB/s" is inf), not a physical figure.
SI_SMALLEST, SI_LARGEST = 1e-24, 1e24


def _finite(value: float, text: object, what: str, example: str, where: str) -> float:
    if not math.isfinite(value) or (value != 0 and not SI_SMALLEST <= abs(value) <= SI_LARGEST):
        place = f"{where}: " if where else ""
        raise InputError(f"{place}{text!r} is not a finite {what} (SI values lie within 1e-24..1e24)",
                         f"write a physical value like {example!r}")
    return value


def parse_size(text: str | int | float, where: str = "") -> float:
    """'8MiB' -> 8388608.0 bytes; a bare number is bytes. Bits are accepted ('100Mbit')."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _finite(float(text), text, "size", "8MiB", where)
    m = _SIZE_RE.match(str(text))
    if not m:
        raise _bad("a size", text, "8MiB", where)
    value = float(m.group(1)) * _SIZE_PREFIX[m.group(2) or ""]
    return _finite(value / BITS_PER_BYTE if _is_bits(m.group(3)) else value, text, "size", "8MiB", where)


def parse_rate(text: str | int | float, where: str = "") -> float:
    """'200Gbit/s' -> 25e9 bytes/s; '46GB/s' -> 46e9 bytes/s; a bare number is bytes/s."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _finite(float(text), text, "rate", "46GB/s", where)
    m = _RATE_RE.match(str(text))
    if not m:
        raise _bad("a rate", text, "200Gbit/s or 46GB/s", where)
    value = float(m.group(1)) * _SIZE_PREFIX[m.group(2) or ""]
    return _finite(value / BITS_PER_BYTE if _is_bits(m.group(3)) else value, text, "rate", "46GB/s", where)


def parse_time(text: str | int | float, where: str = "") -> float:
    """'250ns' -> 2.5e-7 s; a bare number is seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _finite(float(text), text, "time", "250ns", where)
    m = _TIME_RE.match(str(text))
    if not m:
        raise _bad("a time", text, "10s or 250ns", where)
    return _finite(float(m.group(1)) * _TIME_UNIT[m.group(2) or "s"], text, "time", "250ns", where)


def parse_freq(text: str | int | float, where: str = "") -> float:
    """'2.25GHz' -> 2.25e9 Hz."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _finite(float(text), text, "frequency", "2.25GHz", where)
    m = _FREQ_RE.match(str(text))
    if not m:
        raise _bad("a frequency", text, "2.25GHz", where)
    return _finite(float(m.group(1)) * _SIZE_PREFIX[m.group(2) or ""], text, "frequency", "2.25GHz", where)


def parse_size_list(text: str, where: str = "") -> list[float]:
    """Sizes for sweeps: '64KiB,1MiB,8MiB' or a doubling range '4KiB..8MiB' (both ends included)."""
    out: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if ".." in part:
            lo_text, hi_text = part.split("..", 1)
            lo, hi = parse_size(lo_text, where), parse_size(hi_text, where)
            if lo <= 0 or hi < lo:
                raise InputError(f"{where + ': ' if where else ''}bad size range {part!r}",
                                 "write it low..high with low > 0, like '4KiB..8MiB'")
            size = lo
            while size <= hi:
                out.append(size)
                size *= 2
        else:
            out.append(parse_size(part, where))
    if not out:
        raise _bad("a size list", text, "64KiB,1MiB or 4KiB..8MiB", where)
    return out


def parse_int_list(text: str, where: str = "") -> list[int]:
    """'1,2,4' -> [1, 2, 4]."""
    try:
        values = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise _bad("a list of whole numbers", text, "1,2,4", where) from None
    if not values:
        raise _bad("a list of whole numbers", text, "1,2,4", where)
    return values


def format_size(n_bytes: float) -> str:
    """4096 -> '4KiB', 1e6 -> '976.6KiB'; binary prefixes, as I/O sizes are quoted."""
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n_bytes:.0f}B"


def format_rate(bytes_per_s: float) -> str:
    """25e9 -> '25.00GB/s (200.0Gbit/s)'."""
    return f"{bytes_per_s / GB:.2f}GB/s ({bytes_per_s * BITS_PER_BYTE / GB:.1f}Gbit/s)"


def quantity_text(value: float, unit: str, digits: int = 4) -> str:
    """An SI value as text the parsers read back: (25e9, 'bytes/s') -> '25GB/s', (2.5e-7, 's') ->
    '0.25us', (65536, 'bytes') -> '65536B', (2.6e9, 'Hz') -> '2.6GHz'; `digits` significant digits."""
    if unit == "bytes/s":
        return f"{value / GB:.{digits}g}GB/s"
    if unit == "bits/s":
        return f"{value * BITS_PER_BYTE / GB:.{digits}g}Gbit/s"
    if unit == "bytes":
        return f"{value:.0f}B"
    if unit == "s":
        return f"{value / US:.{digits}g}us"
    if unit == "Hz":
        return f"{value / GHZ:.{digits}g}GHz"
    raise ValueError(f"no text form for unit {unit!r}")


def to_gbytes_per_s(bytes_per_s: float) -> float:
    return bytes_per_s / GB


def to_gbits_per_s(bytes_per_s: float) -> float:
    return bytes_per_s * BITS_PER_BYTE / GB


# ---- the unit catalogue: a key's unit is its suffix ----------------------------------------
# Every stored number carries its unit in its name; column headers and axis labels are built
# from the key through this one table (longest suffix first), never written by hand.
# The I/O size of every record kind (message, chunk, buffer, SMB2 I/O) is `io_size_bytes`.
IO_SIZE_KEY = "io_size_bytes"
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_cpu_s_per_gb", "CPU-s/GB"),
    ("_s_per_gb", "CPU-s/GB"),
    ("_gbytes_per_s", "GB/s"),
    ("_gbits_per_s", "Gbit/s"),
    ("_bytes_per_s", "B/s"),
    ("_cpu_per_s", "CPU-s/s"),
    ("_mpps", "Mpps"),
    ("_bytes", "B"),
    ("_seconds_per_page", "s/page"),
    ("_seconds_per_folio", "s/folio"),
    ("_seconds", "s"),
    ("_us", "µs"),
    ("_s", "s"),
    ("_pct", "%"),
    ("_ratio", "ratio"),
    ("_cores", "cores"),
    ("_engines", "engines"),
)


def split_unit(key: str) -> tuple[str, str]:
    """'cpu_system_s_per_gb' -> ('cpu_system', 'CPU-s/GB'); a key without a unit -> (key, '')."""
    for suffix, label in UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], label
        if key == suffix[1:]:                  # a key that is only its unit: 'gbytes_per_s'
            return "", label
    return key, ""


def unit_header(key: str, name: str | None = None) -> str:
    """The column header / axis label of a key: 'tx_system_cpu_s_per_gb' -> 'tx system [CPU-s/GB]'.

    `name` replaces the words taken from the key; the unit always comes from the key."""
    stem, label = split_unit(key)
    words = name if name is not None else stem.replace("_", " ")
    return f"{words} [{label}]".lstrip() if label else words
