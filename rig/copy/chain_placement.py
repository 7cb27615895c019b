"""Where two posters' soft-RoCE chains run (`nic.placement`): two processes, each with its own QP pair
from the server's device to the client's, each keeping `depth` RDMA WRITEs of the I/O size in flight
and sleeping on its completion events past its empty turns (the flows' Channel and Waiter), as the
two serving processes of a `measure smbd` point do. Timed over a window once both move: the share of
ksoftirqd's run time on the CPU that ran most of it (`ksoftirqd_top_share`, 0.5 even over two CPUs,
1 all on one), the least busy CPU's busy time per second and all CPUs' (rig.accounting.CpuWindow).

Why: a soft NIC's deferred chain runs in the ksoftirqd of the CPU its poster sent from, and a poster
woken by a completion is woken where that completion ran, so the chains of two posters can gather on
one CPU while the other idles. In `measure smbd` runs the CPUs kept busy followed 1/f within -10..+7 %
(docs/smbd.md). `measure verbs --events --qps 2` posts both QPs from one process, so its chains follow
one poster and cannot show this. Each repetition starts two new posters, as each `measure smbd` run
forks new serving processes: where the scheduler puts them is what varies.

Found (2026-12-02, guest): two posters alone spread their chains evenly (f 0.50 at 128 KiB-8 MiB)
while `measure smbd` runs of the same boot gathered (0.53-0.68 at 8 MiB): the gathering comes with
the client's wake-ups, so this part feeds no calibrated figure and runs only when asked for."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import time

from rig import accounting as acct
from rig.copy import child
from rig.copy.pread_copy import CHAIN_MOVING_PACKETS, CHAIN_START_S, sent_packets, write_chain

POSTERS = 2
WINDOW_S = 3.0
WAIT_S = 1.0                        # a poster's longest sleep on its completion channel before it looks again


def poster(server: str, client: str, size_bytes: int, depth: int, ready_fd: int, done, index: int) -> None:
    """In a poster process: RDMA WRITE `size_bytes` from `depth` registered buffers on the server's
    device into one buffer on the client's, forever, counting its completions in done[index]; one
    byte on `ready_fd` at its first completion."""
    child.detach_signals()
    from rig.flows.channel import Waiter

    a, _b, ch, _slots, wrs = write_chain(server, client, size_bytes, depth)    # _b, _slots: held while it posts
    waiter = Waiter(a)
    free, events, told = list(range(depth)), [], False
    while True:
        while not free:
            ch.take(events)
            if events:
                free.extend(e.slot for e in events)
                done[index] += len(events)
                events.clear()
                waiter.busy()
                if not told:
                    os.write(ready_fd, b"r")
                    told = True
            else:
                waiter.idle(lambda: bool(ch.take(events)), WAIT_S)
        ch.post(wrs[free.pop()])


def _await_ready(ready_fd: int, posters: list, deadline: float) -> None:
    got = 0
    while got < len(posters):
        if any(not p.is_alive() for p in posters):
            raise RuntimeError(f"a chain poster exited (code {[p.exitcode for p in posters]}) before its first completion")
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"the {len(posters)} chain posters did not all complete a WRITE within {CHAIN_START_S:g} s")
        if select.select([ready_fd], [], [], min(left, 1.0))[0]:
            got += len(os.read(ready_fd, 16))


def _stop(posters: list) -> None:
    for p in posters:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
    for p in posters:
        p.join(10)


def one_window(server: str, client: str, size_bytes: int, depth: int, seconds: float) -> dict:
    """Two new posters; once both completed a WRITE, the machine's CPUs over `seconds` and the
    WRITEs each poster completed in them."""
    ctx = multiprocessing.get_context("fork")
    ready_r, ready_w = os.pipe()
    done = ctx.Array("q", POSTERS, lock=False)        # each poster's completions, in shared memory
    posters = [ctx.Process(target=poster, args=(server, client, size_bytes, depth, ready_w, done, i), daemon=True)
               for i in range(POSTERS)]
    try:
        for p in posters:
            child.start(p)
        _await_ready(ready_r, posters, time.monotonic() + CHAIN_START_S)
        sent0, done0 = sent_packets(server), list(done)
        window = acct.CpuWindow(scope="given", busy=False).start()
        time.sleep(seconds)
        cpu = window.stop(acct.Rusage(0.0, 0.0))
        sent = sent_packets(server) - sent0 if sent0 >= 0 else -1
        wrs = [n - n0 for n, n0 in zip(done, done0)]
    finally:
        _stop(posters)
        os.close(ready_r)
        os.close(ready_w)
    return {"ksoftirqd_top_share": cpu.get("ksoftirqd_top_share"), "least_busy_cpu_per_s": cpu.get("least_busy_cpu_per_s"),
            "busy_cpu_per_s": cpu.get("busy_cpu_per_s"), "ksoftirqd_s": cpu.get("ksoftirqd_s"),
            "wall_s": cpu.get("wall_s"), "sent_packets": sent, "wrs_per_poster": wrs}


def runs(server: str, client: str, size_bytes: int, depth: int, repetitions: int, seconds: float = WINDOW_S) -> dict:
    """`repetitions` windows, each with two new posters; windows where a poster's chain stalled (it
    completed no WRITE in them: rxe 6.1 can stop a QP, docs/smbd.md; or fewer than
    CHAIN_MOVING_PACKETS went out) are counted, not kept: one chain alone is not two posters' placement."""
    kept, stalled = [], 0
    for _ in range(repetitions):
        w = one_window(server, client, size_bytes, depth, seconds)
        if (min(w["wrs_per_poster"]) == 0 or 0 <= w["sent_packets"] < CHAIN_MOVING_PACKETS
                or w["ksoftirqd_top_share"] is None):
            stalled += 1
            continue
        kept.append(w)
    if not kept:
        raise RuntimeError(f"every window's chains stalled or ran no ksoftirqd ({stalled} of {repetitions})")
    return {"runs": kept, "stalled": stalled}


def samples(raw_runs: list[dict], size_bytes: int) -> dict[str, list[float]]:
    out = {k: [float(r[k]) for r in raw_runs] for k in ("ksoftirqd_top_share", "least_busy_cpu_per_s",
                                                         "busy_cpu_per_s", "ksoftirqd_s", "wall_s")}
    # each poster's WRITEs per second, the slower over the faster: 1 when both chains moved alike
    out["gbytes_per_s"] = [sum(r["wrs_per_poster"]) * size_bytes / r["wall_s"] / 1e9 for r in raw_runs]
    out["slower_poster_ratio"] = [min(r["wrs_per_poster"]) / max(r["wrs_per_poster"]) for r in raw_runs]
    return out
