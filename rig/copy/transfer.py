"""One measured transfer: a sender process pushes the source into a TCP connection by one path, a
receiver process drains it into a preallocated page-aligned buffer (recv_into).

Both are forked children, pinned to different CPUs where there are two, so /proc/stat per CPU tells
each side's softirq time. The parent only waits; it reads /proc/stat and ksoftirqd before the
"go" and after both sides are done. The hot loops take raw timestamps and rusage; every division
happens in `cpu_split` afterwards.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import time
import zlib

from rig import accounting as acct
from rig.copy import child, netns, senders
from rig.copy.buffers import aligned_buffer, page_offset
from rig.copy.sources import Source

LOOPBACK_ADDR = "127.0.0.1"


class TransferError(RuntimeError):
    pass


def _take_place(ns: str | None, cpu: int | None) -> None:
    """A probe child moves into its side's namespace and onto its CPU."""
    if ns:
        netns.enter(ns)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _receiver(conn, addr: str, chunk: int, verify: bool, ns: str | None, cpu: int | None) -> None:
    child.detach_signals()
    try:
        _take_place(ns, cpu)
        buf = aligned_buffer(max(chunk, 64 << 10))
        view = memoryview(buf)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((addr, 0))
            listener.listen(1)
            conn.send({"port": listener.getsockname()[1]})
            listener.settimeout(30)
            sock, _ = listener.accept()
        sock.settimeout(None)
        received, crc, calls, first = 0, 0, 0, None
        ru0 = acct.Rusage.now()
        while True:
            n = sock.recv_into(view)
            if first is None:
                first = time.perf_counter()
            if n == 0:
                break
            received += n
            calls += 1
            if verify:
                crc = zlib.crc32(view[:n], crc)
        last = time.perf_counter()
        ru = acct.Rusage.now() - ru0
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.close()
        conn.send({"bytes": received, "crc32": crc if verify else None, "calls": calls,
                   "first": first, "last": last, "rusage": ru, "rcvbuf_bytes": rcvbuf,
                   "buffer_page_offset_bytes": page_offset(buf)})
    except BaseException as exc:
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _sender(conn, addr: str, port: int, path: str, source: Source, chunk: int, duration_s,
            total_bytes, ns: str | None, cpu: int | None) -> None:
    child.detach_signals()
    try:
        _take_place(ns, cpu)
        sock = socket.create_connection((addr, port), timeout=30)
        sock.settimeout(None)
        conn.send({"connected": True})
        conn.recv()  # go
        t0 = time.perf_counter()
        budget = senders.Budget(total_bytes=total_bytes,
                                deadline=None if total_bytes is not None else time.monotonic() + duration_s)
        ru0 = acct.Rusage.now()
        info = senders.send(path, sock, source, chunk, budget)
        senders.end_of_stream(sock)  # zero-copy paths did already, before waiting for completions
        ru = acct.Rusage.now() - ru0
        t1 = time.perf_counter()
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        sock.close()
        conn.send({"bytes": budget.sent, "start": t0, "end": t1, "rusage": ru, "info": info,
                   "sndbuf_bytes": sndbuf})
    except senders.PathRefused as exc:
        child.report(conn, {"refused": str(exc)})
    except BaseException as exc:
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _recv(conn, timeout_s: float, who: str) -> dict:
    return child.receive(conn, timeout_s, who, TransferError)


