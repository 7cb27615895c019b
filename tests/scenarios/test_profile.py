"""Profiles that build on a base and carry a measured section; the writer the loader reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import platform_writer as pw
from scenarios import files, profile, schema
from scenarios.errors import InputError

IDS = ("0b4d28a701c84d5e8bff2ba8210d8fb9", "595eea2f567e45fc906c85bb8f09edb4")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def test_base_own_figures_and_measured_section(tmp_path):
    f = _write(tmp_path, "mine.toml", f'''name = "mine"
base = "xeon-8470-cx7"
[cpu]
cores = 8
cores_source = "a smaller part of the same family"
[measured.cpu.copy_rate_dram]
value = "8GB/s"
low = "7GB/s"
high = "9GB/s"
interval = "95% fit interval"
method = "by a test"
records = ["{IDS[0]}", "{IDS[1]}"]
''')
    p, base = schema.load_platform(f), schema.load_platform("xeon-8470-cx7")
    assert p.name == "mine" and p.base == "xeon-8470-cx7"
    assert p.cpu.cores == 8 and p.sources()["cpu.cores"] == "a smaller part of the same family"
    assert p.cpu.copy_rate_dram == 8e9 and set(p.measured) == {"cpu.copy_rate_dram"}
    m = p.measured["cpu.copy_rate_dram"]
    assert m.records == IDS and (m.low, m.high) == (7e9, 9e9)
    assert p.sources()["cpu.copy_rate_dram"] == (f"measurement: by a test; 95% fit interval 7GB/s .. 9GB/s; "
                                                 f"records {IDS[0]} {IDS[1]}")
    # everything else is the base's, with the base's sources
    assert p.cpu.copy_rate_cache == base.cpu.copy_rate_cache and p.nic == base.nic and p.dma == base.dma
    assert p.sources()["cpu.clock"] == base.sources()["cpu.clock"]


def test_a_measured_figure_overrides_the_one_beside_it(tmp_path):
    text = (schema.PLATFORM_DIR / "epyc-9654-cx7.toml").read_text()
    f = _write(tmp_path, "p.toml", text + '\n[measured.nic.pcie.max_payload]\nvalue = "512B"\nmethod = "lspci -vv"\n'
                                          'records = ["r1"]\n[measured.dma.ptdma.rate]\nvalue = "7GB/s"\n'
                                          'method = "dmatest"\nrecords = ["r2"]\n')
    p = schema.load_platform(f)
    assert p.base == "" and p.nic.pcie.max_payload == 512 and p.dma[0].rate == 7e9
    assert set(p.measured) == {"pcie.max_payload", "dma.ptdma.rate"}
    assert p.sources()["dma.ptdma.rate"] == "measurement: dmatest; records r2"


def test_a_chain_of_bases(tmp_path):
    _write(tmp_path, "a.toml", 'name = "a"\nbase = "epyc-9654-cx7"\n[measured.cpu.copy_rate_cache]\nvalue = "30GB/s"\n'
                               'method = "m"\nrecords = ["ra"]\n[measured.cpu.syscall_time]\nvalue = "0.3us"\n'
                               'method = "m"\nrecords = ["rs"]\n')
    b = _write(tmp_path, "b.toml", 'name = "b"\nbase = "a.toml"\ndma = []\n[cpu]\ncopy_rate_cache = "20GB/s"\n'
                                   'copy_rate_cache_source = "datasheet of b"\n')
    p = schema.load_platform(b)
    assert p.base == "a.toml" and p.dma == ()
    # b's own figure replaces a's measured one (and its measured mark); a's other measured figure stays
    assert p.cpu.copy_rate_cache == 20e9 and p.sources()["cpu.copy_rate_cache"] == "datasheet of b"
    assert set(p.measured) == {"cpu.syscall_time"} and p.cpu.syscall_time == 0.3e-6


def test_the_base_must_stand_on_its_own(tmp_path):
    _write(tmp_path, "a.toml", 'name = "a"\nbase = "epyc-9654-cx7"\n[cpu]\ncores = 0\ncores_source = "x"\n')
    b = _write(tmp_path, "b.toml", 'name = "b"\nbase = "a.toml"\n[cpu]\ncores = 4\ncores_source = "y"\n')
    with pytest.raises(InputError) as info:
        schema.load_platform(b)
    assert str(tmp_path / "a.toml") in info.value.cause and "cpu.cores" in info.value.cause


def test_writer_round_trip(tmp_path):
    figures = {
        "cpu.copy_rate_cache": profile.measured_figure("cpu.copy_rate_cache", 45.78e9, IDS, "fit", "95% fit interval",
                                                       42.15e9, 49.72e9),
        "cpu.cores": profile.measured_figure("cpu.cores", 6, ("r3",), "nproc"),
        "pcie.lanes": profile.measured_figure("pcie.lanes", 8, ("r4",), "lspci", "range", 8, 8),
        "cpu.syscall_time": profile.measured_figure("cpu.syscall_time", 7.4e-7, ("r5",), "fit", "95% fit interval",
                                                    float("nan"), 1e-6),
    }
    head = 'name = "w"\nbase = "xeon-8470-cx7"\n[cpu]\nmodel = "x"\n'
    f = _write(tmp_path, "w.toml", pw.with_measured(head, figures))
    p = schema.load_platform(f)
    assert p.cpu.copy_rate_cache == pytest.approx(45.78e9) and p.cpu.cores == 6 and p.nic.pcie.lanes == 8
    assert p.measured.keys() == figures.keys()
    assert p.measured["cpu.copy_rate_cache"] == figures["cpu.copy_rate_cache"]
    assert p.measured["cpu.syscall_time"].interval == ""          # a non-finite end drops the interval
    assert profile.own_measured(files.read_toml(f, "platform"), f) == p.measured
    # a second write replaces the section and keeps the head
    again = pw.with_measured(f.read_text(), {"cpu.cores": figures["cpu.cores"]})
    assert again.startswith(head) and again.count(pw.MARKER) == 1 and "copy_rate_cache" not in again
    assert pw.with_measured(again, {}) == head


def test_figure_problems_name_range_and_relation():
    base = schema.load_platform("xeon-8470-cx7")
    figures = {"cpu.syscall_time": profile.measured_figure("cpu.syscall_time", 1e-12, ("r",), "fit"),
               "memory.dram_bandwidth": profile.measured_figure("memory.dram_bandwidth", 400e9, ("r",), "fit"),
               "cpu.copy_rate_dram": profile.measured_figure("cpu.copy_rate_dram", 8e9, ("r",), "fit")}
    problems = profile.figure_problems(figures, base)
    assert set(problems) == {"cpu.syscall_time", "memory.dram_bandwidth"}
    assert "10ns..1ms" in problems["cpu.syscall_time"]
    assert "exceeds memory.dram_peak 307.2GB/s" in problems["memory.dram_bandwidth"]
