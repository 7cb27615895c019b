"""`rdmarig guest run`: boot the prepared guest, run one command in it, bring its records home.

Per run, a directory under <cache>/runs/ is shared read-write and mounted at the same path in the
guest. It carries the command in (argv, env, cwd: NUL-separated files, nothing on the kernel
command line) and the results out (stdout, stderr, rc, setup.log, spool/ of JSON records;
console.log is the kernel's console, written by the host).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from results.store import Store, named_spools
from rig.guest import boot as bootmod
from rig.guest import guest_stat, hostcheck, hostload, qemu, reach
from rig.guest.cache import Cache
from rig.guest.initramfs import RXE_LINKS
from rig.guest.prepare import Prepared, ensure_prepared
from scenarios.errors import InputError

EXIT_TIMEOUT = 124      # like timeout(1)
EXIT_GUEST_FAILED = 125  # the guest itself failed (boot, set-up, panic): no command exit code
KEEP_RUNS = 20
KVM_TEST_BOOT_TIMEOUT_S = 60.0
MIN_MEM_MIB = 256
MAX_TIME_S = 7 * 86400.0
ACCELS = ("auto", "tcg", "kvm")

# host environment passed into the guest: what finds the same Python, venv and packages there
_PASS_NAMES = {"PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ",
               "TERM", "COLUMNS", "NO_COLOR", "FORCE_COLOR", "PYTEST_ADDOPTS"}
_PASS_PREFIXES = ("LC_", "PYENV_", "PYTHON", "RDMARIG_")
_NOT_PASSED = {"RDMARIG_STORE", "RDMARIG_SPOOL", "PYTHONHOME"}
# set inside by the guest itself: an --env of these would cut the run off from the host
GUEST_SET = ("RDMARIG_GUEST", "RDMARIG_GUEST_ACCEL", "RDMARIG_SPOOL", "RDMARIG_GUEST_OUT", "RDMARIG_GUEST_RXE")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROOT_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")

Say = Callable[[str], None]


@dataclass
class RunOptions:
    cpus: int = 2
    mem_mib: int = 2048
    boot_timeout_s: float = 300.0
    command_timeout_s: float = 3600.0
    accel: str = "auto"            # auto | tcg | kvm
    rxe: bool = True               # set up the soft-RoCE devices before the command
    tty: bool = False              # give the command a terminal (a pty) rather than files
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    exit_code: int
    status: str                    # finished | boot-timeout | command-timeout | fatal | crashed | interrupted
    message: str
    accel: str
    accel_reason: str
    kernel_version: str
    run_dir: Path
    console_log: Path
    records_ingested: int
    store: Path | None
    userland_uptime_s: float | None     # guest clock: kernel start -> host root mounted
    rxe_uptime_s: float | None          # guest clock: kernel start -> rxe0/rxe1 ACTIVE
    ready_host_s: float | None          # host clock: qemu start -> command starts
    command_s: float | None             # host clock: command start -> command end
    total_s: float
    console_tail: list[str]
    kernel_uptime_s: float | None = None   # guest clock: kernel start -> init running
    landed_named: list[tuple[Path, int, str]] = field(default_factory=list)   # stores the command named: (store, records, why not)
    first_output_s: float | None = None    # host clock: command start -> its first output
    kernel_lines: int = 0                  # kernel console lines while the command ran (console.log)
    binds: tuple[Path, ...] = ()           # host paths bound in read-only from the host root


def guest_path(host_env: Mapping[str, str]) -> str:
    """The command's PATH inside the guest (before any --env PATH=...): the host's, plus root's sbin."""
    path = host_env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    return ":".join(path + [p for p in _ROOT_PATH if p not in path])


def guest_env(host_env: Mapping[str, str], accel: str, spool: Path, extra: Mapping[str, str],
              out: Path | None = None) -> dict[str, str]:
    """The command's environment inside the guest."""
    env = {k: v for k, v in host_env.items()
           if (k in _PASS_NAMES or k.startswith(_PASS_PREFIXES)) and k not in _NOT_PASSED}
    env["PATH"] = guest_path(host_env)
    env.setdefault("HOME", "/root")
    env["PYTHONUNBUFFERED"] = "1"   # output reaches the host console as it is printed
    env["RDMARIG_GUEST"] = "1"
    env["RDMARIG_GUEST_ACCEL"] = accel
    env["RDMARIG_SPOOL"] = str(spool)
    if out is not None:
        env["RDMARIG_GUEST_OUT"] = str(out)   # files for the host to read back after the run
    env["RDMARIG_GUEST_RXE"] = ",".join(f"{rxe}={ip}" for rxe, _, ip in RXE_LINKS)
    env.update(extra)
    return env


