"""A veth pair between two network namespaces the probe creates and removes itself.

The sender lives in `rdmarig-tx-<pid>` (198.19.0.1/30), the receiver in `rdmarig-rx-<pid>`
(198.19.0.2/30): the receiver is a separate "host" as far as the network stack goes (checksums,
segmentation and the receive path run as on a real link, MTU 1500). These addresses are the only
ones the probe ever uses besides loopback.

Probe processes join a namespace with setns(2) after fork (Python 3.11 has no os.setns).
Namespaces left behind by a killed run are recognised by the dead pid in their name and removed.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scenarios.errors import InputError

TX_ADDR, RX_ADDR, PREFIX_LEN = "198.19.0.1", "198.19.0.2", 30
NS_PREFIX = "rdmarig-"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_NAME_RE = re.compile(r"^rdmarig-(tx|rx)-(\d+)$")

_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    except FileNotFoundError:
        raise InputError("the `ip` command (iproute2) is missing", "install iproute2 or use --via loopback") from None
    if check and out.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


def enter(name: str) -> None:
    """Move the calling (single-threaded, freshly forked) process into namespace `name`."""
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def list_ours() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(NS_PREFIX + "*")) if NETNS_DIR.is_dir() else []


def remove_stale() -> list[str]:
    """Delete rdmarig namespaces whose creating process is gone; returns their names."""
    removed = []
    for name in list_ours():
        m = _NAME_RE.match(name)
        if m and not Path(f"/proc/{m.group(2)}").exists():
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def offloads(interface: str, namespace: str | None = None) -> dict[str, str] | None:
    """`ethtool -k` of an interface as {feature: 'on'|'off'|'on [fixed]'...}, None where unreadable."""
    cmd = (["ip", "netns", "exec", namespace] if namespace else []) + ["ethtool", "-k", interface]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    features = {}
    for line in out.stdout.splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            features[key.strip()] = value.strip()
    return features


def mtu(interface: str, namespace: str | None = None) -> int | None:
    args = (["-n", namespace] if namespace else []) + ["-o", "link", "show", "dev", interface]
    out = _ip(*args, check=False)
    m = re.search(r"mtu (\d+)", out.stdout)
    return int(m.group(1)) if m else None


@dataclass
class VethPair:
    tx_ns: str = field(default_factory=lambda: f"{NS_PREFIX}tx-{os.getpid()}")
    rx_ns: str = field(default_factory=lambda: f"{NS_PREFIX}rx-{os.getpid()}")
    tx_dev: str = "rdmarig-tx"
    rx_dev: str = "rdmarig-rx"
    created: bool = False

    def create(self) -> "VethPair":
        if os.geteuid() != 0:
            raise InputError("creating network namespaces needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)",
                             "run as root or use --via loopback")
        remove_stale()
        self.created = True  # from here on, destroy() must run even if a step fails
        try:
            _ip("netns", "add", self.tx_ns)
            _ip("netns", "add", self.rx_ns)
            _ip("link", "add", self.tx_dev, "netns", self.tx_ns, "type", "veth",
                "peer", "name", self.rx_dev, "netns", self.rx_ns)
            for ns, dev, addr in ((self.tx_ns, self.tx_dev, TX_ADDR), (self.rx_ns, self.rx_dev, RX_ADDR)):
                _ip("-n", ns, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", dev)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", dev, "up")
        except OSError as exc:
            self.destroy()
            raise InputError(f"cannot set up the veth pair: {exc}",
                             "check that the kernel has veth and netns support, or use --via loopback") from None
        return self

    def destroy(self) -> None:
        if not self.created:
            return
        # a second Ctrl-C while deleting must not leave a namespace behind: hold signals till done
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for ns in (self.tx_ns, self.rx_ns):
                _ip("netns", "del", ns, check=False)  # deleting a namespace removes its veth end
            self.created = False
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def set_offloads(self, settings: dict[str, str]) -> None:
        """`ethtool -K` on both ends, e.g. {"tx": "off", "rx": "off", "tso": "off"}; OSError with
        ethtool's own words if it refuses (or is missing)."""
        args = [word for name, state in settings.items() for word in (name, state)]
        for ns, dev in ((self.tx_ns, self.tx_dev), (self.rx_ns, self.rx_dev)):
            try:
                out = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, *args],
                                     capture_output=True, text=True, timeout=15)
            except (OSError, subprocess.SubprocessError) as exc:
                raise OSError(f"ethtool -K {dev}: {exc}") from None
            if out.returncode != 0:
                said = (out.stderr or out.stdout).strip().splitlines()
                raise OSError(f"ethtool -K {dev} {' '.join(args)}: {said[-1] if said else f'exit {out.returncode}'}")

    def describe(self) -> dict:
        return {"tx_namespace": self.tx_ns, "rx_namespace": self.rx_ns,
                "tx_addr": TX_ADDR, "rx_addr": RX_ADDR, "mtu_bytes": mtu(self.tx_dev, self.tx_ns),
                "tx_offloads": offloads(self.tx_dev, self.tx_ns),
                "rx_offloads": offloads(self.rx_dev, self.rx_ns)}

    def __enter__(self) -> "VethPair":
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
