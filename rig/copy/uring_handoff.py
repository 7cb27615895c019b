"""What handing one file READ to an io-wq worker and back costs (`copy.handoff`): the async-workers
server's punt (rig/flows/smbd_serving.AsyncWorkers), as a part.

io_uring READs of HANDOFF_READ_BYTES from a tmpfs file (page-cache hits), `depth` in flight, each
with IOSQE_ASYNC and its own io_uring_enter, as the server submits them (the io-wq workers capped as
the server caps them), then reaped from the CQ ring's memory; against pread() of the same bytes,
what the cpu-copy server calls. Per READ, the process's CPU (CLOCK_PROCESS_CPUTIME_ID: the
submitter and its io-wq workers, which are threads of the process) less the submitter's wait for
completions (its thread CPU clock from the end of its last reap to the poll that finds the next,
the polling loop's own turns included). The model charges both
paths one call per I/O (cpu.syscall_time) and the READ's bytes; the difference per READ is what the
hand-off adds: building the SQE, queueing the work, waking a worker, the worker's run around the
READ, the completion it posts, reaping it. (An io_uring READ without IOSQE_ASYNC is no baseline:
tmpfs on 6.1 takes no IOCB_NOWAIT reads, so io_uring punts those to io-wq as well.)

Runs in a forked child left unpinned: the workers run on whatever CPU the scheduler gives them, as the
server's do."""

from __future__ import annotations

import os
import tempfile
import time

HANDOFF_READ_BYTES = 64
FILE_BYTES = 64 << 10
MIN_TIMING_S = 0.5        # process CPU per timing: well above the clocks' resolution
VARIANTS = ("async", "pread")


def _async(ring, fd: int, base: int, depth: int) -> dict:
    """io_uring READ batches of `depth` (IOSQE_ASYNC) until the process has used MIN_TIMING_S of CPU."""
    reads, waited = 0, 0.0
    p0 = time.process_time()
    while True:
        for i in range(depth):
            off = ((reads + i) * HANDOFF_READ_BYTES) % FILE_BYTES
            ring.prep_rw(False, fd, base + i * HANDOFF_READ_BYTES, HANDOFF_READ_BYTES, off, i)
            ring.enter(0)
        got, w0 = 0, time.thread_time()
        while got < depth:
            t = time.thread_time()
            done = ring.completions()
            if not done:
                continue
            waited += t - w0          # every turn of the loop before this poll found nothing
            for _tag, res, _flags in done:
                if res != HANDOFF_READ_BYTES:
                    raise RuntimeError(f"io_uring READ returned {res}, not {HANDOFF_READ_BYTES}")
            got += len(done)
            w0 = time.thread_time()
        reads += depth
        p1 = time.process_time()
        if p1 - p0 >= MIN_TIMING_S:
            return {"process_s": p1 - p0, "waited_s": waited, "reads": reads}


def _pread(fd: int) -> dict:
    """pread() of the same READs until the process has used MIN_TIMING_S of CPU."""
    reads = 0
    p0 = time.process_time()
    while True:
        for _ in range(64):
            if len(os.pread(fd, HANDOFF_READ_BYTES, (reads * HANDOFF_READ_BYTES) % FILE_BYTES)) != HANDOFF_READ_BYTES:
                raise RuntimeError("pread returned a short read")
            reads += 1
        p1 = time.process_time()
        if p1 - p0 >= MIN_TIMING_S:
            return {"process_s": p1 - p0, "waited_s": 0.0, "reads": reads}


def runs(depth: int, workers: int, repetitions: int) -> dict:
    """In the probe child: per variant, a warm-up and `repetitions` timings (_async, _pread)."""
    from rig.copy.buffers import address_of, aligned_buffer
    from rig.copy.uring import Uring

    directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=f"rdmarig-handoff-{os.getpid()}-", dir=directory)
    try:
        os.write(fd, os.urandom(FILE_BYTES))
        buf = aligned_buffer(depth * HANDOFF_READ_BYTES)
        out: dict[str, list[dict]] = {}
        with Uring(entries=1 << max(1, depth - 1).bit_length()) as ring:
            ring.set_iowq_max_workers(workers, 0)
            for variant in VARIANTS:
                timings = [_async(ring, fd, address_of(buf), depth) if variant == "async" else _pread(fd)
                           for _ in range(repetitions + 1)]
                out[variant] = timings[1:]
        buf.close()
        return out
    finally:
        os.close(fd)
        os.unlink(path)


def samples(raw: dict) -> dict[str, list[float]]:
    """Per repetition: each variant's CPU per READ (less the submitter's wait for completions) and
    their difference, the hand-off, in seconds; the async variant's wait per READ apart."""
    per_read = {v: [(t["process_s"] - t["waited_s"]) / t["reads"] for t in raw[v]] for v in VARIANTS}
    return {"handoff_cpu_seconds_per_read": [a - p for a, p in zip(per_read["async"], per_read["pread"])],
            "async_cpu_seconds_per_read": per_read["async"],
            "pread_cpu_seconds_per_read": per_read["pread"],
            "async_waited_seconds_per_read": [t["waited_s"] / t["reads"] for t in raw["async"]]}
