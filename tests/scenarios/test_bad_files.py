"""Bad scenario and platform files through the CLI: one row per file, `scenarios check FILE` and
`plan FILE` (platforms: `plan smbdirect-2x200g --platform FILE`) both exit 2 with one line that
names the key, and nothing is stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenarios import schema

SCENARIOS = schema.PACKAGE_DIR
PLATFORMS = schema.PLATFORM_DIR


def _text(source: str, *edits: tuple[str, str]) -> str:
    kind, name = source.split(":")
    text = ((PLATFORMS if kind == "platform" else SCENARIOS) / f"{name}.toml").read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _add(section_line: str, line: str) -> tuple[str, str]:
    """An edit that adds `line` right below `section_line`."""
    return section_line, f"{section_line}\n{line}"


SMBD, TCP, LOOP, XEON = "scenario:smbdirect-2x200g", "scenario:smb-tcp-100g", "scenario:smb-tcp-loopback", \
    "platform:xeon-8470-cx7"
SOFT = "platform:soft-roce-guest"
MEASURED = '\n[measured.cpu.copy_rate_dram]\nvalue = "8GB/s"\nmethod = "by hand"\nrecords = ["r1"]\n'

# (id, source, edits or extra text, message fragment)
SCENARIO_ROWS = [
    ("misspelled-workload-key", SMBD, [("page_cache_hit = true", "page_cache_hti = false")],
     "workload.page_cache_hti: unknown key in [workload]; did you mean page_cache_hit?"),
    ("unknown-workload-key", SMBD, [_add("[workload]", "frobnicate = 3")], "workload.frobnicate: unknown key"),
    ("stray-top-level-key", SMBD, [_add('platform = "xeon-8470-cx7"', "colour = 3")],
     "colour: unknown key at the top level"),
    ("misspelled-table", SMBD, [("[workload]", "[workloda]")], "did you mean workload?"),
    ("misspelled-network-key", SMBD, [('mtu = "1500B"', 'mut = "1500B"')], "did you mean mtu?"),
    ("misspelled-sweep-field", SMBD, [_add("[sweep]", '"cpu.copy_rate_drm" = ["6GB/s"]')],
     "did you mean cpu.copy_rate_dram?"),
    ("misspelled-copy-path-key", LOOP, [("syscalls_per_io = 2", "syscals_per_io = 2")],
     "copy_path[0].syscals_per_io: unknown key in copy_path[0]; did you mean syscalls_per_io?"),
    ("misspelled-copy-key", LOOP, [('{who = "serving", source = "buffer"}', '{whoo = "serving", source = "buffer"}')],
     "did you mean who?"),
    ("mtu-10-bytes", SMBD, [('mtu = "1500B"', 'mtu = "10B"')], "network.mtu: '10B' is outside 576B..9216B"),
    ("mtu-above-jumbo", SMBD, [('mtu = "1500B"', 'mtu = "9217B"')], "576B..9216B"),
    ("ib-mtu-not-enumerated", SMBD, [('protocol = "roce-v2"', 'protocol = "infiniband"')],
     "not one of 256B, 512B, 1024B, 2048B, 4096B"),
    ("lo-mtu-on-ethernet", LOOP, [('medium = "loopback"', 'links = "1x200Gbit/s"')], 'medium = "loopback"'),
    ("loopback-roce-on-hardware-rdma", SMBD, [_add('protocol = "roce-v2"', 'medium = "loopback"')],
     "needs software RDMA"),
    ("loopback-with-links", LOOP, [_add('medium = "loopback"', 'links = "1x100Gbit/s"')], "no wire"),
    ("loopback-without-client", LOOP, [("client_cores = 1 ", "client_cores = 0 ")], "workload.client_cores"),
    ("loopback-infiniband", LOOP, [('protocol = "tcp"', 'protocol = "infiniband"')], "infiniband is its own medium"),
    ("memory-with-rtt", SMBD, [('transport = "smbdirect"', 'transport = "memory"')],
     "a memory workload has no network round trip"),
    ("memory-with-network", SMBD, [('transport = "smbdirect"', 'transport = "memory"'), ('rtt = "10us"', "")],
     "moves no data over a network"),
    ("memory-with-smb2", SMBD, [('transport = "smbdirect"', 'transport = "memory"\napplication = "smb2"'), ('rtt = "10us"', "")],
     "a memory workload carries no SMB2 requests"),
    ("foreign-load-negative", LOOP, [_add("[workload]", 'foreign_load = "-1s"')], "cannot read '-1s'"),
    ("foreign-load-beyond-cores", LOOP, [_add("[workload]", 'foreign_load = "9000s"')], "0s..8192s"),
    ("busy-poll-not-bool", SMBD, [_add("[workload]", "busy_poll = 1")], "is not true/false"),
    ("dma-spread-not-bool", SMBD, [_add("[workload]", 'dma_spread = "yes"')], "is not true/false"),
    ("dma-per-page-not-bool", LOOP, [("syscalls_per_io = 2", 'syscalls_per_io = 2\ndma_per_page = 1')],
     "is not true/false"),
    ("maps-per-io-negative", LOOP, [("syscalls_per_io = 2", "syscalls_per_io = 2\nmaps_per_io = -1")], "0..100"),
    ("registrations-per-io-string", LOOP, [("syscalls_per_io = 2", 'syscalls_per_io = 2\nregistrations_per_io = "1"')],
     "is not a number"),
    ("rdma-source-unknown", LOOP, [("syscalls_per_io = 2", 'syscalls_per_io = 2\nrdma_source = "nic"')],
     "copy_path[0].rdma_source: unknown value 'nic'"),
    ("application-unknown", SMBD, [_add("[workload]", 'application = "nfs"')], "unknown value 'nfs'"),
    ("placement-unknown", SMBD, [_add("[workload]", 'placement = "everywhere"')], "use one of local, spread, unpinned"),
    ("page-size-3kib", SMBD, [_add("[workload]", 'page_bytes = "3KiB"')], "not one of 4KiB"),
    ("tcp-window-zero", TCP, [_add("[workload]", 'tcp_window = "0B"')], "1KiB..1GiB"),
    ("client-cores-negative", SMBD, [_add("[workload]", "client_cores = -1")], "0..8192"),
    ("dma-channels-zero", SMBD, [_add("[workload]", "dma_channels = 0")], "1..256"),
    ("workers-take-unknown", LOOP, [("syscalls_per_io = 2", 'syscalls_per_io = 2\nworkers_take = ["copies"]')],
     "not a list of pieces"),
    ("pins-per-io-1000", LOOP, [("syscalls_per_io = 2", "syscalls_per_io = 2\npins_per_io = 1000")], "0..100"),
    ("copy-source-unknown", LOOP, [('source = "buffer"}', 'source = "cache"}')], "use one of page-cache, buffer, filled"),
    ("too-many-links", SMBD, [('links = "2x200Gbit/s"', 'links = "65x100Gbit/s"')], "1..64"),
    ("infinite-link-rate", SMBD, [('links = "2x200Gbit/s"', 'links = "2x1e999Gbit/s"')], "not a finite rate"),
    ("zero-connections", SMBD, [("connections = 4 ", "connections = 0 ")], "1..65535"),
    ("zero-clients", SMBD, [_add("[workload]", "clients = 0")], "1..65535"),
    ("sweep-half-a-client", SMBD, [_add("[sweep]", '"workload.clients" = [1, 2.5]')], "not a whole number"),
    ("credits-beyond-16-bit", SMBD, [("outstanding_per_connection = 32", "outstanding_per_connection = 70000")],
     "16-bit"),
    ("io-cores-beyond-linux", SMBD, [("io_cores = 4 ", "io_cores = 10000 ")], "1..8192"),
    ("rtt-in-seconds", SMBD, [('rtt = "10us"', 'rtt = "5s"')], "100ns..1s"),
    ("gso-beyond-big-tcp", TCP, [('gso_size = "64KiB"', 'gso_size = "1MiB"')], "512B..512KiB"),
    ("io-size-above-1gib", SMBD, [('io_sizes = "64KiB..8MiB"', 'io_sizes = "64KiB..2GiB"')], "1B..1GiB"),
    ("infinite-target", SMBD, [_add('platform = "xeon-8470-cx7"', 'target = "1e999GB/s"')], "not a finite rate"),
    ("sweep-mtu-out-of-range", SMBD, [_add("[sweep]", '"link.mtu" = ["1500B", "10B"]')], "'10B' is outside 576B"),
    ("sweep-half-a-connection", SMBD, [_add("[sweep]", '"workload.connections" = [1, 1.5]')], "not a whole number"),
    ("sweep-rate-as-time", SMBD, [_add("[sweep]", '"cpu.copy_rate_dram" = ["6us"]')], "as a rate"),
    ("sweep-link-faster-than-port", SMBD, [_add("[sweep]", '"link.rate" = ["400Gbit/s"]')],
     "exceeds nic.port_rate 200Gbit/s"),
    ("copy-path-zero-chunk", LOOP, [('chunk = "1MiB"', 'chunk = "0B"')], "copy_path[2].chunk: '0B' is outside 1B..1GiB"),
    ("copy-path-infinite-count", LOOP, [("syscalls_per_io = 2", "syscalls_per_io = inf")], "not a finite number"),
    ("copy-path-bare-chunk", LOOP, [('chunk = "1MiB"', "chunk = 1048576")], "has no unit"),
    ("invalid-toml", SMBD, [("[sweep]", "[sweep")], "not valid TOML"),
    ("platform-not-a-name", SMBD, [('platform = "xeon-8470-cx7"', "platform = 3")], "3 is not a profile name"),
    ("copy-path-no-transport", LOOP, [('transports = ["tcp"]', "transports = []")], "is not a list of transports"),
    ("copy-path-dma-without-api", LOOP, [('copies = [{who = "serving", source = "mapped"}]\nsyscalls_per_io = 1\n'
                                          'zc_notifications_per_io = 1',
                                          'copies = [{who = "dma", source = "page-cache"}]\nsyscalls_per_io = 1\n'
                                          'zc_notifications_per_io = 1')], "dma_api: missing field"),
    ("sweep-infinite-value", SMBD, [_add("[sweep]", '"workload.rtt" = [inf]')], "not a finite number"),
]
PLATFORM_ROWS = [
    ("misspelled-cpu-key", XEON, [("cores = 52", "coers = 52")], "cpu.coers: unknown key in [cpu]; did you mean cores?"),
    ("misspelled-source-key", XEON, [("cores_source =", "cores_sorce =")], "did you mean cores_source?"),
    ("stray-top-level-key", XEON, [_add('name = "xeon-8470-cx7"', 'vendor = "intel"')],
     "vendor: unknown key at the top level"),
    ("misspelled-pcie-key", XEON, [("lanes = 16", "lane = 16")], "nic.pcie.lane: unknown key in [nic.pcie]"),
    ("misspelled-dma-key", XEON, [('rate = "30GB/s"', 'rat = "30GB/s"')], "dma[0].rat: unknown key in dma[0]"),
    ("misspelled-memory-table", XEON, [("[memory]", "[memroy]")], "did you mean memory?"),
    ("pcie-x12", XEON, [("lanes = 16", "lanes = 12")], "not one of 1, 2, 4, 8, 16, 32"),
    ("pcie-gen6", XEON, [("generation = 5", "generation = 6")], "1..5"),
    ("mps-not-power-of-two", XEON, [('max_payload = "256B"', 'max_payload = "100B"')], "not one of 128B, 256B"),
    ("completion-above-mps", XEON, [('read_completion = "64B"', 'read_completion = "512B"')],
     "nic.pcie.read_completion: 512B exceeds pcie.max_payload 256B"),
    ("dram-above-peak", XEON, [('dram_bandwidth = "294GB/s"', 'dram_bandwidth = "400GB/s"')],
     "memory.dram_bandwidth: 400GB/s exceeds memory.dram_peak 307.2GB/s"),
    ("clock-20ghz", XEON, [('clock = "2.0GHz"', 'clock = "20GHz"')], "0.1GHz..10GHz"),
    ("core-copies-2tb", XEON, [('copy_rate_cache = "25.7GB/s"', 'copy_rate_cache = "2TB/s"')], "10MB/s..1TB/s"),
    ("syscall-in-ms", XEON, [('syscall_time = "0.25us"', 'syscall_time = "5ms"')], "10ns..1ms"),
    ("port-faster-than-ethernet", XEON, [('port_rate = "200Gbit/s"', 'port_rate = "3.2Tbit/s"')], "1.6Tbit/s"),
    ("zero-cores", XEON, [("cores = 52", "cores = 0")], "1..8192"),
    ("negative-dma-count", XEON, [("count = 4", "count = -1")], "0..256"),
    ("tlp-overhead-200b", XEON, [('tlp_overhead = "20B"', 'tlp_overhead = "200B"')], "12B..64B"),
    ("measured-misspelled", XEON, [], MEASURED.replace("copy_rate_dram]", "copy_rate_drma]"),
     "did you mean copy_rate_dram?"),
    ("measured-without-records", XEON, [], MEASURED.replace('records = ["r1"]\n', ""), "records: missing field"),
    ("measured-misspelled-entry-key", XEON, [], MEASURED.replace("value =", "vaule ="), "did you mean value?"),
    ("measured-outside-interval", XEON, [], MEASURED + 'low = "1GB/s"\nhigh = "2GB/s"\ninterval = "95% fit"\n',
     "outside its own interval"),
    ("measured-unphysical", XEON, [], MEASURED.replace('"8GB/s"', '"8TB/s"'), "10MB/s..1TB/s"),
    ("measured-unknown-engine", XEON, [], '\n[measured.dma.ioat.rate]\nvalue = "8GB/s"\nmethod = "x"\nrecords = ["r"]\n',
     "no [[dma]] engine of that name"),
    ("software-rdma-without-figures", XEON, [('rdma = "hardware"', 'rdma = "software"')], "nic.soft_crc_rate: missing"),
    ("soft-figure-on-hardware-nic", XEON, [_add('rdma = "hardware"', 'soft_packet_time = "1us"')],
     "a software-RDMA figure on a NIC whose rdma is hardware"),
    ("rdma-unknown", XEON, [('rdma = "hardware"', 'rdma = "firmware"')], "use one of hardware, software"),
    ("rdma-without-source", XEON, [('rdma_source = "NVIDIA ConnectX-7: RoCE v2 transport in the NIC"', "")],
     "nic.rdma_source"),
    ("zero-sockets", XEON, [("sockets = 2", "sockets = 0")], "1..8"),
    ("zero-rss-queues", XEON, [("rss_queues = 52", "rss_queues = 0")], "1..8192"),
    ("copy-page-time-5ms", XEON, [('copy_page_time = "0.35us"', 'copy_page_time = "5ms"')], "0s..1ms"),
    ("pin-time-in-ms", XEON, [('pin_page_time = "2.3ns"', 'pin_page_time = "20ms"')], "1ns..10ms"),
    ("socket-link-without-source", XEON, [("inter_socket_bandwidth_source =", "inter_socket_bw_source =")],
     "unknown key"),
    ("tcp-receive-time-in-ms", XEON, [('tcp_receive_time = "1.25us"', 'tcp_receive_time = "5ms"')], "10ns..1ms"),
    ("csum-copy-rate-zero", XEON, [('csum_copy_rate = "9.06GB/s"', 'csum_copy_rate = "0GB/s"')], "10MB/s..1TB/s"),
    ("page-zero-rate-unitless", XEON, [('page_zero_rate = "13.1GB/s"', "page_zero_rate = 13.1")], "has no unit"),
    ("socket-link-beyond-memory", XEON, [('inter_socket_bandwidth = "128GB/s"', 'inter_socket_bandwidth = "20TB/s"')],
     "10MB/s..10TB/s"),
    ("checksum-offload-not-bool", XEON, [("checksum_offload = true", 'checksum_offload = "yes"')], "is not true/false"),
    ("soft-crc-rate-zero", SOFT, [('soft_crc_rate = "1GB/s"', 'soft_crc_rate = "0GB/s"')], "nic.soft_crc_rate"),
    ("soft-packet-time-in-ms", SOFT, [('soft_packet_time = "25us"', 'soft_packet_time = "5ms"')], "0s..1ms"),
    ("soft-wr-time-without-source", SOFT, [("soft_wr_time_source =", "soft_wr_tme_source =")], "unknown key"),
    ("soft-inline-time-beyond-a-second", SOFT, [('soft_inline_time = "8ms"', 'soft_inline_time = "2s"')], "0s..1s"),
    ("soft-inline-time-missing", SOFT, [('soft_inline_time = "8ms"\n', "")], "nic.soft_inline_time: missing field"),
    ("checksum-in-copy-not-bool", XEON, [("tcp_checksum_in_copy = false", 'tcp_checksum_in_copy = "no"')],
     "is not true/false"),
]
DERIVED_ROWS = [
    ("unknown-base", 'name = "mine"\nbase = "no-such-profile"\n', "base: unknown platform 'no-such-profile'"),
    ("base-without-name", 'base = "xeon-8470-cx7"\n', "a name of its own"),
    ("base-cycle", 'name = "mine"\nbase = "bad.toml"\n', "cycle"),
    ("override-without-source", 'name = "mine"\nbase = "xeon-8470-cx7"\n[cpu]\ncores = 8\n', "cpu.cores_source"),
    ("override-misspelled", 'name = "mine"\nbase = "xeon-8470-cx7"\n[cpu]\ncors = 8\ncors_source = "x"\n',
     "did you mean cores?"),
]
BYTES_ROWS = [
    ("not-utf8", b"name = \"x\xff\"\n", "not UTF-8 text (byte 0xff"),
    ("empty", b"", "empty"),
    ("comments-only", b"# nothing here\n\n", "empty"),
]


def _both(run_cli, f: Path, is_platform: bool, tmp_path: Path, fragment: str) -> None:
    store = tmp_path / "r.sqlite"
    run_cli("scenarios", "check", str(f)).one_line_error(2, fragment)
    plan = ("plan", "smbdirect-2x200g", "--platform", str(f)) if is_platform else ("plan", str(f))
    run_cli(*plan, "--store", str(store)).one_line_error(2, fragment)
    assert not store.exists()          # validation happens before anything is stored


@pytest.mark.parametrize("row", SCENARIO_ROWS + PLATFORM_ROWS, ids=lambda r: r[0])
def test_bad_file(run_cli, tmp_path, row):
    _, source, edits, *rest = row
    extra, fragment = (rest if len(rest) == 2 else ("", rest[0]))
    f = tmp_path / "bad.toml"
    f.write_text(_text(source, *edits) + extra)
    _both(run_cli, f, source.startswith("platform"), tmp_path, fragment)


@pytest.mark.parametrize("target, fragment", [("1e999GB/s", "not a finite rate"), ("1e30GB/s", "not a finite rate"),
                                              ("fast", "cannot read 'fast' as a rate")])
def test_plan_target_is_finite(run_cli, tmp_path, target, fragment):
    run_cli("plan", "smbdirect-2x200g", "--target", target, "--store", str(tmp_path / "r.sqlite")).one_line_error(2, fragment)
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("row", DERIVED_ROWS, ids=lambda r: r[0])
def test_bad_derived_profile(run_cli, tmp_path, row):
    _, text, fragment = row
    f = tmp_path / "bad.toml"
    f.write_text(text)
    _both(run_cli, f, True, tmp_path, fragment)


@pytest.mark.parametrize("row", BYTES_ROWS, ids=lambda r: r[0])
def test_unreadable_bytes(run_cli, tmp_path, row):
    _, data, fragment = row
    f = tmp_path / "bad.toml"
    f.write_bytes(data)
    _both(run_cli, f, False, tmp_path, fragment)
    run_cli("plan", "smbdirect-2x200g", "--platform", str(f)).one_line_error(2, fragment)


def test_a_directory_is_not_a_file(run_cli, tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    _both(run_cli, d, False, tmp_path, "is a directory")
    run_cli("plan", "smbdirect-2x200g", "--platform", str(d)).one_line_error(2, "is a directory")


def test_an_unreadable_file(run_cli, tmp_path):
    f = tmp_path / "locked.toml"
    f.write_text(_text(SMBD))
    f.chmod(0)
    if os.access(f, os.R_OK):
        # root reads any mode-000 file; a write-only sysctl is unreadable even for root
        f = Path("/proc/sys/vm/compact_memory")
        if not f.exists() or os.access(f, os.R_OK) and _readable(f):
            pytest.skip("no file this user cannot read (root, and no write-only sysctl)")
    _both(run_cli, f, False, tmp_path, "permission denied")


def _readable(f: Path) -> bool:
    try:
        f.read_bytes()
        return True
    except PermissionError:
        return False


def test_builtins_are_strict_and_check_ok(run_cli):
    for name in [*schema.builtin_scenarios(), *schema.builtin_platforms()]:
        r = run_cli("scenarios", "check", name)
        assert r.code == 0 and r.out.startswith("ok: "), (name, r.err)
