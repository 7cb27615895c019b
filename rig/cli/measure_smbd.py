"""`rdmarig measure smbd`: SMB2 READ/WRITE over SMB Direct on real RDMA, per copy variant of the
server, records into the store. Heavy imports (pyverbs, numpy) happen inside the command."""

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
from rig.flows.smbd_serving import DEFAULT_ASYNC_WORKERS
from scenarios.units import US, parse_size, parse_size_list, parse_time

COLUMNS = [
    Column.of("io_size_bytes", "I/O size", "{:.0f}"),
    Column("copy", "copy"),
    Column("register", "register"),
    Column.of("gbytes_per_s", "throughput", "{:.4f}"),
    Column.of("latency_p50_us", "latency p50", "{:.0f}"),
    Column.of("latency_p99_us", "latency p99", "{:.0f}"),
    Column.of("server_cpu_s_per_gb", "server CPU", "{:.2f}"),
    Column.of("server_serving_user_cpu_s_per_gb", "serving user", "{:.2f}"),
    Column.of("server_serving_system_cpu_s_per_gb", "serving sys", "{:.2f}"),
    Column.of("server_copy_cpu_s_per_gb", "serving copy", "{:.2f}"),
    Column.of("server_workers_cpu_s_per_gb", "io-wq workers", "{:.2f}"),
    Column.of("server_softirq_cpu_s_per_gb", "server softirq", "{:.2f}"),
    Column.of("client_cpu_s_per_gb", "client CPU", "{:.2f}"),
    Column("credits_in_flight_mean", "credits in flight (mean)", "{:.1f}"),
    Column("ios", "I/Os", "{:.0f}"),
]


