"""Scenario files: TOML in, frozen dataclasses out, validated up front.

A *scenario* (scenarios/*.toml) names a platform (scenarios/platform.py) and describes what is
asked: the links (`links = "2x200Gbit/s"`), the protocol, the workload (SMB2 READ over SMB Direct
or TCP, I/O sizes, connections, credits, cores given to I/O), the copy paths to compare and a
sweep. Every problem is an InputError naming the file, the field and the fix.

The names other rooms use live here: load_scenario / load_platform, Scenario, Platform, and
the flat-parameter helpers (scenarios/params.py) re-exported for them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from scenarios import copy_paths as _paths
from scenarios.errors import InputError
from scenarios.params import flag_params, flat_params, unit_key, unit_label, with_params  # noqa: F401
from scenarios.platform import Cpu, DmaEngine, Memory, Nic, Pcie, Platform, parse_platform  # noqa: F401
from scenarios.toml_table import TomlTable, plain_number
from scenarios.units import parse_freq, parse_rate, parse_size, parse_size_list, parse_time

MAX_SWEEP_POINTS = 1_000_000   # what one vectorised evaluation may hold (memory, time)
MAX_TABLE_ROWS = 100_000       # what a plan table may print: 100k rows take ~10 s and ~0.5 GB


def check_grid_points(n: int, where: str, cap: int = MAX_SWEEP_POINTS) -> None:
    """The one check of a grid's size: scenario sweeps, grids built in code, plan tables."""
    if n > cap:
        what = "rows a plan table holds" if cap == MAX_TABLE_ROWS else "points one evaluation holds"
        fix = ("sweep fewer values, or evaluate the grid from Python (models.sweep.evaluate_grid)"
               if cap == MAX_TABLE_ROWS else "sweep fewer values (the cap keeps memory and time bounded)")
        raise InputError(f"{where}: sweep has {n:,} points, over the {cap:,} {what}", fix)
PROTOCOLS = ("roce-v2", "infiniband", "tcp")
TRANSPORTS = ("smbdirect", "tcp")
OPERATIONS = ("read", "write")


@dataclass(frozen=True)
class Link:
    count: int
    rate: float                     # bytes/s per link (signalling rate of the MAC)
    protocol: str                   # roce-v2 | infiniband | tcp
    mtu: float                      # Ethernet MTU (roce-v2, tcp) or IB MTU (infiniband), bytes
    tcp_timestamps: bool = True

    @property
    def label(self) -> str:
        return f"{self.count}x{self.rate * 8 / 1e9:g}Gbit/s"


@dataclass(frozen=True)
class Workload:
    transport: str                  # smbdirect | tcp
    operation: str                  # read (server sends file data) | write (server receives)
    connections: int                # SMB channels (multichannel) or TCP connections
    outstanding_per_connection: int # SMB credits / queue depth a client keeps in flight
    io_cores: int                   # cores given to I/O (serving threads)
    async_workers: int              # cores for io_uring async workers (async-workers path)
    rtt: float                      # seconds, network round trip without serialisation
    page_cache_hit: bool            # file data already in the page cache?
    checksum_offload: bool          # NIC computes TCP checksums
    tso: bool                       # NIC segments TCP (TSO/GSO)
    gso_size: float                 # bytes per TSO/GSO unit handed to the NIC


@dataclass(frozen=True)
class Sweep:
    io_sizes: tuple[float, ...]
    fields: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def points(self, n_paths: int) -> int:
        n = len(self.io_sizes) * n_paths
        for _, values in self.fields:
            n *= len(values)
        return n


CopyPath = _paths.CopyPath
Copy = _paths.Copy


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: str
    platform: Platform
    link: Link
    workload: Workload
    copy_paths: tuple[CopyPath, ...]
    sweep: Sweep
    target: float | None = None     # bytes/s the user wants to reach (--target)


# ---------------------------------------------------------------------------------------------
# scenarios

_LINKS_RE = re.compile(r"^\s*([0-9]+)\s*[xX×]\s*(.+)$")


def parse_links(text: Any, where: str) -> tuple[int, float]:
    """'2x200Gbit/s' -> (2, 25e9)."""
    m = _LINKS_RE.match(str(text)) if isinstance(text, str) else None
    if not m:
        raise InputError(f"{where}: cannot read {text!r} as links", 'write it like "2x200Gbit/s" (count x rate)')
    count = int(m.group(1))
    rate = parse_rate(m.group(2), where)
    if count < 1 or rate <= 0:
        raise InputError(f"{where}: {text!r} needs at least one link of a positive rate",
                         'write it like "2x200Gbit/s"')
    return count, rate