def write_nul_file(path: Path, items: list[str]) -> None:
    for item in items:
        if "\0" in item:
            raise InputError(f"argument or variable contains a NUL byte: {item!r}", "remove it")
    path.write_bytes(b"".join(i.encode() + b"\0" for i in items))


def read_nul_file(path: Path) -> list[str]:
    return [p.decode() for p in path.read_bytes().split(b"\0")[:-1]]


def _new_run_dir(cache: Cache) -> Path:
    cache.runs.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    run_dir = cache.runs / name
    run_dir.mkdir()
    (run_dir / "spool").mkdir()
    (run_dir / "out").mkdir()
    return run_dir


def _prune_runs(cache: Cache, keep: int = KEEP_RUNS) -> None:
    runs = sorted(p for p in cache.runs.iterdir() if p.is_dir())
    for old in runs[:-keep]:
        log = old / "console.log"
        if log.exists() and time.time() - log.stat().st_mtime < 3600:
            continue   # possibly a guest still running (another rdmarig process)
        shutil.rmtree(old, ignore_errors=True)


def _rc_from_marker(detail: str | None) -> int | None:
    m = re.match(r"rc=(\d+)", detail or "")
    return int(m.group(1)) if m else None


def _read_rc(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "rc").read_text().strip())
    except (OSError, ValueError):
        return None


def choose_accel(requested: str, cache: Cache, prepared: Prepared, say: Say) -> tuple[str, str]:
    if requested in ("tcg", "kvm"):
        return requested, "requested with --accel"
    usable, why = qemu.kvm_candidate()
    if not usable:
        return "tcg", why
    key = qemu.verdict_key(prepared.kernel_version)
    verdict = qemu.read_verdict(cache.accel_verdict, key)
    if verdict is None:
        say("KVM looks usable; test-booting the guest under KVM once (the verdict is cached)")
        test = run_in_guest(["true"], Path(prepared.cache), cache,
                            RunOptions(accel="kvm", rxe=False, boot_timeout_s=KVM_TEST_BOOT_TIMEOUT_S,
                                       command_timeout_s=30), store=None, say=lambda _: None)
        if test.status == "finished" and test.exit_code == 0:
            verdict = qemu.write_verdict(cache.accel_verdict, key, "kvm", "a KVM test boot succeeded")
        else:
            verdict = qemu.write_verdict(cache.accel_verdict, key, "tcg",
                                         f"a KVM test boot failed ({test.message})")
    return verdict["accel"], verdict["reason"]


def host_memory_mib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def check_options(options: RunOptions) -> None:
    """Every limit up front, before anything is prepared or booted (InputError names the option)."""
    defaults = RunOptions()      # always allowed, even on a smaller host
    cpus = max(os.cpu_count() or 1, defaults.cpus)
    if not 1 <= options.cpus <= cpus:
        raise InputError(f"--cpus {options.cpus} is outside 1..{cpus} (this host's CPUs)",
                         f"pass --cpus between 1 and {cpus}")
    mem = max(host_memory_mib(), defaults.mem_mib)
    if not MIN_MEM_MIB <= options.mem_mib <= mem:
        raise InputError(f"--mem {options.mem_mib} MiB is outside {MIN_MEM_MIB} MiB..{mem} MiB (this host's memory)",
                         "pass e.g. --mem 2GiB")
    for flag, seconds in (("--boot-timeout", options.boot_timeout_s), ("--timeout", options.command_timeout_s)):
        if not 1.0 <= seconds <= MAX_TIME_S:
            raise InputError(f"{flag} {seconds:g} s is outside 1 s..{MAX_TIME_S / 86400:.0f} days",
                             f"pass e.g. {flag} 20min")
    if options.accel not in ACCELS:
        raise InputError(f"--accel must be auto, tcg or kvm, not {options.accel!r}", "pass --accel auto")
    if options.accel == "kvm":
        usable, why = qemu.kvm_candidate()
        if not usable:
            raise InputError(f"--accel kvm: {why} here", "pass --accel tcg (or auto)")
    for key in options.env:
        if not _ENV_NAME.match(key):
            raise InputError(f"--env {key!r}: not a variable name", "use letters, digits and _, e.g. --env FOO=bar")
        if key in GUEST_SET:
            raise InputError(f"--env {key}: the guest sets {key} itself", f"drop --env {key}")


