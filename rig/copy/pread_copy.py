"""What the cpu-copy server's copy costs (`copy.pread`): `pread()` of I/O-sized ranges of a tmpfs file
into a resident buffer, as rig.flows.smbd_serving.CpuCopy runs it, in the thread's CPU time; timed
alone, and beside a soft-RoCE chain (a `measure verbs` RDMA WRITE stream whose poster sleeps on
completion events, as a serving thread does), and with the copying thread posting the chain itself,
each pread's buffer RDMA-written after it (as the cpu-copy server runs: `posting_runs`). Beside a
chain the kernel runs its pending softirq at the copying thread's interrupt exits and counts it to
that thread: the difference is the chain work a kernel copy absorbs per second of its own
(rig.calibrate: nic.soft_copy_absorption, from the posting runs where there are any).

Each timing repeats the pread over the file's ranges until it lasts >= 50 ms of thread CPU, in a
forked child (unpinned, as the serving processes are); the file is of random bytes and read once
before the timings, so every range is in the page cache."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from typing import Iterator

from rig.copy.buffers import aligned_buffer

MIN_TIMING_S = 0.05
BATCH_BYTES = 4 << 20               # a thread-CPU clock read under TCG costs as much as a 16 KiB copy
FILE_BYTES = 64 << 20               # ranges cycle over this much page cache (the smbd file is larger than a few I/Os)
CHAIN_START_S = 120.0               # a measure verbs start-up in a TCG guest takes 5-15 s
CHAIN_STALL_S = 30.0                # no completion of the posting chain for this long: rxe stalled


def file_bytes(size_bytes: int) -> int:
    return max(FILE_BYTES, 8 * size_bytes)


def runs(path: str, size_bytes: int, repetitions: int) -> dict:
    """In the probe child: CPU seconds of pread calls of `size_bytes`, warm-up + `repetitions` timings."""
    fd = os.open(path, os.O_RDONLY)
    buf = aligned_buffer(size_bytes)
    view = memoryview(buf)
    ranges = os.fstat(fd).st_size // size_bytes
    try:
        for i in range(ranges):          # the page cache holds every range; the buffer is resident
            os.preadv(fd, [view], i * size_bytes)
        out, at = [], 0
        batch = max(1, BATCH_BYTES // size_bytes)        # calls between two clock reads
        for _ in range(repetitions):
            calls, c0, t0 = 0, time.thread_time(), time.perf_counter()
            while True:
                for _ in range(batch):
                    os.preadv(fd, [view], at * size_bytes)
                    at = (at + 1) % ranges
                calls += batch
                c1 = time.thread_time()
                if c1 - c0 >= MIN_TIMING_S:
                    break
            out.append({"cpu_s": c1 - c0, "wall_s": time.perf_counter() - t0, "calls": calls})
    finally:
        view.release()
        buf.close()
        os.close(fd)
    return {"runs": out}


def write_chain(server: str, client: str, size_bytes: int, depth: int) -> tuple:
    """The posting end of a soft-RoCE WRITE chain, in this process: (a, b, channel, slots, wrs), the
    players on the server's and the client's device (a posts, sleeping on its completion events),
    a's Channel, `depth` registered buffers of `size_bytes` on a and, for each, its RDMA WRITE into
    one buffer on b (cookie: the buffer's index). The caller closes a and b."""
    from rig.flows.channel import Channel
    from rig.flows.descriptor import BufferDescriptor
    from rig.launch.local import loopback
    from rig.rdma.player import EventPlayer, PlayerConfig

    cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=depth, rx_depth=1)
    a, b = loopback(cfg, device=server, peer_device=client, player_class=EventPlayer)
    try:
        ch = Channel(a, max_msg_bytes=0, recv_slots=0, send_slots=0, timeout_s=CHAIN_START_S)
        target = b.alloc(size_bytes)
        desc = BufferDescriptor(target.addr, target.rkey, size_bytes)
        slots = [a.alloc(size_bytes) for _ in range(depth)]
        wrs = [ch.bulk_wr("write", r.addr, r.lkey, desc, cookie=i) for i, r in enumerate(slots)]
    except BaseException:
        a.close()
        b.close()
        raise
    return a, b, ch, slots, wrs