def smbd(
    op: str = typer.Option("read", "--op", help="read (server RDMA-WRITEs the file range) or write (server RDMA-READs it)."),
    io_size: str = typer.Option("64KiB..8MiB", "--io-size", "-s", help="I/O size, list or range: 1MiB, 64KiB..8MiB, 64KiB,1MiB."),
    connections: int = typer.Option(2, "--connections", "-c", help="SMB Direct connections (one QP and one serving process each)."),
    credits: int = typer.Option(255, "--credits", help="Credits requested in the negotiate request (1..255; ksmbd and Windows: 255)."),
    in_flight: Optional[int] = typer.Option(None, "--in-flight", help="I/Os in flight per connection (default: credits, within 32 MiB of buffers)."),
    copy: Optional[str] = typer.Option(None, "--copy", help="Server copy variants: cpu-copy,async-workers,zero-copy (default: all the operation has)."),
    register: str = typer.Option("once", "--register", help="once | per-io: the client's buffers and the zero-copy file mapping."),
    async_workers: int = typer.Option(DEFAULT_ASYNC_WORKERS, "--async-workers", help="io-wq workers of async-workers (IORING_REGISTER_IOWQ_MAX_WORKERS)."),
    duration: str = typer.Option("5s", "--duration", "-D", help="Time per point (then the I/Os in flight drain)."),
    ios: int = typer.Option(0, "--ios", help="I/Os per point instead of --duration (0: use --duration)."),
    timeout: str = typer.Option("10s", "--timeout", help="Give up when no response arrives for this long."),
    peer: Optional[str] = typer.Option(None, "--peer", help="HOST[:PORT] of `rdmarig serve smbd` (default port 18521); default: a server here."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="The client's RDMA device (default: the first ACTIVE); "
                                          "with --mpi a list (rxe0,rxe1) taken round-robin by local rank."),
    ib_port: Optional[int] = typer.Option(None, "--ib-port", "-i", help="Device port."),
    gid_index: Optional[int] = typer.Option(None, "--gid-index", "-x", help="GID index (default: IPv4-mapped RoCE v2)."),
    peer_device: Optional[str] = typer.Option(None, "--peer-device", help="Both ends here: the server's device (default: the second one, else the client's)."),
    peer_gid_index: Optional[int] = typer.Option(None, "--peer-gid-index", help="GID index on --peer-device."),
    file: Optional[Path] = typer.Option(None, "--file", help="Both ends here: serve this file (READ) instead of a scratch file."),
    file_size: str = typer.Option("64MiB", "--file-size", help="Both ends here: size of the scratch file."),
    serving_cpus: Optional[str] = typer.Option(None, "--serving-cpus", help="Both ends here: pin connection i's serving "
                                               "process to CPU i of this list (0,1 or 0-3; default: the scheduler "
                                               "places them)."),
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
    """SMB2 READ/WRITE over SMB Direct (real RDMA): throughput, latency, server CPU per copy variant."""
    from rig.launch.smbd import SmbdOptions, describe
    from rig.launch.smbd_target import parse_cpus
    from rig.progress import Progress

    device, devices = split_devices(device, mpi)
    opts = SmbdOptions(
        op=op, sizes=[int(x) for x in parse_size_list(io_size, "--io-size")],
        copies=[c.strip() for c in copy.split(",") if c.strip()] if copy is not None else None,
        register=register, connections=connections, credits=credits, in_flight=in_flight,
        async_workers=async_workers, duration_s=parse_time(duration, "--duration"), ios=ios,
        timeout_s=parse_time(timeout, "--timeout"), device=device, port=ib_port, gid_index=gid_index,
        peer_device=peer_device, peer_gid_index=peer_gid_index, peer_addr=peer,
        file=str(file) if file is not None else None, file_bytes=int(parse_size(file_size, "--file-size")),
        serving_cpus=parse_cpus(serving_cpus) if serving_cpus is not None else ())
    opts.check()
    if mpi:
        from rig.launch.smbd import check_mpi, run_mpi
        job = mpi_options(pattern, partners, seed, tolerance, join_timeout, devices or ((device,) if device else ()))
        check_mpi(opts)
        opts.device = None
        prog = Progress(1, f"smbd {opts.op} --mpi")
        report(run_mpi(opts, job, lambda: None if no_store else open_store(store), prog.note), no_store, json_out)
        return
    refuse_without_mpi(pattern, partners, seed, tolerance)
    points = [(size, c) for size in opts.sizes for c in opts.copy_list()]
    label = f"smbd {opts.op}"
    prog = Progress(len(points), label, names=[f"{size} B {c}" for size, c in points])
    prog.note(f"{describe(opts)}; {'peer ' + peer if peer else 'both ends here'}; loading pyverbs, opening the device")
    _measure(opts, points, prog, no_store, store, json_out)


def _measure(opts: Any, points: list[tuple[int, str]], prog: Any, no_store: bool, store: Optional[Path],
             json_out: bool) -> None:
    from rig.flows.smbd import Terminate
    from rig.flows.smbd_client import IntegrityError
    from rig.launch.peer import PeerError
    from rig.launch.smbd import ServerFailed, run_point, target
    from rig.rdma import compat
    from rig.rdma.completions import CompletionError, PollTimeout

    V = compat.load()               # InputError (one line) when pyverbs is missing
    st = None if no_store else open_store(store)
    done: list[tuple[Any, str]] = []
    failure = None
    try:
        with target(opts) as where, prog:
            for size, copy in points:
                try:
                    point = run_point(opts, where, size, copy)
                except (CompletionError, PollTimeout, PeerError, IntegrityError, ServerFailed, Terminate,
                        V.PyverbsError) as exc:
                    partial = getattr(exc, "partial_point", None)
                    if partial is not None and not isinstance(exc, IntegrityError):
                        done.append((partial, _store(partial, V, st).id))
                    failure = f"{size} B {copy}: {exc} - stopped, resources released" + \
                        (" (the part measured before is stored, marked partial)" if partial is not None
                         and not isinstance(exc, IntegrityError) else "")
                    break
                except KeyboardInterrupt as exc:
                    partial = getattr(exc, "partial_point", None)
                    if partial is not None:
                        _store(partial, V, st)
                    raise
                done.append((point, _store(point, V, st).id))
                s = point.summary
                prog.step(f"{size} B {copy}: {s['gbytes_per_s']:.4f} GB/s, server "
                          f"{s.get('server_cpu_s_per_gb', float('nan')):.2f} CPU-s/GB")
    finally:
        if st is not None:
            st.close()
    _print(opts, done, json_out)
    if failure:
        print(f"rdmarig: error: {failure}", file=sys.stderr)
        raise typer.Exit(1)


def _store(point: Any, V: Any, st: Any) -> Any:
    from rig.records import measured_record, store_record
    rec = measured_record(f"smbd.{point.params['op']}", point.params, point.samples, point.summary,
                          extra_provenance={"rdma_ports": point.ports, "integrity": point.integrity,
                                            "cpu_accounting": point.cpu_accounting, "pyverbs_api": V.api,
                                            "pyverbs_path": V.path})
    return store_record(rec, st)


def _print(opts: Any, points: list[tuple[Any, str]], json_out: bool) -> None:
    if json_out:
        doc = {"points": [{**{k: v for k, v in p.as_dict().items() if k != "samples"}, "record_id": rid}
                          for p, rid in points]}
        print(json.dumps(doc, indent=2, default=str))
        return
    if not points:
        return
    rows = []
    for p, _ in points:
        s = p.summary
        rows.append({**p.params, **s, "latency_p50_us": s["latency_p50_s"] / US,
                     "latency_p99_us": s["latency_p99_s"] / US})
    p0 = points[0][0]
    devices = p0.params.get("devices", {})
    title = (f"SMB Direct {opts.op.upper()}, {p0.params['connection']} ({devices.get('client')} -> "
             f"{devices.get('server')}), {opts.connections} connection(s), credits {opts.credits} "
             f"(granted {p0.params.get('credits_granted')}), max read/write {p0.params.get('max_read_write_bytes')} B")
    notes = ["integrity: every READ response's bytes checked against the file block's CRC-32; every written block "
             "checked after the run",
             p0.summary.get("cpu_scope", "")]
    if any(p.summary.get("partial") for p, _ in points):
        notes.append("a partial point was cut short (see its record)")
    print(render(Table(title, COLUMNS, rows, notes), "md"))