def _link(t: TomlTable) -> Link:
    count, rate = parse_links(t.raw("links", '"2x200Gbit/s"'), t.where("links"))
    protocol = t.choice("protocol", PROTOCOLS)
    return Link(count=count, rate=rate, protocol=protocol,
                mtu=t.quantity("mtu", parse_size, "1500B", default="1500B" if protocol != "infiniband" else "4096B"),
                tcp_timestamps=t.flag("tcp_timestamps", default=True))


def _workload(t: TomlTable) -> Workload:
    return Workload(
        transport=t.choice("transport", TRANSPORTS),
        operation=t.choice("operation", OPERATIONS, default="read"),
        connections=t.whole("connections"),
        outstanding_per_connection=t.whole("outstanding_per_connection"),
        io_cores=t.whole("io_cores"),
        async_workers=t.whole("async_workers", default=4),
        rtt=t.quantity("rtt", parse_time, "10us"),
        page_cache_hit=t.flag("page_cache_hit", default=True),
        checksum_offload=t.flag("checksum_offload", default=True),
        tso=t.flag("tso", default=True),
        gso_size=t.quantity("gso_size", parse_size, "64KiB", default="64KiB"),
    )


def _custom_paths(data: Any, file: str) -> dict[str, CopyPath]:
    if data is None:
        return {}
    if not isinstance(data, list):
        raise InputError(f"{file}: copy_path must be an array of tables", "write each as a [[copy_path]] table")
    out = {}
    for i, d in enumerate(data):
        where = f"{file}: copy_path[{i}]"
        path = _paths.from_mapping(d, where)
        out[path.name] = path
    return out


def _sweep(t: TomlTable | None, io_sizes: tuple[float, ...], n_paths: int, flat: Mapping[str, float],
           file: str, flags: frozenset[str] = frozenset()) -> Sweep:
    fields: list[tuple[str, tuple[float, ...]]] = []
    if t is not None:
        for key, values in t.data.items():
            if key == "io_sizes":
                continue
            if key not in flat:
                raise t.error(key, "not a field this scenario has",
                              f"sweep one of: {', '.join(sorted(flat))[:300]}")
            if not isinstance(values, list) or not values:
                raise t.error(key, f"{values!r} is not a list of values", f"write it like `\"{key}\" = [1, 2, 4]`")
            parsed = tuple(_sweep_value(v, t.where(key), flat[key], key in flags) for v in values)
            fields.append((key, parsed))
    sweep = Sweep(io_sizes=io_sizes, fields=tuple(fields))
    check_grid_points(sweep.points(n_paths), file)
    return sweep


def _sweep_value(value: Any, where: str, current: float, is_flag: bool = False) -> float:
    if is_flag:
        if isinstance(value, bool) or value in (0, 1):
            return float(value)
        raise InputError(f"{where}: {value!r} is not true/false", "sweep it as [true, false]")
    if isinstance(value, str):
        for parser in (parse_rate, parse_size, parse_time, parse_freq):
            try:
                number = parser(value, where)
                break
            except InputError:
                continue
        else:
            raise InputError(f"{where}: cannot read {value!r}", 'write a number or a quantity like "8MiB"')
    else:
        number = plain_number(value, where)
    if not math.isfinite(number) or number < 0 or (current > 0 and number <= 0):
        raise InputError(f"{where}: {value!r} must be positive", "sweep physical values only")
    return number


