"""RDMA self-test: devices, ports, GIDs, and RDMA transfers with every byte checked.

    python -m rig.rdma.selftest [--json] [--size 1MiB] [--ops write,read,send]

Runs each op on loopback (first device -> itself) and, when a second device exists, across
(first -> second). Prints a JSON document {"ok", "devices", "tests": [{"name", "ok", "bytes", ...}]}
with --json, a short report otherwise; exit status 0 iff every test passed (and there was one).
`rdmarig guest check` runs this inside the soft-RoCE guest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from scenarios.errors import InputError
from scenarios.units import parse_size

SLOTS = 4       # the transfer is split into this many WRs (each to its own slot)


def _one(name: str, op: str, size: int, device: str, peer_device: str | None) -> dict[str, Any]:
    from rig.launch.local import loopback
    from rig.rdma.completions import CompletionError, PollTimeout
    from rig.rdma.integrity import verify_transfer
    from rig.rdma.player import PlayerConfig

    cfg = PlayerConfig(msg_bytes=max(1, size // SLOTS), slots=SLOTS, num_qps=1, tx_depth=16, rx_depth=16)
    t0 = time.perf_counter()
    try:
        a, b = loopback(cfg, device=device, peer_device=peer_device)
    except InputError as exc:
        return {"name": name, "ok": False, "bytes": 0, "error": exc.one_line()}
    try:
        res = verify_transfer(a, b, op)
        return {"name": name, "ok": res["ok"], "bytes": res["bytes"], "op": op,
                "from": f"{a.port.device}:{a.port.port} gid[{a.port.gid_index}]",
                "to": f"{b.port.device}:{b.port.port} gid[{b.port.gid_index}]",
                "mtu_bytes": min(a.port.mtu_bytes, b.port.mtu_bytes),
                "mismatched_bytes": res["mismatched_bytes"], "sha256": res["sha256_target"],
                "transfer_seconds": res["seconds"], "seconds": time.perf_counter() - t0}
    except (CompletionError, PollTimeout) as exc:
        return {"name": name, "ok": False, "bytes": 0, "op": op, "error": str(exc)}
    finally:
        a.close()
        b.close()


def run(size: int = 1 << 20, ops: tuple[str, ...] = ("write",)) -> dict[str, Any]:
    from rig.rdma import compat
    from rig.rdma.devices import describe_device, list_devices

    doc: dict[str, Any] = {"ok": False, "devices": [], "tests": []}
    try:
        V = compat.load()
        doc["pyverbs"] = {"api": V.api, "path": V.path, "python": sys.executable}
        names = list_devices()
    except InputError as exc:
        doc["error"] = exc.one_line()
        return doc
    doc["devices"] = [describe_device(n) for n in names]
    if not names:
        doc["error"] = "no RDMA device found"
        return doc
    first = names[0]
    for op in ops:
        doc["tests"].append(_one(f"{op} {first}->{first}", op, size, first, None))
        if len(names) > 1:
            doc["tests"].append(_one(f"{op} {first}->{names[1]}", op, size, first, names[1]))
    doc["ok"] = bool(doc["tests"]) and all(t["ok"] for t in doc["tests"])
    return doc


def render(doc: dict[str, Any]) -> str:
    lines = [f"pyverbs: {doc.get('pyverbs', {}).get('api', '-')} ({doc.get('pyverbs', {}).get('path', '-')})"]
    for d in doc["devices"]:
        for p in d["ports"]:
            gids = ", ".join(f"[{g['index']}] {g['gid']} ({g['type']})" for g in p["gids"]) or "none"
            lines.append(f"{d['device']} port {p['port']}: {p['state']} {p['link_layer']} "
                         f"MTU {p['mtu_bytes']} B; GIDs {gids}")
    for t in doc["tests"]:
        detail = f"{t['bytes']} B, {t.get('mismatched_bytes', '-')} mismatched, sha256 {t.get('sha256', '-')[:16]}" \
            if "error" not in t else t["error"]
        lines.append(f"{'PASS' if t['ok'] else 'FAIL'} {t['name']}: {detail}")
    if "error" in doc:
        lines.append(f"error: {doc['error']}")
    lines.append("selftest: " + ("ok" if doc["ok"] else "FAILED"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rig.rdma.selftest", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the JSON document")
    ap.add_argument("--size", default="1MiB", help="bytes per test (default 1MiB)")
    ap.add_argument("--ops", default="write", help="comma list of write,read,send (default write)")
    args = ap.parse_args(argv)
    try:
        size = int(parse_size(args.size, "--size"))
        ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
        bad = [o for o in ops if o not in ("write", "read", "send")]
        if bad or not ops:
            raise InputError(f"--ops: unknown op {bad}", "use write, read and/or send")
    except InputError as exc:
        print(f"selftest: error: {exc.one_line()}", file=sys.stderr)
        return 2
    doc = run(size, ops)
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
