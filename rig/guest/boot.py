"""Boot qemu, follow the serial console, enforce the time limits.

The console carries three things: kernel/boot chatter (kept in the log only), the command's output
(between the `ready` and `done` markers, passed on live) and the markers themselves. Two clocks:
the boot limit runs from qemu's start to `ready` (rxe set up, command about to start); the command
limit from `ready` to `done`. Either expiring kills qemu (our child, by PID).
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rig.guest.initramfs import MARKER

_KERNEL_LINE = re.compile(rb"^\[\s*\d+\.\d+\] ")
_MARK_RE = re.compile(r"^(\w+)(.*?)(?: t=([\d.]+))?$")
SHUTDOWN_GRACE_S = 30.0


@dataclass
class Marker:
    event: str         # userland | rxe | ready | done | poweroff | fatal | warning
    detail: str
    uptime_s: float | None
    host_s: float      # seconds since qemu started, on the host clock


@dataclass
class BootResult:
    status: str                 # finished | boot-timeout | command-timeout | fatal | crashed | interrupted
    message: str
    markers: list[Marker] = field(default_factory=list)
    console_tail: list[str] = field(default_factory=list)
    qemu_returncode: int | None = None
    seconds: float = 0.0

    def host_time(self, event: str) -> float | None:
        return next((m.host_s for m in self.markers if m.event == event), None)

    def detail(self, event: str) -> str | None:
        return next((m.detail for m in self.markers if m.event == event), None)


def parse_marker(text: str, host_s: float) -> Marker:
    m = _MARK_RE.match(text.strip())
    if not m:
        return Marker("unknown", text.strip(), None, host_s)
    return Marker(m.group(1), m.group(2).strip(), float(m.group(3)) if m.group(3) else None, host_s)


def split_line(line: bytes) -> tuple[bytes, str | None]:
    """A console line -> (output part, marker text or None). Output before a marker is kept."""
    if line.endswith(b"\r\n"):    # the serial line discipline turns \n into \r\n
        line = line[:-2] + b"\n"
    pos = line.find(MARKER.encode())
    if pos < 0:
        return line, None
    return line[:pos], line[pos + len(MARKER):].decode(errors="replace").strip()


def _reader(stream, sink: queue.Queue) -> None:
    for line in iter(stream.readline, b""):
        sink.put(line)
    sink.put(None)


def boot(cmd: list[str], console_log: Path, stderr_log: Path, boot_timeout_s: float,
         command_timeout_s: float, on_output: Callable[[bytes], None] = lambda _: None,
         on_marker: Callable[[Marker], None] = lambda _: None) -> BootResult:
    t0 = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    markers: list[Marker] = []
    phase = "boot"                      # boot -> command -> shutdown
    deadline = t0 + boot_timeout_s
    status = ""
    with open(console_log, "wb") as log, open(stderr_log, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                except queue.Empty:
                    line = b""
                if line is None:
                    break
                if line:
                    log.write(line)
                    log.flush()
                    tail.append(line.decode(errors="replace").rstrip())
                    out, mark = split_line(line)
                    if phase == "command" and out and not _KERNEL_LINE.match(out):
                        on_output(out)
                    if mark is not None:
                        marker = parse_marker(mark, time.monotonic() - t0)
                        markers.append(marker)
                        on_marker(marker)
                        if marker.event == "ready" and phase == "boot":
                            phase, deadline = "command", time.monotonic() + command_timeout_s
                        elif marker.event == "done":
                            phase, deadline = "shutdown", time.monotonic() + SHUTDOWN_GRACE_S
                if time.monotonic() >= deadline:
                    if phase == "boot":
                        status = "boot-timeout"
                    elif phase == "command":
                        status = "command-timeout"
                    proc.kill()         # our own child; its PID is proc.pid
                    break
        except KeyboardInterrupt:   # Ctrl-C: stop the guest; the caller still collects the records
            status = "interrupted"
            proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    elapsed = time.monotonic() - t0
    fatal = next((m for m in markers if m.event == "fatal"), None)
    done = next((m for m in markers if m.event == "done"), None)
    panic = next((t for t in tail if "Kernel panic" in t), None)
    if status == "interrupted":
        message = "interrupted; qemu killed"
    elif status == "boot-timeout":
        message = f"the guest was not ready within {boot_timeout_s:.0f} s; qemu killed"
    elif status == "command-timeout":
        message = f"the command did not finish within {command_timeout_s:.0f} s; qemu killed"
    elif done is not None:
        status, message = "finished", f"command finished ({done.detail})"
    elif fatal is not None:
        status, message = "fatal", f"guest failed: {fatal.detail}"
    elif panic is not None:
        status, message = "crashed", f"guest kernel panic: {panic.strip()}"
    else:
        status = "crashed"
        message = f"the guest stopped before the command finished (qemu exit code {proc.returncode})"
    return BootResult(status, message, markers, list(tail), proc.returncode, elapsed)
