"""Inside the guest: what `rdmarig guest check` reports. Not for use on the host.

    python -m rig.guest.probe [--out FILE] [--bw-iters N]     (FILE: $RDMARIG_GUEST_OUT/check.json)

Writes one JSON document: {"ok", "devices": [...], "items": [{"name", "ok", "detail"}],
"ib_write_bw": {...}, "selftest": {...}}. Exit status 0 iff every item passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rig.guest.initramfs import RXE_LINKS
from rig.rdma import perftest
from scenarios.errors import InputError

SYSFS = Path("/sys/class/infiniband")
GIDS_READ = 4                  # reading every GID entry takes ~90 s under TCG
BW_MSG_BYTES = 1 << 20
REPORT_KEYS = ("bytes_per_msg", "iterations", "bw_peak_gbits_per_s", "bw_average_gbits_per_s", "msg_rate_mpps")
IPV4_MAPPED = "0000:0000:0000:0000:0000:ffff:"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def parse_devinfo_mtu(text: str) -> dict[str, int]:
    """`ibv_devinfo -d X -i 1` -> {'active_mtu_bytes': 1024, 'max_mtu_bytes': 4096}."""
    found = {}
    for key in ("active_mtu", "max_mtu"):
        m = re.search(rf"^\s*{key}:\s*(\d+)", text, re.M)
        if m:
            found[f"{key}_bytes"] = int(m.group(1))
    return found


def describe_device(name: str) -> dict[str, Any]:
    port = SYSFS / name / "ports" / "1"
    gids = []
    for i in range(GIDS_READ):
        gid = _read(port / "gids" / str(i))
        if gid is None or gid == "0000:0000:0000:0000:0000:0000:0000:0000":
            continue
        gids.append({"index": i, "gid": gid, "type": _read(port / "gid_attrs" / "types" / str(i)),
                     "netdev": _read(port / "gid_attrs" / "ndevs" / str(i))})
    info: dict[str, Any] = {"device": name, "port": 1, "state": _read(port / "state"),
                            "phys_state": _read(port / "phys_state"), "link_layer": _read(port / "link_layer"),
                            "rate": _read(port / "rate"), "gids": gids,
                            "netdev": next((g["netdev"] for g in gids if g["netdev"]), None)}
    proc = subprocess.run(["ibv_devinfo", "-d", name, "-i", "1"], capture_output=True, text=True, timeout=60)
    info.update(parse_devinfo_mtu(proc.stdout))
    if info["netdev"]:
        mtu = _read(Path("/sys/class/net") / info["netdev"] / "mtu")
        info["netdev_mtu_bytes"] = int(mtu) if mtu else None
    return info


def ipv4_gid_index(device: dict[str, Any]) -> int | None:
    return next((g["index"] for g in device["gids"] if g["gid"].startswith(IPV4_MAPPED)), None)


def veth_tx_bytes(netdev: str | None) -> int | None:
    value = _read(Path("/sys/class/net") / netdev / "statistics" / "tx_bytes") if netdev else None
    return int(value) if value else None


def ib_write_bw(server: dict[str, Any], client: dict[str, Any], iters: int) -> dict[str, Any]:
    """One ib_write_bw run in iteration-count mode (-D reports zero under TCG), client -> server,
    through rig.rdma.perftest (the one perftest runner); the bytes must leave through the veth."""
    netdev = client.get("netdev")
    tx0 = veth_tx_bytes(netdev)
    t0 = time.monotonic()
    try:
        rep = perftest.run("write", BW_MSG_BYTES, device=client["device"], ib_port=1,
                           gid_index=ipv4_gid_index(client), peer_device=server["device"],
                           peer_gid_index=ipv4_gid_index(server), iterations=iters, timeout_s=300.0)
        result, error = {k: rep[k] for k in REPORT_KEYS}, None
    except (RuntimeError, InputError, ValueError) as exc:
        rep, result, error = {}, None, str(exc)
    tx1 = veth_tx_bytes(netdev)
    # the transfer must really have left through the veth (not short-cut over lo)
    crossed = tx0 is not None and tx1 is not None and tx1 - tx0 >= iters * BW_MSG_BYTES
    return {"netdev": netdev, "netdev_tx_bytes": (tx1 - tx0) if tx0 is not None and tx1 is not None else None,
            "ok": error is None and result is not None and crossed, "command": rep.get("command_client"),
            "error": error, "result": result, "seconds": time.monotonic() - t0,
            "cpu_total_s_per_gb": rep.get("cpu_total_s_per_gb")}


def selftest() -> dict[str, Any]:
    if importlib.util.find_spec("rig.rdma.selftest") is None:
        return {"ok": False, "detail": "not available (rig.rdma.selftest missing)"}
    proc = subprocess.run([sys.executable, "-m", "rig.rdma.selftest", "--json"], capture_output=True,
                          text=True, timeout=600)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "detail": f"exit {proc.returncode}, no JSON: {tail}"}
    tests = doc.get("tests", [])
    detail = ", ".join(f"{t.get('name')} {t.get('bytes', 0) / 2**20:g} MiB {'ok' if t.get('ok') else 'FAILED'}"
                       for t in tests) or "no tests ran"
    return {"ok": proc.returncode == 0 and bool(doc.get("ok")), "detail": detail, "document": doc}


class _Items(list):
    """The check items; each is printed to stderr the moment it is decided (the host forwards the
    guest's stderr live, so `guest check` shows progress instead of waiting for the end)."""

    def append(self, item: dict[str, Any]) -> None:
        super().append(item)
        print(f"{'PASS' if item['ok'] else 'FAIL'}  {item['name']}: {item['detail']}", file=sys.stderr, flush=True)


def probe(bw_iters: int) -> dict[str, Any]:
    t0 = time.monotonic()
    items: list[dict[str, Any]] = _Items()
    names = sorted(p.name for p in SYSFS.iterdir()) if SYSFS.exists() else []
    devices = [describe_device(n) for n in names]
    want = [rxe for rxe, _, _ in RXE_LINKS]
    by_name = {d["device"]: d for d in devices}
    for rxe, netdev, ip in RXE_LINKS:
        d = by_name.get(rxe)
        ok = bool(d and d["state"] and "ACTIVE" in d["state"] and d["netdev"] == netdev
                  and ipv4_gid_index(d) is not None)
        detail = (f"{d['state']}, netdev {d['netdev']}, active MTU {d.get('active_mtu_bytes')} B, "
                  f"IPv4 GID index {ipv4_gid_index(d)}" if d else "missing")
        items.append({"name": f"{rxe} on {netdev} ({ip})", "ok": ok, "detail": detail})
    bw: dict[str, Any] = {"ok": False}
    if all(n in by_name and ipv4_gid_index(by_name[n]) is not None for n in want):
        bw = ib_write_bw(by_name[want[1]], by_name[want[0]], bw_iters)
        r = bw["result"]
        detail = (f"{r['bw_average_gbits_per_s']:.3f} Gbit/s average, {r['bw_peak_gbits_per_s']:.3f} peak "
                  f"({bw_iters} x 1 MiB in {bw['seconds']:.1f} s; {bw['netdev_tx_bytes'] / 1e6:.1f} MB "
                  f"left through {bw['netdev']})" if r and bw["netdev_tx_bytes"] is not None else
                  f"failed: {bw['error'] or 'no result line, or the bytes did not cross the veth'}")
    else:
        detail = "skipped: the rxe devices are not both up"
    items.append({"name": f"ib_write_bw {want[0]} -> {want[1]} across the veth", "ok": bw["ok"], "detail": detail})
    st = selftest()
    items.append({"name": "pyverbs selftest (1 MiB RDMA WRITE, integrity checked)", "ok": st["ok"],
                  "detail": st["detail"]})
    return {"ok": all(i["ok"] for i in items), "kernel": Path("/proc/sys/kernel/osrelease").read_text().strip(),
            "devices": devices, "items": items, "ib_write_bw": bw, "selftest": st.get("document"),
            "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rig.guest.probe")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--bw-iters", type=int, default=50)
    args = ap.parse_args(argv)
    if args.out is None:
        if not os.environ.get("RDMARIG_GUEST_OUT"):
            ap.error("--out is needed outside `rdmarig guest check`")
        args.out = Path(os.environ["RDMARIG_GUEST_OUT"]) / "check.json"
    doc = probe(args.bw_iters)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(args.out)
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
