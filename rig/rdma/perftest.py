"""Run perftest's ib_write_bw / ib_read_bw / ib_send_bw with the parameters of an rdmarig run:
the one perftest runner (`measure verbs --vs-perftest`, the benchmark, `guest check`'s probe).

Both perftest processes (server and client) run on this host, like rdmarig's loopback players.
Their CPU is counted by rig.accounting.CpuWindow like rdmarig's own: both children's rusage
(wait4), the softirq of this host's CPUs, the part served inside the (busy-polling) children taken
out of their system time. Standard library only: `guest check` runs it under Debian's python3.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from typing import Any

from rig.accounting import CpuWindow, Rusage, total_s
from scenarios.errors import InputError

TOOLS = {"write": "ib_write_bw", "read": "ib_read_bw", "send": "ib_send_bw"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """True when some socket LISTENs on TCP `port` (read from /proc, without connecting to it:
    perftest's server accepts exactly one connection)."""
    want = f":{port:04X}"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except (OSError, StopIteration):
            continue
    return False


def check_events(op: str, fix: str = "use --op read or send with --events") -> None:
    """perftest's -e exists for READ and SEND only."""
    if op == "write":
        raise InputError("ib_write_bw has no completion events (perftest: \"Events feature not available on "
                         "WRITE verb\")", fix)


def command(op: str, size: int, *, device: str, ib_port: int, gid_index: int, num_qps: int, tx_depth: int,
            cq_mod: int, post_list: int, inline_bytes: int, iterations: int, duration_s: float,
            tcp_port: int, rx_depth: int | None = None, events: bool = False) -> list[str]:
    tool = TOOLS[op]
    cmd = [tool, "-d", device, "-i", str(ib_port), "-x", str(gid_index), "-s", str(size), "-q", str(num_qps),
           "-t", str(tx_depth), "-Q", str(cq_mod), "-p", str(tcp_port), "-F", "--report_gbits"]
    if post_list > 1:
        cmd += ["-l", str(post_list)]
    if op != "read":
        cmd += ["-I", str(inline_bytes)]
    if op == "send" and rx_depth:
        cmd += ["-r", str(rx_depth)]
    if events:
        check_events(op)
        cmd += ["-e"]
    cmd += ["-D", f"{max(1, round(duration_s))}"] if duration_s else ["-n", str(max(5, iterations))]
    return cmd


def parse_report(text: str) -> dict[str, float]:
    """The result line under perftest's '#bytes #iterations BW peak[Gb/sec] ...' header."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("#bytes") and "BW average" in line:
            for row in lines[i + 1:]:
                parts = row.split()
                if len(parts) >= 5 and parts[0].isdigit():
                    return {"bytes_per_msg": float(parts[0]), "iterations": float(parts[1]),
                            "bw_peak_gbits_per_s": float(parts[2]), "bw_average_gbits_per_s": float(parts[3]),
                            "msg_rate_mpps": float(parts[4])}
    raise ValueError("no result line in the perftest output")


def _wait(proc: subprocess.Popen, timeout_s: float) -> tuple[int, Any]:
    if proc.returncode is not None:     # reaped already (it exited before it listened): no rusage left
        return proc.returncode, resource.struct_rusage((0.0,) * 16)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return -9, ru
        time.sleep(0.02)


def run(op: str, size: int, *, device: str, ib_port: int, gid_index: int, peer_device: str | None = None,
        peer_gid_index: int | None = None, num_qps: int = 1, tx_depth: int = 128, cq_mod: int = 100,
        post_list: int = 1, inline_bytes: int = 0, iterations: int = 1000, duration_s: float = 0.0,
        rx_depth: int | None = None, timeout_s: float = 300.0, events: bool = False) -> dict[str, Any]:
    """Run server + client on this host; return the client's report and both processes' CPU."""
    tool = TOOLS[op]
    if shutil.which(tool) is None:
        raise InputError(f"{tool} (perftest) is not installed", "apt-get install perftest")
    tcp_port = _free_port()
    common = dict(ib_port=ib_port, num_qps=num_qps, tx_depth=tx_depth, cq_mod=cq_mod, post_list=post_list,
                  inline_bytes=inline_bytes, iterations=iterations, duration_s=duration_s, tcp_port=tcp_port,
                  rx_depth=rx_depth, events=events)
    # the target of a WRITE or READ posts nothing (perftest's server sits out the run): -e is the client's
    srv_cmd = command(op, size, device=peer_device or device,
                      gid_index=gid_index if peer_gid_index is None else peer_gid_index,
                      **{**common, "events": events and op == "send"})
    cli_cmd = command(op, size, device=device, gid_index=gid_index, **common) + ["127.0.0.1"]
    window = CpuWindow(scope="given", busy=True).start()
    srv = subprocess.Popen(srv_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30.0       # the server must listen before the client connects
    while not _listening(tcp_port) and srv.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cli = subprocess.Popen(cli_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    crc, cru = _wait(cli, timeout_s)
    src, sru = _wait(srv, 15.0)
    cpu = window.stop(Rusage(cru.ru_utime + sru.ru_utime, cru.ru_stime + sru.ru_stime))
    cli_out = cli.stdout.read() if cli.stdout else ""
    srv_out = srv.stdout.read() if srv.stdout else ""
    if crc != 0 or src != 0:
        tail = (cli_out.strip().splitlines() or ["(no output)"])[-1]
        srv_tail = (srv_out.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{tool} failed (client rc={crc}, server rc={src}): {tail} | server: {srv_tail}")
    report = parse_report(cli_out)
    if report["bw_average_gbits_per_s"] <= 0:
        raise RuntimeError(f"{tool} reported zero bandwidth (its result line: "
                           f"{report}); soft-RoCE under emulation sometimes does; run again")
    nbytes = report["bytes_per_msg"] * report["iterations"] * num_qps
    gb = nbytes / 1e9
    report.update({f"cpu_{k[:-2]}_s_per_gb": (cpu[k] or 0.0) / gb
                   for k in ("user_s", "system_s", "softirq_s", "rxe_kworker_s")})
    report["cpu_total_s_per_gb"] = total_s(cpu) / gb
    report.update({f"cpu_{k}": cpu[k] for k in ("system_raw_s", "softirq_in_process_s", "ksoftirqd_s")})
    report["cpu_accounting"] = window.note()
    report["bytes"] = nbytes
    report["command_client"] = " ".join(cli_cmd)
    report["command_server"] = " ".join(srv_cmd)
    return report
