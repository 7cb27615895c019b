"""`rdmarig measure verbs`: RDMA WRITE / READ / SEND bandwidth and latency through pyverbs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from results.tables import Column, Table, render
from rig.cli._common import JsonOption, StoreOption, open_store
from rig.cli._mpi import (JoinTimeoutOption, MpiFlag, PartnersOption, PatternOption, SeedOption, ToleranceOption,
                          mpi_options, refuse_without_mpi, report, split_devices)
from scenarios.errors import InputError
from scenarios.units import US, parse_size, parse_size_list, parse_time


BW_COLUMNS = [
    Column("msg_bytes", "#bytes", "{:.0f}"),
    Column("iterations", "#iterations", "{:.0f}"),
    Column("bw_peak_gbits_per_s", "BW peak [Gbit/s]", "{:.3f}"),
    Column("bw_average_gbits_per_s", "BW average [Gbit/s]", "{:.3f}"),
    Column("msg_rate_mpps", "MsgRate [Mpps]", "{:.6f}"),
    Column("cpu_user_s_per_gb", "CPU user [s/GB]", "{:.3f}"),
    Column("cpu_system_s_per_gb", "CPU sys [s/GB]", "{:.3f}"),
    Column("cpu_softirq_s_per_gb", "CPU softirq [s/GB]", "{:.3f}"),
]
PEER_CPU_COLUMNS = [Column("peer_cpu_total_s_per_gb", "peer CPU [s/GB]", "{:.3f}")]
LAT_COLUMNS = [
    Column("msg_bytes", "#bytes", "{:.0f}"),
    Column("wrs", "#iterations", "{:.0f}"),
    Column("t_min_us", "t_min [usec]", "{:.2f}"),
    Column("t_median_us", "t_median [usec]", "{:.2f}"),
    Column("t_p99_us", "t_99% [usec]", "{:.2f}"),
    Column("t_p999_us", "t_99.9% [usec]", "{:.2f}"),
    Column("t_max_us", "t_max [usec]", "{:.2f}"),
]
VS_COLUMNS = [
    Column("msg_bytes", "#bytes", "{:.0f}"),
    Column("rdmarig_gbits_per_s", "rdmarig BW avg [Gbit/s]", "{:.3f}"),
    Column("perftest_gbits_per_s", "perftest BW avg [Gbit/s]", "{:.3f}"),
    Column("bw_ratio", "BW ratio rdmarig/perftest", "{:.3f}"),
    Column("rdmarig_cpu_s_per_gb", "rdmarig CPU [s/GB]", "{:.3f}"),
    Column("perftest_cpu_s_per_gb", "perftest CPU [s/GB]", "{:.3f}"),
    Column("cpu_ratio", "CPU ratio rdmarig/perftest", "{:.3f}"),
]


def _row(point: Any) -> dict[str, Any]:
    s = point.summary
    row = {"msg_bytes": point.params["io_size_bytes"], **s,
           "iterations": s["wrs"] / point.params["num_qps"]}      # per QP, as perftest counts
    for key in ("min", "median", "p99", "p999", "max"):
        if f"latency_{key}_s" in s:
            row[f"t_{key}_us"] = s[f"latency_{key}_s"] / US
    return row


PROGRESS_FIRST_S, PROGRESS_EVERY_S = 2.0, 5.0


def _ticker(prog: Any, msg: int) -> Any:
    """A progress line while a point runs: after PROGRESS_FIRST_S, then at most every
    PROGRESS_EVERY_S (called from the loop's own clock checks, so it costs the hot loop nothing
    between lines)."""
    shown = [0.0]

    def tick(wrs: int, elapsed_s: float) -> None:
        wait = PROGRESS_EVERY_S if shown[0] else PROGRESS_FIRST_S
        if elapsed_s - shown[0] >= wait or elapsed_s < shown[0]:
            shown[0] = elapsed_s
            prog.note(f"  {msg} B: {wrs} WRs completed after {elapsed_s:.0f} s")
    return tick


def verbs(
    op: str = typer.Option("write", "--op", help="write, read or send."),
    size: str = typer.Option("64KiB", "--size", "-s", help="Message size or list/range: 1MiB, 4KiB..8MiB, 2,64,4096."),
    qps: int = typer.Option(1, "--qps", "-q", help="Number of RC QPs."),
    tx_depth: int = typer.Option(128, "--tx-depth", "-t", help="WRs in flight per QP."),
    rx_depth: int = typer.Option(512, "--rx-depth", "-r", help="Receives posted per QP (SEND)."),
    cq_mod: int = typer.Option(100, "--cq-mod", "-Q", help="One signaled WR per this many (CQ moderation)."),
    post_list: int = typer.Option(1, "--post-list", "-l", help="WRs chained into one post call."),
    inline: str = typer.Option("0", "--inline", "-I", help="Max message size sent inline (WRITE/SEND)."),
    iterations: int = typer.Option(1000, "--iterations", "-n", help="WRs per QP (rounded up to --cq-mod)."),
    duration: Optional[str] = typer.Option(None, "--duration", "-D", help="Run for this long instead (e.g. 10s)."),
    warmup: int = typer.Option(0, "--warmup", help="Warm-up WRs per QP before the timed run."),
    latency: bool = typer.Option(False, "--latency", help="Latency (one WR in flight) instead of bandwidth."),
    latency_mode: str = typer.Option("auto", "--latency-mode",
                                     help="pingpong: half round trip as ib_write_lat/ib_send_lat; post: post to "
                                          "completion as ib_read_lat; auto: pingpong for WRITE/SEND in loopback."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="RDMA device (default: first with an ACTIVE port); "
                                          "with --mpi a list (rxe0,rxe1) taken round-robin by local rank."),
    ib_port: Optional[int] = typer.Option(None, "--ib-port", "-i", help="Device port (default: first ACTIVE)."),
    gid_index: Optional[int] = typer.Option(None, "--gid-index", "-x", help="GID index (default: IPv4-mapped RoCE v2)."),
    peer_device: Optional[str] = typer.Option(None, "--peer-device", help="Loopback target on another local device."),
    peer_gid_index: Optional[int] = typer.Option(None, "--peer-gid-index", help="GID index on --peer-device."),
    peer: Optional[str] = typer.Option(None, "--peer", help="HOST[:PORT] of `rdmarig serve` (two-host mode)."),
    validate: bool = typer.Option(False, "--validate", help="Before timing: fresh random data through every slot, every byte checked."),
    rdma_cm: bool = typer.Option(False, "--rdma-cm", help="Connect the loopback QPs through rdma_cm (librdmacm)."),
    events: bool = typer.Option(False, "--events", "-e", help="Sleep on completion events between completions "
                                "instead of busy polling (perftest -e; the Python loop)."),
    timeout: str = typer.Option("10s", "--timeout", help="Give up when no completion arrives for this long."),
    vs_perftest: bool = typer.Option(False, "--vs-perftest", help="Also run ib_write_bw/ib_read_bw/ib_send_bw alike; print both and the ratio."),
    mpi: bool = MpiFlag,
    pattern: Optional[str] = PatternOption,
    partners: int = PartnersOption,
    seed: int = SeedOption,
    tolerance: Optional[str] = ToleranceOption,
    join_timeout: str = JoinTimeoutOption,
    no_store: bool = typer.Option(False, "--no-store", help="Do not store records."),
    store: Optional[Path] = StoreOption,
    json_out: bool = JsonOption,
) -> None:
    """RDMA bandwidth or latency through pyverbs (perftest-style), records into the store."""
    from rig.progress import Progress
    from rig.rdma.measure import DURATION_BOUNDS, VerbsOptions, check_range

    device, devices = split_devices(device, mpi)
    duration_s = 0.0
    if duration is not None:
        duration_s = parse_time(duration, "--duration")
        check_range(DURATION_BOUNDS[0], duration_s, *DURATION_BOUNDS[1:], "s")
    opts = VerbsOptions(
        op=op, sizes=[int(x) for x in parse_size_list(size, "--size")], num_qps=qps, tx_depth=tx_depth,
        rx_depth=rx_depth, cq_mod=cq_mod, post_list=post_list, inline_bytes=int(parse_size(inline, "--inline")),
        iterations=iterations, duration_s=duration_s,
        warmup_iterations=warmup, latency=latency, latency_mode=latency_mode, device=device, port=ib_port, gid_index=gid_index,
        peer_device=peer_device, peer_gid_index=peer_gid_index, peer_addr=peer, validate=validate,
        timeout_s=parse_time(timeout, "--timeout"), rdma_cm=rdma_cm, events=events)
    opts.check()
    if mpi:
        from rig.rdma.measure import check_mpi
        job = mpi_options(pattern, partners, seed, tolerance, join_timeout, devices or ((device,) if device else ()))
        opts.device = None
        check_mpi(opts, job)
        if vs_perftest:
            raise InputError("--vs-perftest compares loopback runs", "drop it with --mpi")
        _measure_mpi(opts, job, no_store, store, json_out)
        return
    refuse_without_mpi(pattern, partners, seed, tolerance)
    if vs_perftest and (latency or peer):
        raise InputError("--vs-perftest compares loopback bandwidth runs", "drop --latency/--peer for it")
    if vs_perftest and events:
        from rig.rdma.perftest import check_events
        check_events(op, "drop --vs-perftest, or use --op read or send with --events")
    label = f"verbs {op} {'latency' if latency else 'bandwidth'}"
    prog = Progress(len(opts.sizes), label)
    prog.note(f"{label}: {len(opts.sizes)} point(s), {opts.sizes[0]}..{opts.sizes[-1]} B, "
              f"{'peer ' + peer if peer else 'loopback'}; loading pyverbs, opening the device")
    _measure(opts, prog, vs_perftest, no_store, store, json_out)


def _measure(opts: Any, prog: Any, vs_perftest: bool, no_store: bool, store: Optional[Path], json_out: bool) -> None:
    from rig.launch.peer import PeerError
    from rig.rdma import compat
    from rig.rdma.completions import CompletionError, PollTimeout
    from rig.rdma.measure import IntegrityError, run_point
    from rig.records import measured_record, store_record

    V = compat.load()               # InputError (one line) when pyverbs is missing
    st = None if no_store else open_store(store)
    points, vs_rows, failure = [], [], None
    try:
        for msg in opts.sizes:
            try:
                point = run_point(opts, msg, on_tick=_ticker(prog, msg))
            except CompletionError as exc:
                failure = f"{exc} - stopped cleanly, resources released"
                break
            except (PollTimeout, PeerError, IntegrityError) as exc:
                failure = f"{exc} - stopped, resources released"
                break
            except V.PyverbsError as exc:        # a verbs call the device refused (sizes, depths...)
                failure = f"verbs call failed at {msg} B: {exc} - stopped, resources released"
                break
            name = f"verbs.{opts.op}.{'lat' if opts.latency else 'bw'}"
            rec = measured_record(name, point.params, point.samples, point.summary,
                                  extra_provenance={"rdma_ports": point.ports, "integrity": point.integrity,
                                                    "cpu_accounting": point.cpu_accounting,
                                                    "pyverbs_api": V.api, "pyverbs_path": V.path})
            store_record(rec, st)
            points.append((point, rec.id))
            if vs_perftest:
                vs_rows.append(_vs_perftest(opts, point, msg, st))
            prog.step(f"{msg} B")
    finally:
        if st is not None:
            st.close()
    _print(opts, points, vs_rows, json_out)
    if failure:
        print(f"rdmarig: error: {failure}", file=sys.stderr)
        raise typer.Exit(1)


def _measure_mpi(opts: Any, job: Any, no_store: bool, store: Optional[Path], json_out: bool) -> None:
    from rig.progress import Progress
    from rig.rdma.measure import run_mpi

    prog = Progress(1, "verbs --mpi")
    report(run_mpi(opts, job, lambda: None if no_store else open_store(store), prog.note), no_store, json_out)


def _vs_perftest(opts: Any, point: dict[str, Any], msg: int, st: Any) -> dict[str, Any]:
    from rig.rdma import perftest
    from rig.records import measured_record, store_record

    local, remote = point.ports["local"], point.ports["remote"]
    eff_mod = point.params.get("cq_mod_effective", opts.cq_mod)
    rep = perftest.run(opts.op, msg, device=local["device"], ib_port=local["port"], gid_index=local["gid_index"],
                       peer_device=remote["device"], peer_gid_index=remote["gid_index"], num_qps=opts.num_qps,
                       tx_depth=opts.tx_depth, cq_mod=eff_mod, post_list=opts.post_list,
                       inline_bytes=opts.inline_bytes, iterations=opts.iterations, duration_s=opts.duration_s,
                       rx_depth=opts.rx_depth, events=opts.events)
    s = point.summary
    row = {"msg_bytes": msg, "rdmarig_gbits_per_s": s["bw_average_gbits_per_s"],
           "perftest_gbits_per_s": rep["bw_average_gbits_per_s"],
           "bw_ratio": s["bw_average_gbits_per_s"] / rep["bw_average_gbits_per_s"] if rep["bw_average_gbits_per_s"] else None,
           "rdmarig_cpu_s_per_gb": s["cpu_total_s_per_gb"], "perftest_cpu_s_per_gb": rep["cpu_total_s_per_gb"],
           "cpu_ratio": s["cpu_total_s_per_gb"] / rep["cpu_total_s_per_gb"] if rep["cpu_total_s_per_gb"] else None,
           "perftest": rep}
    rec = measured_record(f"perftest.{perftest.TOOLS[opts.op]}", {**point.params, "tool": perftest.TOOLS[opts.op]},
                          {}, {k: v for k, v in rep.items() if isinstance(v, (int, float))},
                          extra_provenance={"command_client": rep["command_client"],
                                            "command_server": rep["command_server"],
                                            "cpu_accounting": rep["cpu_accounting"]})
    store_record(rec, st)
    return row


def _print(opts: Any, points: list[tuple[Any, str]], vs_rows: list[dict[str, Any]], json_out: bool) -> None:
    if json_out:
        doc = {"points": [{**{k: v for k, v in p.as_dict().items() if k != "samples"}, "record_id": rid}
                          for p, rid in points]}
        if vs_rows:
            doc["vs_perftest"] = vs_rows
        print(json.dumps(doc, indent=2, default=str))
        return
    if not points:
        return
    p0 = points[0][0]
    loc, rem = p0.ports["local"], p0.ports["remote"]
    where = f"{loc['device']}:{loc['port']} gid[{loc['gid_index']}] -> " + \
        (f"peer {opts.peer_addr}" if opts.peer_addr else f"{rem['device']}:{rem['port']} gid[{rem['gid_index']}]")
    title = f"RDMA {opts.op.upper()} {'latency' if opts.latency else 'bandwidth'}, {where}, " \
            f"{opts.num_qps} QP(s), tx depth {opts.tx_depth}, cq mod {p0.params.get('cq_mod_effective', '-')}, " \
            f"post list {opts.post_list}, MTU {min(loc['mtu_bytes'], rem.get('mtu_bytes', loc['mtu_bytes']))} B" \
            f"{', completion events (the poster sleeps)' if opts.events else ''}"
    cols = LAT_COLUMNS if opts.latency else BW_COLUMNS + (PEER_CPU_COLUMNS if opts.peer_addr else [])
    notes = ["integrity: target memory checked after every point" +
             (" (+ --validate pass through every slot)" if opts.validate else "")]
    if opts.latency and opts.latency_method() == "pingpong":
        notes.append("latency = half of a ping-pong round trip between the two ends (as ib_write_lat/ib_send_lat)")
    elif opts.latency:
        notes.append("latency = post to completion of one signaled WR (READ: as ib_read_lat; "
                     "WRITE/SEND include the ACK, i.e. a round trip)")
    notes.append(p0.summary.get("cpu_scope", ""))
    print(render(Table(title, cols, [_row(p) for p, _ in points], notes), "md"))
    if vs_rows:
        print(render(Table(f"rdmarig vs perftest ({opts.op})", VS_COLUMNS, vs_rows,
                           [r["perftest"]["command_client"] for r in vs_rows[:1]]), "md"))
