"""The SMB Direct protocol's per-I/O work as a part (`proto.smbd`): SMB2 READs of one packet, served and
asked by the flows' own serving and client loops, between two processes on two RDMA devices, as
`measure smbd` runs its ends.

The server end is rig.flows.smbd_serving.Serving (zero-copy, the file mapping registered once) and
its `run` loop; the client end is rig.flows.smbd_client.Client and its `run` loop, one connection:
what each I/O costs besides its data - the client builds an SMB2 READ request naming a registered
buffer, posts it, takes the response, checks the block and keeps its stamps; the server takes the
message (credits, repost, parse, reassembly), parses the request, RDMA WRITEs the range into the
named buffer, builds the response, grants credits and posts it, and reaps the completions. The
READs ask DATA_WR_BYTES, one packet: the data WR's per-I/O work (build, post, reap) is in the part,
its bytes are what `measure verbs` measures (the calibration takes the one-packet WR's chain out,
as it does the SENDs'). Both loops sleep on their completion channels after the same 16 empty
turns as in `measure smbd`, each end in a forked single-threaded process, so each end's CPU is its
rusage; the host's softirq run by ksoftirqd, counted apart, belongs to neither.

Until 2026-12-02 the part ran loops of its own, written beside the flows' (no I/O bookkeeping, no
stamps, no block check): at 4 KiB, one connection, 32 in flight, the flows' loops cost the server
0.6-1.0 ms and the client 0.7-1.0 ms more per I/O than those (guest, two rounds). Records of
this part say `loops: flows`.

`depth` requests are kept in flight (bounded by credits, as the flows are); with 1 every exchange
wakes both ends, with more the ends find work waiting and sleep less (the record counts sleeps and
loop turns).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import zlib
from typing import Any

from rig import accounting as acct
from rig.copy import child

DATA_WR_BYTES = 64                 # what each READ asks, and the server's data WR moves: one packet
IO_SIZE_BYTES = DATA_WR_BYTES      # the length the requests name
FILE_BYTES = 64 << 10              # the served file (tmpfs): 1024 blocks the client cycles over
DEFAULT_DEPTHS = (1, 8, 32)
TIMEOUT_S = 20.0


class _NoWindow:
    """The client loop's CPU window, left out: each end's CPU here is its rusage around the loop, and
    a CpuWindow's /proc scans (kernel threads, ksoftirqd, the kernel's config) would land inside it,
    where `measure smbd` keeps them outside its window."""

    def start(self) -> "_NoWindow":
        return self

    def stop(self) -> dict:
        return {}

    def note(self) -> dict:
        return {}


def _server(port: Any, depth: int, conn: Any, path: str) -> tuple[Any, Any]:
    from rig.flows import smbd
    from rig.flows.smbd_serving import ServeSpec, Serving
    from rig.launch.smbd_target import buffers_for
    from rig.rdma.player import EventPlayer, PlayerConfig

    spec = ServeSpec(op="read", copy="zero-copy", register="once", io_size=IO_SIZE_BYTES,
                     buffers=buffers_for(IO_SIZE_BYTES, depth),
                     limits=smbd.Limits(), timeout_s=TIMEOUT_S)
    player = EventPlayer(port, PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=spec.tx_depth(),
                                            rx_depth=spec.recv_slots()))
    conn.send({"endpoint": player.endpoint()})
    player.connect(conn.recv()["endpoint"])
    fd = os.open(path, os.O_RDONLY)
    try:
        return player, Serving(player, spec, fd, FILE_BYTES)
    finally:
        os.close(fd)                   # the serving connection keeps its mapping of the file


def _client(port: Any, depth: int, exchanges: int, conn: Any, crcs: list[int]) -> tuple[Any, Any]:
    from rig.flows import smbd
    from rig.flows.smbd_client import Client, ClientPlan, FileView
    from rig.rdma.player import EventPlayer, PlayerConfig

    plan = ClientPlan(op="read", io_size=IO_SIZE_BYTES, connections=1, credits=smbd.SEND_CREDIT_TARGET,
                      in_flight=depth, register="once", ios=exchanges, timeout_s=TIMEOUT_S)
    player = EventPlayer(port, PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=plan.send_slots() + 8,
                                            rx_depth=plan.recv_slots()))
    conn.send({"endpoint": player.endpoint()})
    player.connect(conn.recv()["endpoint"])
    return player, Client(player, plan, FileView(FILE_BYTES, len(crcs), crcs))


def _end(role: str, device: str | None, depth: int, exchanges: int, conn: Any, path: str, crcs: list[int]) -> None:
    """One end, in its own process: open the device, swap endpoints through the parent, build the
    flows' serving connection or client, negotiate as [MS-SMBD] says, wait for `go`, run the loop,
    report its CPU (the server serves until the parent's `stop`)."""
    child.detach_signals()
    player = None
    try:
        from rig.rdma.devices import discover

        port = discover(device)
        player, end = (_server(port, depth, conn, path) if role == "server"
                       else _client(port, depth, exchanges, conn, crcs))
        conn.send({"ready": True})
        conn.recv()                                            # both ends have their receives posted
        end.negotiate()
        conn.send({"negotiated": True})
        conn.recv()                                            # go
        r0, t0 = acct.Rusage.now(), time.perf_counter()
        if role == "server":
            def should_stop() -> bool:
                return conn.poll() and bool(conn.recv().get("stop"))
            outcome = end.run(should_stop, TIMEOUT_S + exchanges * 0.5, (conn.fileno(),))
            if outcome != "stopped":
                raise RuntimeError(f"the serving loop ended on its {outcome}")
            sleeps, turns = end.waiter.sleeps, end.turns
        else:
            raw = end.run(_NoWindow())
            if len(raw.done_ns) != exchanges:
                raise RuntimeError(f"{len(raw.done_ns)} of {exchanges} READs completed")
            sleeps, turns = raw.sleeps, raw.turns
        ru, wall = acct.Rusage.now() - r0, time.perf_counter() - t0
        conn.send({"result": {"user_s": ru.user_s, "system_s": ru.system_s, "wall_s": wall, "sleeps": sleeps,
                              "turns": turns, "device": player.port.device}})
        if role == "server":
            end.close()
    except BaseException as exc:
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if player is not None:
            player.close()
        conn.close()


def _served_file() -> tuple[str, list[int]]:
    """A tmpfs file of random bytes and the CRC-32 of each of its READ-sized blocks."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    data = os.urandom(FILE_BYTES)
    fd, path = tempfile.mkstemp(prefix=f"rdmarig-exchange-{os.getpid()}-", dir=directory)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path, [zlib.crc32(data[i:i + IO_SIZE_BYTES]) for i in range(0, FILE_BYTES, IO_SIZE_BYTES)]


def run(server_device: str | None, client_device: str | None, depth: int, exchanges: int) -> dict:
    """One timed run: a server and a client process, `exchanges` READs with `depth` in flight.
    Returns each end's user and system seconds, sleeps, loop turns, wall time, and the host's
    ksoftirqd time and other tenants' CPU over the run (until the client's last response; the
    server's window runs on until its stop, asleep)."""
    import multiprocessing as mp
    import multiprocessing.connection

    ctx = mp.get_context("fork")
    ends = {}
    path, crcs = _served_file()
    try:
        for role, device in (("server", server_device), ("client", client_device)):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=_end, args=(role, device, depth, exchanges, theirs, path, crcs), daemon=True)
            child.start(process)
            theirs.close()
            ends[role] = (process, mine)
        s, c = ends["server"][1], ends["client"][1]
        endpoints = {role: child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")["endpoint"]
                     for role, (_, conn) in ends.items()}
        s.send({"endpoint": endpoints["client"]})
        c.send({"endpoint": endpoints["server"]})
        for role, (_, conn) in ends.items():
            child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")          # ready
        for _, conn in ends.values():
            conn.send({"go": True})
        for role, (_, conn) in ends.items():
            child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")          # negotiated
        pids = acct.ksoftirqd_pids()
        before, t0 = acct.HostSnapshot.now(pids), time.perf_counter()
        for _, conn in ends.values():
            conn.send({"go": True})
        # the client's result ends the run; a server that fails first is the one named
        ready = mp.connection.wait([c, s], TIMEOUT_S + exchanges * 0.5)
        if s in ready and c not in ready:
            child.receive(s, 0, "exchange server")                      # its error
            raise RuntimeError("the exchange server ended before the client")
        results = {"client": child.receive(c, TIMEOUT_S, "exchange client")["result"]}
        wall = time.perf_counter() - t0
        delta = acct.host_delta(before, acct.HostSnapshot.now(pids))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):    # its answer tells why
            s.send({"stop": True})
        results["server"] = child.receive(s, TIMEOUT_S * 3, "exchange server")["result"]
        ours = [acct.Rusage(r["user_s"], r["system_s"]) for r in results.values()]
        return {**results, "ksoftirqd_s": sum(delta["ksoftirqd_s"].values()), "wall_s": wall,
                **acct.foreign_cpu_per_s(delta, ours, wall)}
    finally:
        for process, conn in ends.values():
            process.join(2)
            if process.is_alive():
                process.terminate()
                process.join(2)
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def samples(raw_runs: list[dict], exchanges: int) -> dict[str, list[float]]:
    """Per exchange, each end's user and system CPU seconds, sleeps and loop turns, ksoftirqd's
    seconds, and the rate; per second, other tenants' CPU."""
    out: dict[str, list[float]] = {}
    for role in ("server", "client"):
        for part in ("user", "system"):
            out[f"{role}_{part}_cpu_seconds_per_exchange"] = [r[role][f"{part}_s"] / exchanges for r in raw_runs]
        out[f"{role}_cpu_seconds_per_exchange"] = [(r[role]["user_s"] + r[role]["system_s"]) / exchanges
                                                   for r in raw_runs]
        out[f"{role}_sleeps_per_exchange"] = [r[role]["sleeps"] / exchanges for r in raw_runs]
        out[f"{role}_turns_per_exchange"] = [r[role]["turns"] / exchanges for r in raw_runs]
        out[f"{role}_busy_ratio"] = [(r[role]["user_s"] + r[role]["system_s"]) / r[role]["wall_s"] for r in raw_runs]
    out["ksoftirqd_cpu_seconds_per_exchange"] = [r["ksoftirqd_s"] / exchanges for r in raw_runs]
    out["both_ends_cpu_seconds_per_exchange"] = [
        (r["server"]["user_s"] + r["server"]["system_s"] + r["client"]["user_s"] + r["client"]["system_s"]
         + r["ksoftirqd_s"]) / exchanges for r in raw_runs]
    out["exchanges_per_s"] = [exchanges / r["wall_s"] for r in raw_runs]
    out["foreign_cpu_per_s"] = [r["foreign_cpu_per_s"] for r in raw_runs]
    return out
