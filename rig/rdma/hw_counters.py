"""The RDMA devices' port counters (/sys/class/infiniband/<device>/ports/<port>/hw_counters; rxe:
packets sent and received, retransmissions, sequence errors, duplicate requests) around a run: their
deltas say whether the run's bytes crossed once or were sent again. Every device of this host is
read (a run with both ends here moves packets on both)."""

from __future__ import annotations

import os

ROOT = "/sys/class/infiniband"

Counters = dict[str, dict[str, int]]        # "device/port" -> counter -> value


def snapshot(root: str = ROOT) -> Counters:
    """Every readable counter of every device port; {} where there are none."""
    out: Counters = {}
    try:
        devices = sorted(os.listdir(root))
    except OSError:
        return out
    for device in devices:
        ports = os.path.join(root, device, "ports")
        try:
            port_names = sorted(os.listdir(ports))
        except OSError:
            continue
        for port in port_names:
            hw = os.path.join(ports, port, "hw_counters")
            values: dict[str, int] = {}
            try:
                names = sorted(os.listdir(hw))
            except OSError:
                continue
            for name in names:
                try:
                    with open(os.path.join(hw, name)) as f:
                        values[name] = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
            if values:
                out[f"{device}/{port}"] = values
    return out


def delta(before: Counters, after: Counters) -> Counters:
    """What moved between two snapshots: the nonzero differences, per port ('lifespan', rxe's
    counter refresh period in ms, is a setting, not a count, and left out)."""
    out: Counters = {}
    for port, values in after.items():
        moved = {k: v - before.get(port, {}).get(k, 0) for k, v in values.items() if k != "lifespan"}
        moved = {k: v for k, v in moved.items() if v}
        if moved:
            out[port] = moved
    return out
