"""Scenario and platform files: every built-in loads; bad input names the file and the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from scenarios import schema
from scenarios.errors import InputError

SCEN = Path(schema.PACKAGE_DIR)


def test_every_builtin_scenario_loads_on_every_platform():
    assert set(schema.builtin_scenarios()) >= {"smbdirect-2x200g", "smb-tcp-100g"}
    from scenarios.errors import InputError
    for name in schema.builtin_scenarios():
        for plat in schema.builtin_platforms():
            try:
                s = schema.load_scenario(name, platform=plat)
            except InputError as exc:
                # RoCE with both ends on one host needs a NIC that runs RDMA in software (soft-RoCE)
                assert "needs software RDMA" in exc.cause and schema.load_platform(plat).nic.rdma == "hardware"
                continue
            assert s.copy_paths and s.sweep.io_sizes
            assert s.platform.name == plat


def test_every_platform_number_has_a_source():
    for name in schema.builtin_platforms():
        p = schema.load_platform(name)
        flat_keys = {k.rsplit(".", 1)[0] for k in p.sources()}
        assert {"cpu", "memory", "nic", "pcie"} <= flat_keys
        assert all(v.strip() for v in p.sources().values())
        for section in (p.cpu, p.memory, p.nic, p.nic.pcie, *p.dma):
            # field names carry units where the TOML key does not (clock_hz <- clock = "2.0GHz")
            # a hardware NIC has no software-RDMA figures (they are read only with rdma = "software")
            numbers = {f.name.removesuffix("_hz") for f in dataclasses.fields(section)
                       if isinstance(getattr(section, f.name), (int, float))
                       and not isinstance(getattr(section, f.name), bool)
                       and not (f.name.startswith("soft_") and p.nic.rdma == "hardware")}
            assert numbers and numbers <= set(section.sources), (name, numbers - set(section.sources))


def test_links_one_line_change():
    assert schema.parse_links("2x200Gbit/s", "x") == (2, 25e9)
    assert schema.parse_links("4x100Gbit/s", "x") == (4, 12.5e9)
    assert schema.parse_links("1x400Gbit/s", "x") == (1, 50e9)


def test_builtin_smbdirect_defaults():
    s = schema.load_scenario("smbdirect-2x200g")
    assert s.link.count == 2 and s.link.rate == 25e9 and s.link.protocol == "roce-v2"
    assert s.sweep.io_sizes[0] == 64 * 1024 and s.sweep.io_sizes[-1] == 8 * 1024 * 1024
    assert [p.name for p in s.copy_paths] == ["cpu-copy", "async-workers", "dma-offload", "dma-offload-chan", "zero-copy"]


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _scenario_text(**repl: str) -> str:
    text = (SCEN / "smbdirect-2x200g.toml").read_text()
    for old, new in repl.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _error(path: Path, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        schema.load_scenario(path, **kw)
    return info.value


def test_unknown_scenario_name():
    with pytest.raises(InputError) as info:
        schema.load_scenario("no-such-scenario")
    assert "no-such-scenario" in info.value.cause and "smbdirect-2x200g" in info.value.fix


def test_missing_field_names_file_and_field(tmp_path):
    p = _write(tmp_path, _scenario_text(**{"connections = 4 ": "# gone "}))
    e = _error(p)
    assert str(p) in e.cause and "workload.connections" in e.cause and "missing" in e.cause
    assert "connections" in e.fix


def test_wrong_unit(tmp_path):
    p = _write(tmp_path, _scenario_text(**{'rtt = "10us"': 'rtt = "10GB"'}))
    e = _error(p)
    assert str(p) in e.one_line() and "workload.rtt" in e.one_line()


def test_bare_number_where_unit_belongs(tmp_path):
    p = _write(tmp_path, _scenario_text(**{'rtt = "10us"': "rtt = 10"}))
    e = _error(p)
    assert "workload.rtt" in e.cause and "unit" in e.cause


def test_zero_and_negative_capacity_in_platform(tmp_path):
    text = (SCEN / "platforms" / "xeon-8470-cx7.toml").read_text()
    for bad in ('dram_bandwidth = "0GB/s"', 'dram_bandwidth = "-5GB/s"'):
        p = _write(tmp_path, text.replace('dram_bandwidth = "294GB/s"', bad), "plat.toml")
        with pytest.raises(InputError) as info:
            schema.load_platform(p)
        assert str(p) in info.value.cause and "memory.dram_bandwidth" in info.value.cause


def test_number_without_source(tmp_path):
    text = (SCEN / "platforms" / "xeon-8470-cx7.toml").read_text()
    lines = [l for l in text.splitlines() if not l.startswith("copy_rate_dram_source")]
    p = _write(tmp_path, "\n".join(lines), "plat.toml")
    with pytest.raises(InputError) as info:
        schema.load_platform(p)
    assert "cpu.copy_rate_dram_source" in info.value.cause


def test_zero_links(tmp_path):
    p = _write(tmp_path, _scenario_text(**{'links = "2x200Gbit/s"': 'links = "0x200Gbit/s"'}))
    assert "network.links" in _error(p).cause


def test_links_faster_than_nic_port(tmp_path):
    p = _write(tmp_path, _scenario_text(**{'links = "2x200Gbit/s"': 'links = "1x400Gbit/s"'}))
    e = _error(p)
    assert "network.links" in e.cause and "port" in e.cause


def test_sweep_over_cap_is_refused(tmp_path):
    text = _scenario_text() + '\n"cpu.copy_rate_dram" = [' + ", ".join(str(1e9 + i) for i in range(30000)) + "]\n"
    p = _write(tmp_path, text)
    e = _error(p)
    assert "1,000,000" in e.cause and "sweep" in e.cause


def test_sweep_unknown_field(tmp_path):
    p = _write(tmp_path, _scenario_text() + '\n"cpu.warp_drive" = [1, 2]\n')
    assert "sweep.cpu.warp_drive" in _error(p).cause


def test_unknown_copy_path_and_wrong_transport(tmp_path):
    p = _write(tmp_path, _scenario_text(**{'"zero-copy"]': '"teleport"]'}))
    assert "teleport" in _error(p).cause
    p = _write(tmp_path, _scenario_text(**{'"zero-copy"]': '"splice"]'}))
    assert "transport smbdirect" in _error(p).cause


def test_custom_copy_path_row(tmp_path):
    text = _scenario_text(**{'"zero-copy"]': '"zero-copy", "my-path"]'})
    text += '\n[[copy_path]]\nname = "my-path"\ntransports = ["smbdirect"]\ncopies = [{who = "serving", source = "buffer"}]\nrdma_wrs_per_io = 2\n'
    s = schema.load_scenario(_write(tmp_path, text))
    assert s.copy_paths[-1].name == "my-path" and s.copy_paths[-1].copies[0].source == "buffer"


def test_platform_override_by_file():
    p = SCEN / "platforms" / "epyc-9654-cx7.toml"
    s = schema.load_scenario("smbdirect-2x200g", platform=str(p))
    assert s.platform.cpu.cores == 96


def test_with_params_overrides_and_rejects_unknown():
    s = schema.load_scenario("smbdirect-2x200g")
    t = schema.with_params(s, {"cpu.copy_rate_dram": 8e9, "link.count": 4, "dma.dsa.count": 2})
    assert t.platform.cpu.copy_rate_dram == 8e9 and t.link.count == 4 and t.platform.dma[0].count == 2
    assert s.platform.cpu.copy_rate_dram == 6.17e9
    with pytest.raises(InputError):
        schema.with_params(s, {"cpu.nonsense": 1})


def test_sweep_over_a_switch(tmp_path):
    p = _write(tmp_path, _scenario_text() + '\n"workload.page_cache_hit" = [true, false]\n')
    s = schema.load_scenario(p)
    assert s.sweep.fields == (("workload.page_cache_hit", (1.0, 0.0)),)
    p = _write(tmp_path, _scenario_text() + '\n"workload.page_cache_hit" = [2]\n')
    assert "true/false" in _error(p).cause


def test_sweep_quantities_with_units(tmp_path):
    p = _write(tmp_path, _scenario_text() + '\n"cpu.copy_rate_dram" = ["6GB/s", "12GB/s"]\n"link.mtu" = ["1500B", "9000B"]\n')
    s = schema.load_scenario(p)
    assert dict(s.sweep.fields) == {"cpu.copy_rate_dram": (6e9, 12e9), "link.mtu": (1500.0, 9000.0)}
    p = _write(tmp_path, _scenario_text() + '\n"cpu.copy_rate_dram" = ["0GB/s"]\n')
    assert "'0GB/s' is outside 10MB/s..1TB/s" in _error(p).cause


def test_dma_entries_must_be_tables(tmp_path):
    text = (SCEN / "platforms" / "xeon-8470-cx7.toml").read_text()
    p = _write(tmp_path, "dma = [1, 2]\n" + text[:text.index("[[dma]]")], "plat.toml")
    with pytest.raises(InputError) as info:
        schema.load_platform(p)
    assert str(p) in info.value.cause and "dma" in info.value.cause and "[[dma]]" in info.value.fix


def test_io_sizes_must_be_sizes(tmp_path):
    for bad in ("io_sizes = 4096", 'io_sizes = "4KiB..2KiB"', 'io_sizes = ["fast"]'):
        p = _write(tmp_path, _scenario_text(**{'io_sizes = "64KiB..8MiB"': bad}))
        assert "sweep.io_sizes" in _error(p).cause


def test_grid_size_is_checked_in_one_place():
    from models.sweep import evaluate_grid
    s = schema.load_scenario("smbdirect-2x200g")
    with pytest.raises(InputError, match="over the 1,000,000 points one evaluation holds"):
        evaluate_grid(s, {"workload.io_size": [4096.0] * 1001, "workload.connections": [1.0] * 1000})
    with pytest.raises(InputError, match="over the 100,000 rows a plan table holds"):
        schema.check_grid_points(100_001, "x.toml", schema.MAX_TABLE_ROWS)
    schema.check_grid_points(schema.MAX_TABLE_ROWS, "x.toml", schema.MAX_TABLE_ROWS)
