"""The parts of SMB Direct over soft-RoCE that `measure verbs` and the copy probes do not measure,
each stored as its own record kind (never an smbd.* record), for `rdmarig calibrate host --place
guest`:

    copy.mrreg    MR registration + deregistration per size (rig/copy/mr_register.py)
    proto.smbd    one-packet SMB2 READs through the flows' serving and client loops, per end
                  (rig/copy/smbd_exchange.py), at several requests in flight
    copy.crc32    the client's integrity check per byte (rig/copy/crc_check.py)
    copy.pread    the cpu-copy server's pread per byte, alone, beside a soft-RoCE chain of the I/O
                  size at the whole's I/Os in flight, and posting that chain itself (rig/copy/pread_copy.py)
    copy.handoff  the async-workers server's hand-off of a READ to an io-wq worker and back, against
                  pread, at several READs in flight (rig/copy/uring_handoff.py)
    nic.placement where two posters' soft-RoCE chains run: the share of ksoftirqd's time on the busiest
                  CPU and the CPUs kept busy, per I/O size at measure smbd's in-flight I/Os per
                  connection, two new posters each window (rig/copy/chain_placement.py; only with
                  --probe placement: no calibrated figure takes it)

    python -m rig.copy.rdma_parts [--probe mrreg,exchange,crc32,pread,handoff,placement] [--sizes 64KiB..8MiB]
                                  [--depths 1,8,32] [--exchanges 1000] [--repetitions 5]
                                  [--device rxe1 --peer-device rxe0] [--store PATH]

Inside the soft-RoCE guest: `rdmarig guest run -- python -m rig.copy.rdma_parts`. Bad input is
one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator

from results.store import Store
from rig import accounting as acct
from rig import records
from rig.copy import chain_placement, child, crc_check, mr_register, pread_copy, smbd_exchange, uring_handoff
from rig.copy.outcome import Outcome, finish, summarize, watched
from rig.guest import guest_stat
from scenarios.errors import InputError
from scenarios.units import parse_size_list

PROBES = ("mrreg", "exchange", "crc32", "pread", "handoff", "placement")
# what runs without --probe: the parts calibrate takes (placement feeds no figure: docs/smbd.md)
DEFAULT_PROBES = ("mrreg", "exchange", "crc32", "pread", "handoff")
MAX_SIZE_BYTES = 1 << 30
DEPTHS = (1, 255)
EXCHANGES = (10, 1_000_000)
REPETITIONS = (1, 1000)


def message_bytes() -> tuple[int, int]:
    """(request, response) bytes on the wire of one exchange: the data transfer header and the SMB2 READ
    request / response the probe sends, packed by the protocol code itself."""
    from rig.flows import smbd
    from rig.flows.descriptor import BufferDescriptor

    req = smbd.read_request(1, 0, BufferDescriptor(0, 0, smbd_exchange.IO_SIZE_BYTES))
    resp = smbd.IoResponse(req.header.response(), req.length)
    return smbd.DATA_OFFSET + len(req.pack()), smbd.DATA_OFFSET + len(resp.pack())


def _first_cpu() -> int:
    import os
    return min(os.sched_getaffinity(0))


def _call(fn, args: tuple, what: str, pids: dict, pinned: bool = True) -> tuple[dict | None, dict, str | None]:
    try:
        result, noise = watched(lambda: child.call(fn, args, cpu=_first_cpu() if pinned else None, what=what), pids)
    except RuntimeError as exc:
        return None, {}, str(exc)
    return result, noise, None


def mrreg_sweep(device: str | None, sizes: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    pids = acct.ksoftirqd_pids()
    for source in mr_register.SOURCES:
        for size in sizes:
            what = f"mrreg {source} {size} B"
            result, noise, reason = _call(mr_register.runs, (device, source, size, repetitions), "mrreg probe", pids)
            if reason:
                yield Outcome(what, skipped=reason)
                continue
            params = {"io_size_bytes": size, "source": source, "pages": size // mr_register.PAGE_BYTES,
                      "access": result["access"], "device": result["device"], "repetitions": repetitions,
                      "registration": "ibv_reg_mr of the populated region, then ibv_dereg_mr (pyverbs MR, "
                                      "MR.close)" + (": a tmpfs file mapped MAP_PRIVATE + PROT_READ" if source == "file"
                                                     else ": an anonymous page-aligned buffer")}
            smp = mr_register.samples(result["runs"], size)
            summary = finish(summarize(smp, "cpu_seconds_per_registration", what), noise)
            rec = records.store_record(records.measured_record("copy.mrreg", params, smp, summary,
                                                               {"cpu": _first_cpu()}), store)
            yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_cpu_seconds_per_registration")})


def exchange_sweep(server_device: str | None, client_device: str | None, depths: list[int], exchanges: int,
                   repetitions: int, store: Store | None) -> Iterator[Outcome]:
    import numpy as np

    request_bytes, response_bytes = message_bytes()
    for depth in depths:
        what = f"exchange, {depth} in flight"
        try:
            raw = [smbd_exchange.run(server_device, client_device, depth, exchanges) for _ in range(repetitions)]
        except RuntimeError as exc:
            yield Outcome(what, skipped=str(exc))
            continue
        params = {"io_size_bytes": smbd_exchange.IO_SIZE_BYTES, "requests_in_flight": depth,
                  "exchanges": exchanges, "repetitions": repetitions, "request_bytes": request_bytes,
                  "response_bytes": response_bytes, "bulk_bytes": smbd_exchange.DATA_WR_BYTES,
                  "data_wrs": 1, "loops": "flows",
                  "devices": {"server": raw[0]["server"]["device"], "client": raw[0]["client"]["device"]},
                  "exchange": f"SMB2 READ of {smbd_exchange.DATA_WR_BYTES} B through the flows' serving and client loops "
                              f"(rig.flows.smbd_serving.Serving, rig.flows.smbd_client.Client, one connection): the "
                              f"request (SMB Direct data transfer message, {request_bytes} B) SENT client -> server, "
                              f"an RDMA WRITE of the {smbd_exchange.DATA_WR_BYTES} B from the file's mapping into the "
                              f"named buffer (one packet: the READ's data WR), then the response ({response_bytes} B) "
                              f"SENT back, the client checking the block"}
        smp = smbd_exchange.samples(raw, exchanges)
        noise = {"foreign_cpu_per_s": float(np.median(smp["foreign_cpu_per_s"]))}
        summary = finish(summarize(smp, "server_cpu_seconds_per_exchange", what), noise)
        rec = records.store_record(records.measured_record(
            "proto.smbd", params, smp, summary,
            {"cpu_accounting": "each end: its process's rusage (user, system: the softirq served inside it "
                               "included); ksoftirqd apart; both ends in one kernel"}), store)
        yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_server_cpu_seconds_per_exchange")})


def crc32_sweep(sizes: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    pids = acct.ksoftirqd_pids()
    for size in sizes:
        what = f"crc32 {size} B"
        result, noise, reason = _call(crc_check.runs, (size, repetitions), "crc32 probe", pids)
        if reason:
            yield Outcome(what, skipped=reason)
            continue
        params = {"io_size_bytes": size, "repetitions": repetitions,
                  "check": "zlib.crc32 over a page-aligned buffer (what the SMB Direct client runs over every "
                           "READ response's bytes)"}
        smp = crc_check.samples(result["runs"], size)
        summary = finish(summarize(smp, "cpu_s_per_gb", what), noise)
        rec = records.store_record(records.measured_record("copy.crc32", params, smp, summary,
                                                           {"cpu": _first_cpu()}), store)
        yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_cpu_s_per_gb")})


def handoff_sweep(depths: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    from rig.flows.smbd_serving import DEFAULT_ASYNC_WORKERS     # measure smbd's, which the part mirrors

    pids = acct.ksoftirqd_pids()
    for depth in depths:
        what = f"handoff, {depth} in flight"
        result, noise, reason = _call(uring_handoff.runs, (depth, DEFAULT_ASYNC_WORKERS, repetitions),
                                      "handoff probe", pids, pinned=False)
        if reason:
            yield Outcome(what, skipped=reason)
            continue
        params = {"reads_in_flight": depth, "read_bytes": uring_handoff.HANDOFF_READ_BYTES,
                  "iowq_workers_max": DEFAULT_ASYNC_WORKERS, "repetitions": repetitions,
                  "handoff": "io_uring READ with IOSQE_ASYNC, one io_uring_enter each, reaped from the CQ ring, "
                             "against pread() of the same bytes of a tmpfs file: the process's CPU per READ (its "
                             "io-wq workers included) less the submitter's wait for completions"}
        smp = uring_handoff.samples(result)
        summary = finish(summarize(smp, "handoff_cpu_seconds_per_read", what), noise)
        rec = records.store_record(records.measured_record("copy.handoff", params, smp, summary,
                                                           {"cpu_accounting": "CLOCK_PROCESS_CPUTIME_ID (every "
                                                            "thread of the probe child, io-wq workers included)"}),
                                   store)
        yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_handoff_cpu_seconds_per_read")})


PREAD_VARIANTS = ("alone", "beside", "posting")


def pread_sweep(server: str | None, client: str | None, sizes: list[int], repetitions: int,
                store: Store | None) -> Iterator[Outcome]:
    """Per size: the pread alone, beside another process's chain (RDMA WRITEs of the size, as many in
    flight per QP as `measure smbd` keeps per connection by default), and posting that chain itself
    (each pread's buffer written after it, at that depth)."""
    from rig.launch.smbd import SmbdOptions

    pids = acct.ksoftirqd_pids()
    for size in sizes:
        depth = SmbdOptions().in_flight_for(size)
        chain = {"op": "write", "events": True, "qps": 1, "tx_depth": depth, "io_size_bytes": size}
        with pread_copy.served_file(size) as path:
            for variant in PREAD_VARIANTS:
                what = f"pread {size} B" + {"alone": " alone", "beside": f" beside a {depth}-deep WRITE chain",
                                            "posting": f" posting its own {depth}-deep WRITE chain"}[variant]
                if variant != "alone" and not (server and client):
                    yield Outcome(what, skipped="no RDMA device pair for the chain (needs two devices)")
                    continue
                fn, args, beside, own = pread_copy.runs, (path, size, repetitions), None, None
                if variant == "posting":
                    fn, args, own = pread_copy.posting_runs, (path, size, repetitions, server, client, depth), chain
                try:
                    with (pread_copy.chain(server, client, size, depth, 600) if variant == "beside"
                          else contextlib.nullcontext()) as beside:
                        result, noise, reason = _call(fn, args, "pread probe", pids, pinned=False)
                except RuntimeError as exc:
                    result, noise, reason = None, {}, str(exc)
                if reason:
                    yield Outcome(what, skipped=reason)
                    continue
                params = {"io_size_bytes": size, "repetitions": repetitions,
                          "file_bytes": pread_copy.file_bytes(size), "beside_chain": beside, "own_chain": own,
                          "copy": "os.preadv of I/O-sized ranges of a tmpfs file (page cache) into a resident "
                                  "anonymous buffer, as the cpu-copy server reads (rig.flows.smbd_serving.CpuCopy)"}
                smp = pread_copy.samples(result["runs"], size)
                summary = finish(summarize(smp, "cpu_s_per_gb", what), noise)
                if own:
                    summary.update(wrs_completed=result["wrs_completed"], sleeps=result["sleeps"])
                rec = records.store_record(records.measured_record("copy.pread", params, smp, summary,
                                                                   {"cpu": "unpinned"}), store)
                yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_cpu_s_per_gb")})


def placement_sweep(server: str | None, client: str | None, sizes: list[int], repetitions: int,
                    store: Store | None) -> Iterator[Outcome]:
    """Per size: two posters' chains at measure smbd's in-flight I/Os per connection, `repetitions`
    windows, each with two new posters."""
    from rig.launch.smbd import SmbdOptions

    for size in sizes:
        depth = SmbdOptions().in_flight_for(size)
        what = f"placement {size} B, 2 posters x {depth} in flight"
        if not (server and client):
            yield Outcome(what, skipped="no RDMA device pair for the chains (needs two devices)")
            continue
        try:
            result = chain_placement.runs(server, client, size, depth, repetitions)
        except RuntimeError as exc:
            yield Outcome(what, skipped=str(exc))
            continue
        params = {"io_size_bytes": size, "posters": chain_placement.POSTERS, "tx_depth": depth,
                  "repetitions": repetitions, "window_s": chain_placement.WINDOW_S,
                  "stalled_windows": result["stalled"], "devices": {"server": server, "client": client},
                  "chains": "per poster process: its own QP pair, RDMA WRITEs of the I/O size from the server's "
                            "device into the client's, tx_depth in flight, sleeping on completion events past 16 "
                            "empty turns (the flows' Channel and Waiter), as a measure smbd serving process"}
        smp = chain_placement.samples(result["runs"], size)
        summary = finish(summarize(smp, "ksoftirqd_top_share", what), {})
        rec = records.store_record(records.measured_record(
            "nic.placement", params, smp, summary,
            {"cpu_accounting": "the machine's over each window: ksoftirqd's run time per CPU "
                               "(/proc/PID/schedstat), each CPU's busy time (/proc/stat)"}), store)
        yield Outcome(what, record=rec, row={"what": what, "median": summary.get("median_ksoftirqd_top_share")})


def _bounded(text: str, option: str, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a whole number", f"use {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise InputError(f"{option} {value} is outside {lo}..{hi}", f"use {lo}..{hi}")
    return value


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m rig.copy.rdma_parts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe", default=",".join(DEFAULT_PROBES))
    ap.add_argument("--sizes", default="64KiB..8MiB")
    ap.add_argument("--depths", default=",".join(str(d) for d in smbd_exchange.DEFAULT_DEPTHS))
    ap.add_argument("--exchanges", default="1000")
    ap.add_argument("--repetitions", default="5")
    ap.add_argument("--device", default=None, help="the server's (registering) device; default the second ACTIVE one")
    ap.add_argument("--peer-device", default=None, help="the exchange client's device; default the first")
    ap.add_argument("--store", default=None)
    a = ap.parse_args(argv)
    a.probes = [p.strip() for p in a.probe.split(",") if p.strip()]
    bad = [p for p in a.probes if p not in PROBES]
    if bad or not a.probes:
        raise InputError(f"--probe: unknown value {', '.join(bad) or repr(a.probe)}", f"use some of {','.join(PROBES)}")
    a.size_list = [int(s) for s in parse_size_list(a.sizes, "--sizes")]
    for s in a.size_list:
        if s % mr_register.PAGE_BYTES or not 0 < s <= MAX_SIZE_BYTES:
            raise InputError(f"--sizes: {s} bytes is not a whole number of 4 KiB pages up to 1 GiB",
                             "use e.g. 64KiB..8MiB")
    a.depth_list = [_bounded(d.strip(), "--depths", DEPTHS) for d in a.depths.split(",") if d.strip()]
    if not a.depth_list:
        raise InputError("--depths names no depth", "use e.g. 1,8,32")
    a.exchange_count = _bounded(a.exchanges, "--exchanges", EXCHANGES)
    a.repetition_count = _bounded(a.repetitions, "--repetitions", REPETITIONS)
    return a


def _devices(a: argparse.Namespace) -> tuple[str | None, str | None]:
    """(server, client): as measure smbd picks them, the server on the second device when two exist."""
    if a.device or a.peer_device:
        return a.device, a.peer_device
    from rig.rdma.devices import list_devices
    names = list_devices()
    return (names[1], names[0]) if len(names) > 1 else (None, None)


def main(argv: list[str] | None = None) -> int:
    guest_stat.start()       # inside the soft-RoCE guest: its busy time, for the host (no-op elsewhere)
    try:
        a = parse(sys.argv[1:] if argv is None else argv)
        store = Store(a.store)
        store.open_for_writing()
    except InputError as exc:
        print(f"rdmarig: error: {exc}", file=sys.stderr)
        return 2
    try:
        server, client = _devices(a) if {"mrreg", "exchange", "pread", "placement"} & set(a.probes) else (None, None)
        sweeps = {"mrreg": lambda: mrreg_sweep(server, a.size_list, a.repetition_count, store),
                  "exchange": lambda: exchange_sweep(server, client, a.depth_list, a.exchange_count,
                                                     a.repetition_count, store),
                  "crc32": lambda: crc32_sweep(a.size_list, a.repetition_count, store),
                  "pread": lambda: pread_sweep(server, client, a.size_list, a.repetition_count, store),
                  "handoff": lambda: handoff_sweep(a.depth_list, a.repetition_count, store),
                  "placement": lambda: placement_sweep(server, client, a.size_list, a.repetition_count, store)}
        stored = 0
        for probe in a.probes:
            for outcome in sweeps[probe]():
                if outcome.skipped:
                    print(f"skipped {outcome.what}: {outcome.skipped}", flush=True)
                else:
                    stored += 1
                    print(f"{outcome.what}: median {outcome.row.get('median'):.4g} (record {outcome.record.id[:8]})",
                          flush=True)
        print(f"{stored} records stored in {store.path if store.spool is None else store.spool}")
        return 0
    except InputError as exc:
        print(f"rdmarig: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rdmarig: error: interrupted; the records completed before are kept", file=sys.stderr)
        return 130
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