def parse_scenario(data: Mapping[str, Any], file: str, platform: Platform) -> Scenario:
    t = TomlTable(data, file)
    link = _link(t.sub("network"))
    workload = _workload(t.sub("workload"))
    if link.protocol == "tcp" and workload.transport != "tcp":
        raise t.error("workload.transport", "SMB Direct needs an RDMA protocol (roce-v2 or infiniband)",
                      'set network.protocol = "roce-v2" or workload.transport = "tcp"')
    if link.protocol != "tcp" and workload.transport == "tcp":
        raise t.error("network.protocol", "SMB over TCP runs on protocol tcp", 'set network.protocol = "tcp"')
    if link.rate > platform.nic.port_rate * 1.0000001:
        raise t.error("network.links", f"{link.label} is faster than a {platform.nic.model} port "
                      f"({platform.nic.port_rate * 8 / 1e9:g}Gbit/s)",
                      f"use at most {platform.nic.port_rate * 8 / 1e9:g}Gbit/s per link (more links instead), "
                      "or --platform with a profile whose NIC has faster ports")
    custom = _custom_paths(data.get("copy_path"), file)
    names = t.raw("copy_paths", '["cpu-copy", "zero-copy"]')
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise t.error("copy_paths", f"{names!r} is not a list of copy path names",
                      'write it like `copy_paths = ["cpu-copy", "zero-copy"]`')
    paths = []
    for n in names:
        row = custom.get(n) or _paths.builtin(n, workload.transport)
        if row is None:
            known = sorted(set(_paths.builtin_names()) | set(custom))
            if n in known:
                raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {workload.transport}",
                              "remove it here or define it for this transport in a [[copy_path]] table")
            raise t.error("copy_paths", f"unknown copy path {n!r}",
                          f"use one of {', '.join(known)} or define it in a [[copy_path]] table")
        if workload.transport not in row.transports:
            raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {workload.transport}",
                          f"it applies to {', '.join(row.transports)}; remove it here")
        paths.append(row)
    if len(set(names)) != len(names):
        raise t.error("copy_paths", "a copy path is listed twice", "list each path once")
    sweep_t = t.sub("sweep") if "sweep" in data else None
    io_text = (sweep_t.data.get("io_sizes") if sweep_t else None) or t.sub("workload").data.get("io_sizes")
    if io_text is None:
        raise t.error("sweep.io_sizes", "missing field", 'add `io_sizes = "64KiB..8MiB"` under [sweep]')
    where = t.where("sweep.io_sizes")
    if not isinstance(io_text, (str, list)):
        raise InputError(f"{where}: {io_text!r} is not a list of sizes", 'write it like "64KiB..8MiB" or ["64KiB", "1MiB"]')
    io_sizes = tuple(parse_size_list(io_text, where) if isinstance(io_text, str)
                     else [parse_size(v, where) for v in io_text])
    for s in io_sizes:
        if s <= 0 or s > 1 << 30:
            raise InputError(f"{where}: I/O size {s:g} B is outside 1 B..1 GiB", 'write it like "4KiB..8MiB"')
    partial = Scenario(name=t.text("name", '"smbdirect-2x200g"'), description=t.text("description", '"..."', ""),
                       path=file, platform=platform, link=link, workload=workload, copy_paths=tuple(paths),
                       sweep=Sweep(io_sizes=io_sizes))
    target = None
    if "target" in data:
        target = t.quantity("target", parse_rate, "46GB/s")
    sweep = _sweep(sweep_t, io_sizes, len(paths), flat_params(partial), file, flag_params(partial))
    return dataclasses.replace(partial, sweep=sweep, target=target)


# ---------------------------------------------------------------------------------------------
# files and names

PACKAGE_DIR = Path(__file__).resolve().parent
PLATFORM_DIR = PACKAGE_DIR / "platforms"


def _read_toml(path: Path, kind: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind} file", f"check the path, or run `rdmarig scenarios list`") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})", "fix the TOML syntax at that line") from None


def file_kind(name_or_path: str | Path) -> str:
    """'platform' or 'scenario': what a built-in name or .toml file holds."""
    text = str(name_or_path)
    if text in builtin_platforms():
        return "platform"
    if text in builtin_scenarios():
        return "scenario"
    path = Path(text)
    if path.is_file():
        data = _read_toml(path, "scenario or platform")
        return "platform" if "cpu" in data and "workload" not in data else "scenario"
    return "scenario"


def builtin_scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE_DIR.glob("*.toml"))}


def builtin_platforms() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PLATFORM_DIR.glob("*.toml"))}


def _resolve(name_or_path: str | Path, builtins: dict[str, Path], kind: str, hint: str) -> Path:
    text = str(name_or_path)
    if text in builtins:
        return builtins[text]
    path = Path(text)
    if path.suffix == ".toml" or path.exists() or "/" in text:
        if not path.is_file():
            raise InputError(f"{text}: no such {kind} file", f"check the path; {hint}")
        return path
    raise InputError(f"unknown {kind} {text!r}", f"use one of {', '.join(builtins) or '(none)'} or a path to a .toml file; {hint}")


def load_platform(name_or_path: str | Path) -> Platform:
    path = _resolve(name_or_path, builtin_platforms(), "platform", "`rdmarig scenarios list` shows the built-in ones")
    return parse_platform(_read_toml(path, "platform"), str(path))


def scenario_file(name_or_path: str | Path) -> Path:
    return _resolve(name_or_path, builtin_scenarios(), "scenario", "`rdmarig scenarios list` shows the built-in ones")


def load_scenario(name_or_path: str | Path, platform: str | Path | None = None) -> Scenario:
    """Load and validate a scenario by built-in name or path; `platform` overrides its platform."""
    path = scenario_file(name_or_path)
    data = _read_toml(path, "scenario")
    if platform is None:
        ref = data.get("platform")
        if not isinstance(ref, str) or not ref:
            raise InputError(f"{path}: platform: missing field",
                             'add `platform = "xeon-8470-cx7"` (a name from scenarios/platforms or a path)')
        platform = ref
        if ref not in builtin_platforms() and not Path(ref).is_absolute():
            beside = path.parent / ref
            if beside.is_file():
                platform = beside
    return parse_scenario(data, str(path), load_platform(platform))