def posting_runs(path: str, size_bytes: int, repetitions: int, server: str, client: str, depth: int) -> dict:
    """In the probe child: as runs(), but the copying thread posts the chain itself, as a cpu-copy
    serving thread does: each pread fills one of `depth` registered buffers, which the thread then
    RDMA WRITEs from the server's device to the client's; with all `depth` outstanding it reaps, and
    past 16 empty turns sleeps on the completion event (the flows' Channel and Waiter). Thread CPU
    inside the preads only."""
    from rig.flows.channel import Waiter

    a, b, ch, slots, wrs = write_chain(server, client, size_bytes, depth)
    fd = os.open(path, os.O_RDONLY)
    try:
        views = [memoryview(r.view()).cast("B") for r in slots]
        waiter = Waiter(a)
        ranges = os.fstat(fd).st_size // size_bytes
        for i in range(ranges):
            os.preadv(fd, [views[0]], i * size_bytes)
        free, events, out, at, wrs_done = list(range(depth)), [], [], 0, 0
        for _ in range(repetitions + 1):         # the first fills the chain: a warm-up, not kept
            cpu_ns, calls, t0 = 0, 0, time.perf_counter()
            while cpu_ns < MIN_TIMING_S * 1e9:
                stalled_at = time.monotonic() + CHAIN_STALL_S
                while not free:
                    ch.take(events)
                    if events:
                        free.extend(e.slot for e in events)
                        wrs_done += len(events)
                        events.clear()
                        waiter.busy()
                    elif time.monotonic() > stalled_at:
                        raise RuntimeError(f"no WRITE of the posting chain completed for {CHAIN_STALL_S:g} s "
                                           f"({depth} outstanding)")
                    else:
                        waiter.idle(lambda: bool(ch.take(events)), stalled_at - time.monotonic())
                slot = free.pop()
                c0 = time.thread_time_ns()
                os.preadv(fd, [views[slot]], at * size_bytes)
                cpu_ns += time.thread_time_ns() - c0
                ch.post(wrs[slot])
                calls += 1
                at = (at + 1) % ranges
            out.append({"cpu_s": cpu_ns * 1e-9, "wall_s": time.perf_counter() - t0, "calls": calls})
        ch.drain()
        for v in views:
            v.release()
        return {"runs": out[1:], "wrs_completed": wrs_done, "sleeps": waiter.sleeps}
    finally:
        os.close(fd)
        a.close()
        b.close()


def samples(raw_runs: list[dict], size_bytes: int) -> dict[str, list[float]]:
    return {"cpu_s_per_gb": [r["cpu_s"] / (r["calls"] * size_bytes / 1e9) for r in raw_runs],
            "cpu_seconds_per_call": [r["cpu_s"] / r["calls"] for r in raw_runs]}


@contextlib.contextmanager
def served_file(size_bytes: int) -> Iterator[str]:
    """A tmpfs (temp directory) file of random bytes, removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="rdmarig-pread-", suffix=".bin")
    try:
        total, step = file_bytes(size_bytes), 1 << 20
        for _ in range(total // step):
            os.write(fd, os.urandom(step))
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def chain_command(server: str, client: str, size_bytes: int, depth: int, seconds: float) -> list[str]:
    """The chain beside the copy: RDMA WRITEs of the I/O size from the server's device to the client's,
    2 QPs with `depth` WRs each in flight, the poster sleeping on completion events."""
    return [sys.executable, "-m", "rig.cli", "measure", "verbs", "--device", server, "--peer-device", client,
            "--op", "write", "--events", "--qps", "2", "--tx-depth", str(depth), "--cq-mod", "1",
            "--size", str(size_bytes), "--duration", f"{seconds:g}s", "--no-store"]


def sent_packets(device: str) -> int:
    """The device's packets sent so far (rxe's hw counter; -1 where it cannot be read)."""
    try:
        return int(open(f"/sys/class/infiniband/{device}/ports/1/hw_counters/sent_pkts").read())
    except (OSError, ValueError):
        return -1


CHAIN_MOVING_PACKETS = 1000         # the chain is running once its device sent this many packets


@contextlib.contextmanager
def chain(server: str, client: str, size_bytes: int, depth: int, seconds: float) -> Iterator[dict]:
    """Run the chain for the block: yields once its device moves packets (CHAIN_MOVING_PACKETS sent
    since it started); stopped (SIGTERM, then SIGKILL) at the end. RuntimeError if it never moves."""
    cmd = chain_command(server, client, size_bytes, depth, seconds)
    before = sent_packets(server)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + CHAIN_START_S
        while sent_packets(server) - before < CHAIN_MOVING_PACKETS:
            if proc.poll() is not None or time.monotonic() > deadline or before < 0:
                tail = (proc.stderr.read() if proc.poll() is not None else "").strip().splitlines()
                raise RuntimeError(f"the chain beside the copy did not start ({' '.join(cmd[3:])}): "
                                   f"{tail[-1] if tail else 'no packets sent on ' + server}")
            time.sleep(0.2)
        yield {"op": "write", "events": True, "qps": 2, "tx_depth": depth, "io_size_bytes": size_bytes}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        proc.stderr.close()