def run_in_guest(argv: list[str], cwd: Path, cache: Cache, options: RunOptions, store: Path | None,
                 say: Say = lambda _: None, on_output: Callable[[bytes], None] = lambda _: None,
                 ingest: bool = True, on_stderr: Callable[[bytes], None] | None = None) -> RunResult:
    """Boot, run `argv` in `cwd` (shared read-write), ingest spooled records into `store`.

    The command's output goes to `on_output` as it is produced (bytes, not necessarily whole lines);
    its stderr to `on_stderr`, or, if that is None, into `on_output` in the order it was written."""
    t0 = time.monotonic()
    check_options(options)
    if not argv:
        raise InputError("no command given", "put the command after --, e.g. `rdmarig guest run -- true`")
    cwd = cwd.resolve()
    if cwd == Path("/"):
        raise InputError("the working directory is /, which cannot be shared read-write",
                         "cd into the project directory first")
    qemu.check_share_path(cwd, "the working directory")
    qemu.check_share_path(cache.root, "the cache directory")
    reached = reach.plan(argv, cwd, [cwd, cache.runs], options.env.get("PATH") or guest_path(os.environ),
                         {**os.environ, **options.env})
    binary = hostcheck.qemu_binary()
    prepared = ensure_prepared(cache, say)
    accel, accel_reason = choose_accel(options.accel, cache, prepared, say)
    run_dir = _new_run_dir(cache)
    spool = run_dir / "spool"
    write_nul_file(run_dir / "argv", list(argv))
    env = guest_env(os.environ, accel, spool, options.env, out=run_dir / "out")
    write_nul_file(run_dir / "env", [f"{k}={v}" for k, v in env.items()])
    (run_dir / "cwd").write_text(str(cwd))
    (run_dir / "rxe").write_text("on" if options.rxe else "off")
    streams = "tty" if options.tty else "split" if on_stderr is not None else "merged"
    (run_dir / "streams").write_text(streams)
    outputs = [(run_dir / "stdout", on_output)] + ([(run_dir / "stderr", on_stderr)] if streams == "split" else [])
    for name in ("stdout", "stderr"):
        (run_dir / name).touch()
    shares = [qemu.Share("hostroot", Path("/"), True),
              qemu.Share("kmods", cache.kernel_root / "lib" / "modules", True),
              qemu.Share("run", run_dir, False),
              qemu.Share("project", cwd, False)]
    cmd = qemu.command(binary, accel, options.cpus, options.mem_mib, Path(prepared.boot_kernel),
                       Path(prepared.initramfs), shares, binds=reached.binds)
    (run_dir / "qemu.cmd").write_text(" ".join(cmd) + "\n")
    if reached.binds:
        say(f"bound read-only from the host's root (a venv, or under the guest's own /tmp, /run, /dev/shm): "
            f"{', '.join(map(str, reached.binds))}")
    for path in reached.not_shared:
        say(f"note: {path} is outside {cwd}, the only directory shared read-write: "
            "the command cannot write it on the host")
    say(f"booting kernel {prepared.kernel_version} under {accel.upper()} ({accel_reason}); "
        f"{options.cpus} CPUs, {options.mem_mib} MiB")
    steps = {"": "qemu started", "kernel": "kernel up", "userland": "host root mounted", "rxe": "rxe up"}
    last = [""]

    def on_marker(m: bootmod.Marker) -> None:
        last[0] = m.event
        if m.event == "kernel":
            say(f"kernel up, init running at {m.uptime_s:.1f} s (guest clock); mounting the host root")
        elif m.event == "userland":
            say(f"host root mounted after {m.uptime_s:.1f} s (guest clock); setting up soft-RoCE"
                if options.rxe else f"host root mounted after {m.uptime_s:.1f} s (guest clock)")
        elif m.event == "rxe":
            say(f"rxe0/rxe1 ACTIVE on veth0/veth1 after {m.uptime_s:.1f} s (guest clock)")
        elif m.event == "ready":
            say(f"running: {shlex.join(argv)}")
        if m.event in ("ready", "done"):
            sampler.take()      # the vCPUs' time as the command starts and after its last record

    def on_wait(phase: str, seconds: float) -> None:
        if phase == "boot":
            say(f"still booting after {seconds:.0f} s (last step: {steps.get(last[0], last[0])})")
        else:
            say(f"the command has printed nothing yet after {seconds:.0f} s")

    sampler = hostload.HostSampler().start()
    try:
        result = bootmod.boot(cmd, run_dir / "console.log", run_dir / "qemu.stderr", options.boot_timeout_s,
                              options.command_timeout_s, outputs, on_marker, on_wait)
    finally:
        sampler.stop()
    rc = _read_rc(run_dir)
    if rc is None:   # the rc file is the record; the console marker ("done rc=N") the fallback
        rc = _rc_from_marker(result.detail("done"))
    if result.status == "finished":
        exit_code = rc if rc is not None else EXIT_GUEST_FAILED
    elif result.status == "command-timeout":
        exit_code = EXIT_TIMEOUT
    elif result.status == "interrupted":
        from rig.cli import interrupt_exit_code     # 130 for Ctrl-C, 143 for SIGTERM

        exit_code = interrupt_exit_code(result.interrupt)
    else:
        exit_code = EXIT_GUEST_FAILED
    if result.status in ("fatal", "crashed") and (run_dir / "qemu.stderr").stat().st_size:
        qemu_err = (run_dir / "qemu.stderr").read_text(errors="replace").strip().splitlines()
        if qemu_err and result.qemu_returncode not in (0, None):
            result.message += f"; qemu: {qemu_err[-1]}"
    ingested = 0
    store_path = None
    landed_named: list[tuple[Path, int, str]] = []
    # the run's store (`guest run --store`) takes what the command stored by default; a store the
    # command named itself (`--store PATH` inside) takes its own records, at the same path here
    targets = [(spool, store)] if ingest and any(spool.glob("*.json")) else []
    targets += [(d, named) for d, named in named_spools(spool) if ingest and any(d.glob("*.json"))]
    for source, _ in targets:      # each record says how busy the host was, and how much was stolen
        hostload.annotate_spool(source, sampler.samples, sampler.samples[0][0] if sampler.samples else time.time(),
                                sampler.vcpu_samples, guest_stat.read_samples(run_dir / "out"))
    for source, target in targets:
        try:
            with Store(target) as st:
                st.spool = None   # this process writes to SQLite even if it runs under a spool itself
                n = len(st.ingest_spool(source))
                if source == spool:
                    ingested, store_path = n, st.path
                else:
                    landed_named.append((st.path, n, ""))
        except InputError as exc:
            if source != spool:        # a store named inside the guest that this host cannot open
                landed_named.append((Path(target), 0, f"its records wait in {source}: {exc.cause}"))
                continue
            raise InputError(exc.cause, f"{exc.fix}; the command's records wait in {source} "
                             "(results.store.Store(PATH).ingest_spool(DIR) takes them)") from None
    _prune_runs(cache)

    def uptime(event: str) -> float | None:
        return next((m.uptime_s for m in result.markers if m.event == event), None)

    ready, done = result.host_time("ready"), result.host_time("done")
    return RunResult(exit_code=exit_code, status=result.status, message=result.message, accel=accel,
                     accel_reason=accel_reason, kernel_version=prepared.kernel_version, run_dir=run_dir,
                     console_log=run_dir / "console.log", records_ingested=ingested, store=store_path,
                     landed_named=landed_named,
                     userland_uptime_s=uptime("userland"), rxe_uptime_s=uptime("rxe"), ready_host_s=ready,
                     command_s=(done - ready) if (ready is not None and done is not None) else None,
                     total_s=time.monotonic() - t0, console_tail=result.console_tail,
                     kernel_uptime_s=uptime("kernel"),
                     first_output_s=(result.first_output_s - ready)
                     if (ready is not None and result.first_output_s is not None) else None,
                     kernel_lines=result.kernel_lines, binds=reached.binds)
