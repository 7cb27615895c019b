"""TCP send with checksum offload off vs on: the same transfers over a veth pair between two
network namespaces, with the pair's checksum offload on, then off (`ethtool -K`), interleaved.

Loopback cannot show it: `lo` has checksums fixed on. On the veth pair, with offload on the sender
hands the stack's CHECKSUM_PARTIAL packets through and the receiver trusts them; with `tx off` the
sender's kernel computes every segment's checksum in software before it leaves (skb_checksum_help /
csum_partial over the payload: a second pass over data the send already copied), and with `rx off`
the receiver verifies it in software (__skb_checksum_complete). TCP segmentation offload needs
checksum offload, so `tx off` also turns TSO off; to keep segmentation the same in both, TSO is off
in both configurations (GSO still segments in software, 1500-byte MTU). What differs is the
checksum.

On and off alternate run by run (on, off, on, off, ...), so a tenant's load burst lands on both.
Each state gets its own record (`copy.csum`, params.checksum_offload on|off); the off record also
carries the median of the paired differences, tx and rx side, citing the on record's id.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

from results.store import Store
from rig import accounting as acct
from rig import records
from rig.copy import netns, runs, sources, transfer
from rig.copy.outcome import Outcome, Step, warnings_of

STATES = ("on", "off")
DEFAULT_PATHS = ("rw", "sendfile")
SOURCE_KIND = "tmpfs"
ETHTOOL_S = 0.2  # one `ethtool -K` round on both ends, for the progress estimate

_SIDES = {"tx": ("tx_user_cpu_s_per_gb", "tx_system_cpu_s_per_gb", "tx_softirq_cpu_s_per_gb"),
          "rx": ("rx_user_cpu_s_per_gb", "rx_system_cpu_s_per_gb", "rx_softirq_cpu_s_per_gb")}


def settings(state: str) -> dict[str, str]:
    return {"tx": state, "rx": state, "tso": "off"}


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the checksum probe toggles offloads on a veth pair in two network namespaces, which needs root"
    if not shutil.which("ethtool", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        return "ethtool is missing (Debian package ethtool)"
    return None


def plan(paths: list[str], chunks: list[int], repetitions: int, duration_s: float) -> list[Step]:
    setup = runs.VETH_SETUP_S + runs.source_size(chunks) / runs.SOURCE_BYTES_PER_S
    steps = []
    for chunk in chunks:
        for path in paths:
            one = runs.transfer_step("", path, SOURCE_KIND, repetitions, duration_s)
            # the two records of a configuration are yielded together, after both states ran
            steps += [Step(f"csum {path} {chunk} B on", setup + 2 * (one.cpu_s + repetitions * ETHTOOL_S),
                           2 * one.wall_s),
                      Step(f"csum {path} {chunk} B off", 0.0)]
            setup = 0.0
    return steps


def _side_totals(split: dict) -> dict[str, float]:
    return {side: sum(split[k] or 0.0 for k in keys) for side, keys in _SIDES.items()}


def sweep(paths: list[str], chunks: list[int], repetitions: int, duration_s: float,
          store: Store | None) -> Iterator[Outcome]:
    reason = unavailable()
    if reason:
        for step in plan(paths, chunks, repetitions, duration_s):
            yield Outcome(step.what, skipped=reason)
        return
    pids = acct.ksoftirqd_pids()
    veth = netns.VethPair().create()
    try:
        source = sources.open_source(SOURCE_KIND, runs.source_size(chunks))
        try:
            for chunk in chunks:
                for path in paths:
                    yield from _pair(path, source, chunk, veth, repetitions, duration_s, pids, store)
        finally:
            source.close()
    finally:
        veth.destroy()


def _pair(path, source, chunk, veth, repetitions, duration_s, pids, store) -> Iterator[Outcome]:
    whats = {state: f"csum {path} {chunk} B {state}" for state in STATES}
    raws: dict[str, list] = {state: [] for state in STATES}
    provenance: dict[str, dict] = {}
    for rep in range(repetitions):
        for state in STATES:
            try:
                veth.set_offloads(settings(state))
            except OSError as exc:
                for s in STATES:
                    yield Outcome(whats[s], skipped=f"cannot set checksum offload {state}: {exc}")
                return
            got = runs.transfers(path, source, chunk, "veth", veth, 1, duration_s, pids, warm_up=rep == 0)
            if isinstance(got, str):
                for s in STATES:
                    yield runs.skipped_transfer(whats[s], got, path, source.kind, chunk, "veth")
                return
            raws[state] += got
            provenance.setdefault(state, runs.interface_provenance("veth", veth))
    splits = {state: [transfer.cpu_split(r) for r in raws[state]] for state in STATES}
    stored = {}
    for state in STATES:
        params = {"checksum_offload": state, "offloads_set": settings(state)}
        record = runs.transfer_record("copy.csum", splits[state], path, source, chunk, "veth", duration_s,
                                      provenance[state], params)
        if state == "off":
            record.summary.update(_paired_extra(splits["off"], splits["on"]))
            record.summary["compared_with_record"] = stored["on"].id
        stored[state] = records.store_record(record, store)
    for state in STATES:
        yield Outcome(whats[state], record=stored[state], row=_row(stored[state]))


def _row(record) -> dict:
    s = record.summary
    row = {"id": record.id[:8], "path": record.params["path"], "io_size_bytes": record.params["io_size_bytes"],
           "checksum_offload": record.params["checksum_offload"], "median_gbytes_per_s": s.get("median_gbytes_per_s"),
           "foreign_cpu_per_s": s.get("median_foreign_cpu_per_s"), "warning": warnings_of(s),
           "offload_off_extra_total_cpu_s_per_gb": s.get("offload_off_extra_total_cpu_s_per_gb")}
    for key in (*_SIDES["tx"], *_SIDES["rx"], "total_cpu_s_per_gb"):
        row[key] = s.get(f"median_{key}")
    return row


def _paired_extra(off: list[dict], on: list[dict]) -> dict[str, float]:
    """Median over interleaved pairs of (off - on) CPU per GB: tx side, rx side, both."""
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    out = {}
    for side in ("tx", "rx"):
        diffs = [_side_totals(a)[side] - _side_totals(b)[side] for a, b in zip(off, on)]
        out[f"offload_off_extra_{side}_cpu_s_per_gb"] = float(np.median(diffs))
    diffs = [(a["total_cpu_s_per_gb"] or 0.0) - (b["total_cpu_s_per_gb"] or 0.0) for a, b in zip(off, on)]
    out["offload_off_extra_total_cpu_s_per_gb"] = float(np.median(diffs))
    return out
