"""Boot qemu, follow the guest, enforce the time limits.

Two channels. The serial console (qemu's stdout) carries the kernel's messages and the markers
init and stage2 print ("RDMARIG-GUEST: <event> ... t=<uptime s>"); it goes to console.log only.
The command's stdout and stderr are files in the shared run directory, read as they grow and
passed on byte for byte: nothing the command prints is taken for a kernel message or dropped.

Two clocks: the boot limit runs from qemu's start to `ready` (rxe set up, command about to
start); the command limit from `ready` to `done`. Either expiring kills qemu (our child, by PID).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from rig.guest.initramfs import MARKER

_MARK_RE = re.compile(r"^(\w+)(.*?)(?: t=([\d.]+))?$")
SHUTDOWN_GRACE_S = 30.0
POLL_S = 0.1        # the output files are read this often: output reaches the user within ~0.1 s
QUIET_S = 10.0      # after this long with nothing new, on_wait is told (the user is not left guessing),
QUIET_MAX_S = 60.0  # then after twice as long each time, up to this

Sink = Callable[[bytes], None]


@dataclass
class Marker:
    event: str         # kernel | userland | rxe | ready | done | poweroff | fatal | warning
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
    first_output_s: float | None = None   # host clock, since qemu started: the command's first byte
    kernel_lines: int = 0                 # console lines (not markers) while the command ran
    interrupt: KeyboardInterrupt | None = None   # Ctrl-C, or SIGTERM (rig.cli.Terminated)

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
    """A console line -> (text before the marker, marker text or None)."""
    if line.endswith(b"\r\n"):    # the serial line discipline turns \n into \r\n
        line = line[:-2] + b"\n"
    pos = line.find(MARKER.encode())
    if pos < 0:
        return line, None
    return line[:pos], line[pos + len(MARKER):].decode(errors="replace").strip()


class OutputFile:
    """A file the guest appends to (over 9p), passed on from where the last read stopped."""

    def __init__(self, path: Path, sink: Sink):
        self.fd = os.open(path, os.O_RDONLY)
        self.sink = sink

    def drain(self) -> int:
        n = 0
        while chunk := os.read(self.fd, 1 << 16):
            self.sink(chunk)
            n += len(chunk)
        return n

    def close(self) -> None:
        os.close(self.fd)


def _reader(stream, sink: queue.Queue) -> None:
    for line in iter(stream.readline, b""):
        sink.put(line)
    sink.put(None)


def boot(cmd: list[str], console_log: Path, stderr_log: Path, boot_timeout_s: float,
         command_timeout_s: float, outputs: Sequence[tuple[Path, Sink]] = (),
         on_marker: Callable[[Marker], None] = lambda _: None,
         on_wait: Callable[[str, float], None] = lambda phase, s: None, quiet_s: float = QUIET_S) -> BootResult:
    """Run qemu to the end. `outputs`: (file the guest appends to, where its bytes go).
    `on_wait(phase, seconds in that phase)` is called after `quiet_s` without a marker while booting,
    and while the command has printed nothing yet; then after 2x, 4x... that long (at most QUIET_MAX_S)."""
    t0 = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    markers: list[Marker] = []
    phase, phase_t0 = "boot", t0          # boot -> command -> shutdown
    deadline = t0 + boot_timeout_s
    last_news, waits = t0, 0
    first_output = None
    kernel_lines = 0
    status, interrupt = "", None
    ended = False                         # the console closed: qemu is exiting on its own
    files: list[OutputFile] = []
    with open(console_log, "wb") as log, open(stderr_log, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        try:
            files = [OutputFile(path, sink) for path, sink in outputs]
            while True:
                try:
                    line = lines.get(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
                except queue.Empty:
                    line = b""
                if line is None:
                    ended = True
                    break
                now = time.monotonic()
                if sum(f.drain() for f in files):
                    last_news, waits = now, 0
                    if first_output is None:
                        first_output = now - t0
                if line:
                    log.write(line)
                    log.flush()
                    tail.append(line.decode(errors="replace").rstrip())
                    text, mark = split_line(line)
                    if phase == "command" and text.strip():
                        kernel_lines += 1
                    if mark is not None:
                        marker = parse_marker(mark, now - t0)
                        markers.append(marker)
                        last_news, waits = now, 0
                        on_marker(marker)
                        if marker.event == "ready" and phase == "boot":
                            phase, phase_t0, deadline = "command", now, now + command_timeout_s
                        elif marker.event == "done":
                            phase, deadline = "shutdown", now + SHUTDOWN_GRACE_S
                quiet = phase == "boot" or (phase == "command" and first_output is None)
                if quiet and now - last_news >= min(quiet_s * 2 ** waits, QUIET_MAX_S):
                    on_wait(phase, now - phase_t0)
                    last_news, waits = now, waits + 1
                if now >= deadline:
                    status = {"boot": "boot-timeout", "command": "command-timeout"}.get(phase, "")
                    break
            for f in files:       # what the command wrote just before the guest powered off
                f.drain()
        except KeyboardInterrupt as exc:   # Ctrl-C/SIGTERM: stop the guest; the caller still collects the records
            status, interrupt = "interrupted", exc
        finally:
            if not ended:
                proc.kill()         # our own child; its PID is proc.pid
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            for f in files:
                f.close()
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
    return BootResult(status, message, markers, list(tail), proc.returncode, elapsed, first_output, kernel_lines,
                      interrupt)
