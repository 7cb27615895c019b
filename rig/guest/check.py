"""`rdmarig guest check`: boot, then let rig.guest.probe report devices, ib_write_bw and the selftest."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import rig
from rig.guest.cache import Cache
from rig.guest.run import RunOptions, RunResult, run_in_guest
from scenarios.errors import InputError

MAX_BW_ITERS = 10_000       # 1 MiB each; ~0.1 s apiece under TCG


@dataclass
class CheckResult:
    ok: bool
    run: RunResult
    probe: dict[str, Any] | None     # None: the probe wrote nothing (guest failed before it)

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {"ok": self.ok, "status": r.status, "message": r.message, "accel": r.accel,
                "accel_reason": r.accel_reason, "kernel_version": r.kernel_version,
                "console_log": str(r.console_log), "kernel_uptime_s": r.kernel_uptime_s,
                "userland_uptime_s": r.userland_uptime_s,
                "rxe_uptime_s": r.rxe_uptime_s, "ready_host_s": r.ready_host_s, "probe_s": r.command_s,
                "total_s": r.total_s, "probe": self.probe}


def run_check(cache: Cache, options: RunOptions, bw_iters: int, say: Callable[[str], None] = lambda _: None,
              on_output: Callable[[bytes], None] = lambda _: None,
              on_stderr: Callable[[bytes], None] | None = None) -> CheckResult:
    if not 1 <= bw_iters <= MAX_BW_ITERS:
        raise InputError(f"--bw-iters {bw_iters} is outside 1..{MAX_BW_ITERS}", "pass e.g. --bw-iters 50")
    package_root = Path(rig.__file__).resolve().parents[1]
    cwd = Path.cwd() if Path.cwd() != Path("/") else package_root
    path = os.environ.get("PYTHONPATH", "")
    options.env = {**options.env, "PYTHONPATH": f"{package_root}:{path}" if path else str(package_root)}
    # the probe writes check.json into $RDMARIG_GUEST_OUT, a per-run directory the host reads back
    argv = [sys.executable, "-m", "rig.guest.probe", "--bw-iters", str(bw_iters)]
    result = run_in_guest(argv, cwd, cache, options, store=None, say=say, on_output=on_output, ingest=False,
                          on_stderr=on_stderr)
    doc_path = result.run_dir / "out" / "check.json"
    try:
        probe = json.loads(doc_path.read_text())
    except (OSError, ValueError):
        probe = None
    ok = result.status == "finished" and probe is not None and bool(probe.get("ok"))
    return CheckResult(ok, result, probe)
