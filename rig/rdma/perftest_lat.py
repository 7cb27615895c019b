"""perftest's latency tools (ib_write_lat, ib_send_lat, ib_read_lat) with the parameters of an
rdmarig latency run: server and client on this host, as rig.rdma.perftest runs the bandwidth
tools (its helpers find a port, wait for the server to listen and reap both children).

ib_write_lat / ib_send_lat report half of each ping-pong round trip, ib_read_lat post to
completion: the same figures as rdmarig's `latency_method` half_round_trip / post_to_completion.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

from rig.rdma.perftest import _free_port, _listening, _wait
from scenarios.errors import InputError

LAT_TOOLS = {"write": "ib_write_lat", "read": "ib_read_lat", "send": "ib_send_lat"}
US = 1e-6
# the result row's columns after #bytes and #iterations, in perftest's order, as stored keys
COLUMNS = ("latency_min_s", "latency_max_s", "latency_typical_s", "latency_mean_s", "latency_stdev_s",
           "latency_p99_s", "latency_p999_s")


def command(op: str, size: int, *, device: str, ib_port: int, gid_index: int, iterations: int, inline_bytes: int,
            tcp_port: int) -> list[str]:
    cmd = [LAT_TOOLS[op], "-d", device, "-i", str(ib_port), "-x", str(gid_index), "-s", str(size),
           "-n", str(max(5, iterations)), "-p", str(tcp_port), "-F"]
    if op != "read":
        cmd += ["-I", str(inline_bytes)]
    return cmd


def parse_report(text: str) -> dict[str, float]:
    """The row under '#bytes #iterations t_min[usec] ...', in seconds."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("#bytes") and "t_min" in line:
            for row in lines[i + 1:]:
                parts = row.split()
                if len(parts) >= 2 + len(COLUMNS) and parts[0].isdigit():
                    out = {"bytes_per_msg": float(parts[0]), "iterations": float(parts[1])}
                    out.update({k: float(v) * US for k, v in zip(COLUMNS, parts[2:])})
                    return out
    raise ValueError("no latency result line in the perftest output")


def run(op: str, size: int, *, device: str, ib_port: int, gid_index: int, peer_device: str | None = None,
        peer_gid_index: int | None = None, iterations: int = 1000, inline_bytes: int = 0,
        timeout_s: float = 300.0) -> dict[str, Any]:
    """Server (on peer_device) and client on this host; the client's report in seconds."""
    tool = LAT_TOOLS[op]
    if shutil.which(tool) is None:
        raise InputError(f"{tool} (perftest) is not installed", "apt-get install perftest")
    tcp_port = _free_port()
    common = dict(ib_port=ib_port, iterations=iterations, inline_bytes=inline_bytes, tcp_port=tcp_port)
    srv_cmd = command(op, size, device=peer_device or device,
                      gid_index=gid_index if peer_gid_index is None else peer_gid_index, **common)
    cli_cmd = command(op, size, device=device, gid_index=gid_index, **common) + ["127.0.0.1"]
    srv = subprocess.Popen(srv_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30.0
    while not _listening(tcp_port) and srv.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cli = subprocess.Popen(cli_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    crc, _ = _wait(cli, timeout_s)
    src, _ = _wait(srv, 15.0)
    cli_out = cli.stdout.read() if cli.stdout else ""
    if crc != 0 or src != 0:
        tail = (cli_out.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{tool} failed (client rc={crc}, server rc={src}): {tail}")
    report = parse_report(cli_out)
    report["command_client"] = " ".join(cli_cmd)
    report["command_server"] = " ".join(srv_cmd)
    return report