def run(path: str, source: Source, chunk: int, via: str = "loopback", duration_s: float = 1.0,
        total_bytes: int | None = None, verify: bool = False, veth: netns.VethPair | None = None,
        pin: bool = True, ksoftirqd: dict[int, int] | None = None) -> dict:
    """One transfer; returns raw figures (see `cpu_split`) or {'refused': reason}."""
    reason = senders.refusal(path, source)
    if reason:
        return {"refused": reason}
    if via == "veth" and veth is None:
        raise ValueError("via='veth' needs a VethPair")
    cpus = sorted(os.sched_getaffinity(0))
    tx_cpu, rx_cpu = (cpus[0], cpus[1]) if pin and len(cpus) >= 2 else (None, None)
    tx_ns, rx_ns = (veth.tx_ns, veth.rx_ns) if via == "veth" else (None, None)
    rx_addr = netns.RX_ADDR if via == "veth" else LOOPBACK_ADDR
    pids = ksoftirqd if ksoftirqd is not None else acct.ksoftirqd_pids()
    timeout_s = 30 + (duration_s or 0) * 3
    ctx = mp.get_context("fork")
    rx_parent, rx_child = ctx.Pipe()
    tx_parent, tx_child = ctx.Pipe()
    rx = ctx.Process(target=_receiver, args=(rx_child, rx_addr, chunk, verify, rx_ns, rx_cpu), daemon=True)
    tx = None
    try:
        child.start(rx)
        port = _recv(rx_parent, 30, "receiver")["port"]
        tx = ctx.Process(target=_sender, daemon=True,
                         args=(tx_child, rx_addr, port, path, source, chunk, duration_s, total_bytes,
                               tx_ns, tx_cpu))
        child.start(tx)
        first = _recv(tx_parent, 30, "sender")
        if "refused" in first:
            return first
        before = acct.HostSnapshot.now(pids)
        wall0 = time.perf_counter()
        tx_parent.send("go")
        sent = _recv(tx_parent, timeout_s, "sender")
        if "refused" in sent:
            return sent
        got = _recv(rx_parent, timeout_s, "receiver")
        wall = time.perf_counter() - wall0
        after = acct.HostSnapshot.now(pids)
    finally:
        for p in (tx, rx):
            if p is not None:
                if p.is_alive():
                    p.join(1)
                if p.is_alive():
                    p.terminate()
                    p.join(2)
        for c in (rx_parent, rx_child, tx_parent, tx_child):
            c.close()
    return {"sent": sent, "received": got, "host": acct.host_delta(before, after), "wall_s": wall,
            "tx_cpu": tx_cpu, "rx_cpu": rx_cpu, "softirq_in_task_time": acct.softirq_in_task_time()}


def cpu_split(raw: dict) -> dict:
    """Throughput and CPU seconds per GB for each side, split into user, system and softirq."""
    sent, got = raw["sent"], raw["received"]
    n_bytes = got["bytes"]
    # the sender's start is the transfer's start; the receiver's last byte its end (the parent
    # forked both, so their perf_counter clocks agree)
    seconds = got["last"] - sent["start"]
    gb = n_bytes / 1e9
    overlap = raw["softirq_in_task_time"]
    tx = acct.side_split(sent["rusage"], raw["tx_cpu"], raw["host"], overlap)
    rx = acct.side_split(got["rusage"], raw["rx_cpu"], raw["host"], overlap)
    out = {"bytes": n_bytes, "bytes_sent": sent["bytes"], "seconds": seconds,
           "gbytes_per_s": gb / seconds if seconds > 0 else float("nan")}
    total = 0.0
    for side, split in (("tx", tx), ("rx", rx)):
        for key in ("user_s", "system_s", "softirq_s"):
            value = split[key]
            out[f"{side}_{key[:-2]}_cpu_s_per_gb"] = value / gb if value is not None and gb else None
            total += value or 0.0
        out[f"{side}_ksoftirqd_s"] = split["ksoftirqd_s"]
    out["total_cpu_s_per_gb"] = total / gb if gb else None
    out.update(acct.foreign_cpu_per_s(raw["host"], [sent["rusage"], got["rusage"]], raw["wall_s"]))
    out["calls_sent"] = sent["info"].get("calls")
    out["calls_received"] = got["calls"]
    out["calls_sent_per_gb"] = out["calls_sent"] / (sent["bytes"] / 1e9) if sent["bytes"] else None
    out["calls_received_per_gb"] = got["calls"] / gb if gb else None
    for key in ("kernel_copied", "zerocopy_sends", "zerocopy_completed", "zerocopy_copied",
                "zerocopy_notifications", "pipe_bytes"):
        if key in sent["info"]:
            out[key] = sent["info"][key]
    out["sndbuf_bytes"], out["rcvbuf_bytes"] = sent["sndbuf_bytes"], got["rcvbuf_bytes"]
    return out
