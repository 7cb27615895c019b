"""The options and the report of every measurement run under mpirun/srun (`--mpi`, docs/mpi.md):
one place for `measure verbs --mpi` and `measure smbd --mpi`."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from results.tables import render
from scenarios.errors import InputError
from scenarios.units import parse_time

MpiFlag = typer.Option(False, "--mpi", help="One rank of a run under mpirun/srun: ranks paired by --pattern, "
                       "rank 0 stores a record per pair and the aggregate (docs/mpi.md).")
PatternOption = typer.Option(None, "--pattern", help="--mpi: pairs (i with i+N/2; the default), all-pairs "
                             "(round robin, every pair), sampled (--partners K per rank), incast (N-1 "
                             "clients -> rank 0).")
PartnersOption = typer.Option(0, "--partners", help="--pattern sampled: partners per rank.")
SeedOption = typer.Option(0, "--seed", help="--pattern sampled: the draw.")
ToleranceOption = typer.Option(None, "--tolerance", help="--mpi: pairs below this share of the median "
                               "are flagged (default 93%: ClusterKit's bandwidth tolerance).")
JoinTimeoutOption = typer.Option("10min", "--join-timeout", help="--mpi: the longest wait for every rank to start.")


def split_devices(device: Optional[str], mpi: bool) -> tuple[Optional[str], tuple[str, ...]]:
    """--device: one name, or with --mpi a list taken round-robin by local rank -> (one, list)."""
    if device is None or "," not in device:
        return device, ()
    if not mpi:
        raise InputError(f"--device {device!r} names several devices", "name one, or run with --mpi "
                         "(ranks take the list round-robin by local rank)")
    devices = tuple(d.strip() for d in device.split(","))
    if not all(devices):
        raise InputError(f"--device {device!r} has an empty name", "list device names: --device rxe0,rxe1")
    return None, devices


def mpi_options(pattern: Optional[str], partners: int, seed: int, tolerance: Optional[str], join_timeout: str,
                devices: tuple[str, ...]) -> Any:
    """rig.launch.mpi_run.MpiOptions from the command line, checked."""
    from results.matrix import DEFAULT_TOLERANCE
    from rig.launch.mpi_run import MpiOptions, parse_tolerance
    opts = MpiOptions(pattern=pattern or "pairs", partners=partners, seed=seed,
                      tolerance=parse_tolerance(tolerance) if tolerance is not None else DEFAULT_TOLERANCE,
                      devices=devices, join_s=parse_time(join_timeout, "--join-timeout"))
    opts.check()
    return opts


def refuse_without_mpi(pattern: Optional[str], partners: int, seed: int, tolerance: Optional[str]) -> None:
    if partners or seed or tolerance is not None or pattern is not None:
        raise InputError("--pattern, --partners, --seed and --tolerance apply to runs under --mpi",
                         "add --mpi (and launch with mpirun or srun), or drop them")


def report(out: Any, no_store: bool, json_out: bool) -> None:
    """Rank 0 prints the matrices (or JSON); every rank that lost a pair, or whose run ended
    partial, says so in one line and exits 1."""
    from results.matrix import matrices, table
    if out.rank == 0:
        if json_out:
            print(json.dumps({"run": out.run, "aggregates": [r.to_dict() for r in out.aggregates],
                              "pairs": [{"id": r.id, "params": r.params, "summary": r.summary} for r in out.pairs]},
                             indent=2, default=str))
        else:
            for m in matrices(out.pairs + out.aggregates):
                print(render(table(m), "md"))
            print(f"run {out.run}: {len(out.pairs)} pair record(s) and {len(out.aggregates)} aggregate(s)"
                  + ("" if no_store else f"; `rdmarig results show {out.run} --matrix` shows them again"))
    if out.failures or out.partial_reason:
        said = [f"run {out.run} partial ({out.partial_reason})"] if out.partial_reason else []
        if out.failures:
            said.append(f"{len(out.failures)} of this rank's {max(out.pairs_taken, len(out.failures))} pair(s) "
                        f"failed, first: {out.failures[0]}")
        # one write, newline included: ranks share the launcher's stderr
        sys.stderr.write(f"rdmarig: error: rank {out.rank} of {out.ranks} ({out.host}): {'; '.join(said)}; "
                         "the completed pairs' records are stored\n")
        sys.stderr.flush()
        raise typer.Exit(1)
