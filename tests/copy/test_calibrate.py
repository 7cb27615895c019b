"""Calibration: the fitters recover known parameters; `calibrate host` writes a loadable profile
from real records whose every measured figure cites records that exist."""

import re
import subprocess

import numpy as np
import pytest

from models import calibrate as cal
from results.store import Store
from rig.cli import main
from scenarios import schema


def test_copy_law_fit_recovers_known_rates():
    rng = np.random.default_rng(1)
    sizes = [2.0 ** k for k in range(16, 28)]
    pts = [cal.Point(s, float(cal.copy_rate(s, 40e9, 10e9, 1.5e6)) * rng.normal(1, 0.02), f"r{i}")
           for i, s in enumerate(sizes) for _ in range(3)]
    fit = cal.fit_copy_rates(pts)
    assert fit.params["copy_rate_cache"].value == pytest.approx(40e9, rel=0.1)
    assert fit.params["copy_rate_dram"].value == pytest.approx(10e9, rel=0.1)
    assert fit.params["cache_per_core"].value == pytest.approx(1.5e6, rel=0.35)
    e = fit.params["copy_rate_dram"]
    assert e.low < e.value < e.high
    assert fit.rms_relative_error < 0.05


def test_per_call_fit_recovers_per_byte_and_per_call_costs():
    rng = np.random.default_rng(2)
    pts = []
    for chunk in (64 << 10, 1 << 20, 8 << 20):
        calls_per_byte = 1 / chunk
        for _ in range(3):
            y = (0.2e-9 + 2e-6 * calls_per_byte) * rng.normal(1, 0.01)
            pts.append(cal.Point(calls_per_byte, y, f"c{chunk}"))
    fit = cal.fit_per_call_costs(pts)
    assert fit.params["per_byte_seconds"].value == pytest.approx(0.2e-9, rel=0.05)
    assert fit.params["per_call_seconds"].value == pytest.approx(2e-6, rel=0.1)
    assert set(fit.params["per_call_seconds"].record_ids) == {f"c{c}" for c in (64 << 10, 1 << 20, 8 << 20)}


def test_fitters_refuse_too_few_points():
    with pytest.raises(ValueError):
        cal.fit_copy_rates([cal.Point(4096, 1e9, "a")])
    with pytest.raises(ValueError):
        cal.fit_per_call_costs([cal.Point(1e-5, 1e-10, "a")] * 3)


def _rdmarig(capsys, *args) -> subprocess.CompletedProcess:
    """The console script's entry point in this process (an interpreter start-up costs ~1 CPU-s)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_calibrate_host_from_real_records(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    m = _rdmarig(capsys, "measure", "copy", "--probe", "memcpy", "--sizes", "64KiB,1MiB,16MiB,64MiB", "--threads", "1",
                 "--repetitions", "2", "--store", str(store))
    assert m.returncode == 0, m.stderr
    s = _rdmarig(capsys, "measure", "copy", "--probe", "socket", "--paths", "rw,sendfile", "--sizes", "64KiB,1MiB",
                 "--repetitions", "2", "--duration", "0.1s", "--store", str(store))
    assert s.returncode == 0, s.stderr
    out = tmp_path / "this-host.toml"
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(out), "--store", str(store))
    assert c.returncode == 0, c.stderr
    assert "fitted host parameters" in c.stdout and "model vs measured" in c.stdout
    plat = schema.load_platform(out)
    assert plat.cpu.copy_rate_cache > 0 and plat.cpu.copy_rate_dram > 0 and plat.cpu.syscall_time >= 0
    with Store(store) as st:
        ids = {r.id for r in st.query()}
    for key, source in plat.sources().items():
        if source.startswith("measurement: rdmarig calibrate host"):
            cited = re.findall(r"\b[0-9a-f]{32}\b", source)
            assert cited and set(cited) <= ids, key
    assert plat.sources()["cpu.copy_rate_dram"].startswith("measurement")
    assert plat.sources()["cpu.tcp_segment_time"].startswith("measurement")
    # the scenario runs on the calibrated profile
    p = _rdmarig(capsys, "plan", "smb-tcp-loopback", "--platform", str(out), "--store", str(store))
    assert p.returncode == 0, p.stderr
    assert "sendfile" in p.stdout


@pytest.mark.parametrize("existing", [False, True])
def test_calibrate_host_without_records_is_one_line(tmp_path, capsys, existing):
    store = tmp_path / "empty.sqlite"
    if existing:
        with Store(store) as st:
            assert st.query(limit=1) == []
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(tmp_path / "p.toml"), "--store", str(store))
    assert c.returncode == 2
    assert len(c.stderr.strip().splitlines()) == 1 and "rdmarig measure copy" in c.stderr
    assert not (tmp_path / "p.toml").exists()
    assert store.exists() == existing  # a mistyped --store path is not created as an empty store
