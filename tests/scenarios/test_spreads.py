"""Spreads beside platform figures (scenarios/spread.py): how they read, and bad ones through the CLI,
one row per file: `scenarios check FILE` and `plan --platform FILE` exit 2 with one line."""

from __future__ import annotations

import pytest

from scenarios import schema
from scenarios.errors import InputError
from scenarios.platform import toml_field
from scenarios.spread import of_interval, parse

XEON = (schema.PLATFORM_DIR / "xeon-8470-cx7.toml").read_text()
SMB = 'smb_request_time_spread = "log 2us..20us"'


@pytest.mark.parametrize("text, kind, low, high, values", [
    ("2us..20us", "uniform", 2e-6, 20e-6, ()),
    ("±20%", "uniform", 4e-6, 6e-6, ()),
    ("+-20%", "uniform", 4e-6, 6e-6, ()),
    ("log 1us..10us", "log-uniform", 1e-6, 10e-6, ()),
    ("normal 4us..7us", "normal", 4e-6, 7e-6, ()),
    ("one of 2us, 5us, 9us", "one-of", 2e-6, 9e-6, (2e-6, 5e-6, 9e-6)),
    ("5us..5us", "uniform", 5e-6, 5e-6, ()),
])
def test_forms(text, kind, low, high, values):
    s = parse(text, 5e-6, toml_field("cpu.smb_request_time"), "f: cpu.smb_request_time_spread", "why")
    assert (s.kind, s.value, s.source) == (kind, 5e-6, "why")
    assert s.low == pytest.approx(low) and s.high == pytest.approx(high)
    assert s.values == pytest.approx(values)
    assert s.confidence == (0.95 if kind == "normal" else 0.0)


def test_counts_take_a_list():
    s = parse("one of 1, 2, 4", 4, toml_field("dma.dsa.count"), "f", "why")
    assert s.values == (1.0, 2.0, 4.0)
    with pytest.raises(InputError, match="takes discrete values"):
        parse("1..4", 4, toml_field("dma.dsa.count"), "f", "why")


def test_interval_text_names_the_confidence():
    assert of_interval(7, 6, 9, "95% fit interval", "s").confidence == 0.95
    assert of_interval(7, 6, 9, "90 % interval", "s").confidence == 0.90
    s = of_interval(7, 6, 9, "range over the repetitions", "s")
    assert (s.kind, s.confidence) == ("uniform", 0.0)


def _edit(old: str, new: str) -> str:
    assert old in XEON, old
    return XEON.replace(old, new, 1)


def _spread(value: str, key: str = "smb_request_time") -> str:
    line = next(line for line in XEON.splitlines() if line.startswith(f"{key}_source"))
    return _edit(line, f'{line}\n{key}_spread = {value}\n{key}_spread_source = "why"')


# (id, platform file text, message fragment)
BAD_SPREADS = [
    ("unreadable", _edit(SMB, 'smb_request_time_spread = "roughly 5us"'), "cannot read 'roughly 5us' as a spread"),
    ("no-dots", _edit(SMB, 'smb_request_time_spread = "2us-20us"'), "smb_request_time_spread: cannot read"),
    ("three-ends", _edit(SMB, 'smb_request_time_spread = "2us..5us..20us"'), "cannot read '2us..5us..20us' as a spread"),
    ("wrong-unit", _edit(SMB, 'smb_request_time_spread = "2GB/s..20GB/s"'), "cannot read '2GB/s'"),
    ("not-a-string", _edit(SMB, "smb_request_time_spread = 5"), "5 is not a spread"),
    ("empty", _edit(SMB, 'smb_request_time_spread = ""'), "'' is not a spread"),
    ("misses-the-figure", _edit(SMB, 'smb_request_time_spread = "6us..20us"'), "does not enclose the figure itself (5us)"),
    ("reversed", _edit(SMB, 'smb_request_time_spread = "20us..2us"'), "does not enclose the figure"),
    ("unphysical-end", _edit(SMB, 'smb_request_time_spread = "1ns..20us"'), "reaches 0.001us, which is outside 10ns..100ms"),
    ("percent-to-zero", _edit(SMB, 'smb_request_time_spread = "±100%"'), "reaches zero or below"),
    ("percent-unphysical", _edit(SMB, 'smb_request_time_spread = "±99.9%"'), "outside 10ns..100ms"),
    ("log-from-zero", _edit('"0us..0.1us"', '"log 0us..0.1us"'), "a log-uniform range starts above zero"),
    ("no-source", _edit('smb_request_time_spread_source = ', 'smb_request_time_spread_sorce = '),
     "did you mean smb_request_time_spread_source?"),
    ("source-without-spread", _edit(SMB + "\n", ""), "a spread's source without a spread"),
    ("missing-source", _spread('"2us..20us"', "syscall_time").replace('syscall_time_spread_source = "why"\n', ""),
     "cpu.syscall_time_spread_source: the number `syscall_time_spread` has no source"),
    ("one-of-leaves-figure", _edit('"one of 64B, 128B"', '"one of 128B"'), "leaves out the figure itself (64B)"),
    ("one-of-not-allowed", _edit('"one of 128B, 256B, 512B"', '"one of 100B, 256B"'), "not one of 128B"),
    ("range-on-discrete", _edit('"one of 128B, 256B, 512B"', '"128B..512B"'), "takes discrete values"),
    ("count-range", _spread('"2..8"', "count"), "count takes discrete values"),
    ("count-fraction", _spread('"one of 2.5, 4"', "count"), "not a whole number"),
    ("spread-on-a-flag", _spread('"0..1"', "nontemporal_copy"), "unknown key in [cpu]"),
    ("above-the-bound", _edit('"196GB/s..307.2GB/s"', '"196GB/s..320GB/s"'),
     "memory.dram_bandwidth_spread: reaches 320GB/s, above memory.dram_peak 307.2GB/s"),
    ("completion-above-mps", _edit('"one of 64B, 128B"', '"one of 64B, 256B"'),
     "read_completion_spread: reaches 256B, above pcie.max_payload 128B"),
    ("one-of-empty-value", _edit(SMB, 'smb_request_time_spread = "one of 5us,"'), "cannot read '' of 'one of 5us,'"),
    ("spread-on-a-text", _edit('description = "8 channels', 'description_spread = "a..b"\ndescription = "8 channels'),
     "memory.description_spread: unknown key in [memory]"),
]


@pytest.mark.parametrize("row", BAD_SPREADS, ids=lambda r: r[0])
def test_bad_spread_is_one_line(run_cli, tmp_path, row):
    _, text, fragment = row
    f = tmp_path / "bad.toml"
    f.write_text(text)
    run_cli("scenarios", "check", str(f)).one_line_error(2, fragment)
    store = tmp_path / "r.sqlite"
    res = run_cli("plan", "smbdirect-2x200g", "--platform", str(f), "--store", str(store))
    res.one_line_error(2, fragment)
    assert str(f) in res.err and not store.exists()
