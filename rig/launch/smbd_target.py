"""The far end of an SMB Direct run: what `rdmarig serve smbd` runs for each client (a session),
over any Conversation, and the server that accepts clients.

Why processes: pyverbs holds the GIL in every verbs call (its qp and cq modules never release
it), and soft-RoCE does the data movement of an RDMA WRITE inside ibv_post_send, so serving
threads of one process would take turns, not serve N connections at once. Each connection
therefore gets a serving process of its own (forked, single-threaded: its serving thread plus
the io-wq workers its io_uring starts), and its CPU is its own rusage: the serving thread's
(RUSAGE_THREAD) and the rest of the process's (RUSAGE_SELF less that: the io-wq workers, counted
even once they exited).

A session (a process forked per client by `SmbdServer`, or run in place by a launcher):
    C: hello {kind: "smbd", op, io_size_bytes, connections, copy, register, credits, in_flight,
              async_workers, blocks, run_seconds_max, endpoint (one QP per connection)}
    S: ready {endpoint (the serving QPs), file_bytes, blocks, block_crc32 (READ), buffers, boot_id}
    C: start    C: tick ...    C: stop
    S: done {cpu, cpu_accounting, boot_id, connections: [outcome, counters], written_crc32 (WRITE)}
The session forks one serving process per connection (each builds its Player, connects its QP
to the client's, answers `ready`), relays start and stop, counts the host's CPU between them
(rig.accounting.CpuWindow, scope "given": the serving processes' rusage) and kills whatever is
left when it ends. Every phase is bounded by the server's own limits (rig.launch.target.Limits).
"""

from __future__ import annotations

import base64
import os
import select
import signal
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from rig.flows import smbd
from rig.flows.smbd_serving import COPY_VARIANTS, REGISTER_MODES, ServeSpec
from rig.launch.conversation import Conversation, TcpConversation
from rig.launch.target import Limits, TargetSession
from rig.rdma.handshake import MAX_RUN_SECONDS, PeerGone, ProtocolError, validate_endpoint
from rig.rdma.handshake import field_int
from rig.rdma.server import ACCEPT_POLL_S, DEFAULT_CONCURRENT, answer_busy, session_line
from scenarios.errors import InputError

DEFAULT_PORT = 18521           # `rdmarig serve smbd` (18520 is `rdmarig serve` for verbs)
MAX_CONNECTIONS = 64
MAX_BLOCKS = 8192              # blocks whose checksums travel in one message (base64 of 4 bytes each)
MAX_IO_BYTES = smbd.MAX_READ_WRITE_LIMIT
MAX_WRITE_SPAN_BYTES = 4 << 30  # the most a client may grow the file by writing
BUFFER_BUDGET_BYTES = 32 << 20  # bounce buffers per serving connection
MAX_BUFFERS = 64
CHILD_ANSWER_S = 60.0          # a serving process's answer (device, registrations under emulation)
POLL_S = 0.02
# the longest a session sleeps between two looks at its client and serving processes when no socket
# has anything to say: it wakes at once when one has (polling every POLL_S instead cost the session
# ~10 % of a vCPU under TCG, 2026-12-01 py-spy/ps in the guest: CPU the serving processes lost)
WATCH_S = 0.25


# ---- checksums of file blocks -------------------------------------------------------------------

def block_crcs(fd: int, io_size: int, blocks: int, file_size: int) -> list[int]:
    """CRC-32 of each `io_size` block (the last one as long as the file holds) of the first `blocks`."""
    out = []
    for b in range(blocks):
        offset = b * io_size
        n = max(0, min(io_size, file_size - offset))
        out.append(zlib.crc32(os.pread(fd, n, offset)) if n else 0)
    return out


def pack_crcs(crcs: list[int]) -> str:
    return base64.b64encode(struct.pack(f"<{len(crcs)}I", *crcs)).decode()


def unpack_crcs(text: Any, count: int) -> list[int]:
    if not isinstance(text, str):
        raise ProtocolError("checksums must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError("checksums are not base64") from None
    if len(raw) != 4 * count:
        raise ProtocolError(f"{len(raw) // 4} checksums for {count} blocks")
    return list(struct.unpack(f"<{count}I", raw))


def read_blocks(file_size: int, io_size: int) -> int:
    """Blocks a READ run cycles over: the whole file (its tail a short block), at most MAX_BLOCKS."""
    return max(1, min(MAX_BLOCKS, -(-file_size // io_size)))


def buffers_for(io_size: int, in_flight: int) -> int:
    """Bounce buffers of one serving connection: enough for the client's I/Os in flight, within
    the memory budget."""
    return max(1, min(in_flight, MAX_BUFFERS, BUFFER_BUDGET_BYTES // io_size))


# ---- the hello ----------------------------------------------------------------------------------

def validate_hello(msg: dict[str, Any]) -> dict[str, Any]:
    """The checked fields of an SMB Direct hello, or ProtocolError naming the bad one."""
    if msg.get("kind") != "smbd":
        raise ProtocolError("this is `rdmarig serve smbd`: the hello must have kind 'smbd' "
                            "(`rdmarig measure verbs --peer` talks to `rdmarig serve`)")
    op, copy, register = msg.get("op"), msg.get("copy"), msg.get("register")
    if op not in ("read", "write"):
        raise ProtocolError(f"field 'op' must be 'read' or 'write', got {op!r}")
    if copy not in COPY_VARIANTS:
        raise ProtocolError(f"field 'copy' must be one of {COPY_VARIANTS}, got {copy!r}")
    if register not in REGISTER_MODES:
        raise ProtocolError(f"field 'register' must be one of {REGISTER_MODES}, got {register!r}")
    if op == "write" and copy == "zero-copy":
        raise ProtocolError("zero-copy serves READ only (the file mapping is read-only)")
    hello = {"op": op, "copy": copy, "register": register,
             "io_size_bytes": field_int(msg, "io_size_bytes", 1, MAX_IO_BYTES),
             "connections": field_int(msg, "connections", 1, MAX_CONNECTIONS),
             "credits": field_int(msg, "credits", 1, smbd.RECEIVE_CREDIT_MAX),
             "in_flight": field_int(msg, "in_flight", 1, smbd.RECEIVE_CREDIT_MAX),
             "async_workers": field_int(msg, "async_workers", 0, 1024),
             "blocks": field_int(msg, "blocks", 1, MAX_BLOCKS)}
    if hello["in_flight"] > hello["credits"]:
        raise ProtocolError("field 'in_flight' exceeds 'credits'")
    if op == "write" and hello["blocks"] * hello["io_size_bytes"] > MAX_WRITE_SPAN_BYTES:
        raise ProtocolError(f"writing {hello['blocks']} blocks of {hello['io_size_bytes']} bytes would grow the "
                            f"file past {MAX_WRITE_SPAN_BYTES} bytes")
    run = msg.get("run_seconds_max")
    if not isinstance(run, (int, float)) or isinstance(run, bool) or not 0 < run <= MAX_RUN_SECONDS:
        raise ProtocolError(f"field 'run_seconds_max' must be a number in (0, {MAX_RUN_SECONDS:g}]")
    hello["run_seconds_max"] = float(run)
    hello["endpoint"] = validate_endpoint(msg.get("endpoint"), hello["connections"])
    return hello


def endpoint_of(remote: dict[str, Any], i: int) -> dict[str, Any]:
    """QP `i` of a multi-QP endpoint, as the endpoint of a one-QP player."""
    return {**remote, "qpns": [remote["qpns"][i]], "psns": [remote["psns"][i]]}


@dataclass(frozen=True)
class ServedFile:
    path: str
    allow_write: bool = False
    limits: smbd.Limits = smbd.Limits()


@dataclass(frozen=True)
class Where:
    """The RDMA port the serving processes use, and the CPUs they are pinned to: connection i's
    process to serving_cpus[i % len] (empty: wherever the scheduler puts them)."""

    device: str | None = None
    ib_port: int | None = None
    gid_index: int | None = None
    serving_cpus: tuple[int, ...] = ()


def parse_cpus(text: str, flag: str = "--serving-cpus") -> tuple[int, ...]:
    """A CPU list as taskset and fio's cpus_allowed write it (0,1 or 0-3,8), in the order given;
    every CPU one this process may run on."""
    from scenarios.errors import InputError
    allowed = os.sched_getaffinity(0)
    have = _cpu_ranges(sorted(allowed))
    out: list[int] = []
    for part in (x.strip() for x in text.split(",")):
        try:
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise InputError(f"{flag} {text!r}: {part!r} is not a CPU number or range",
                             f"write CPUs as 0,1 or 0-3 (this machine's: {have})") from None
        if first < 0 or last < first:
            raise InputError(f"{flag} {text!r}: {part!r} is not a CPU range", f"write it low-high, e.g. {have}")
        for cpu in range(first, last + 1):
            if cpu not in allowed:
                raise InputError(f"{flag} {text!r}: CPU {cpu} is not one this process may run on",
                                 f"name CPUs of {have}")
            out.append(cpu)
    return tuple(out)


def _cpu_ranges(cpus: list[int]) -> str:
    runs: list[list[int]] = []
    for c in cpus:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


# ---- one serving process --------------------------------------------------------------------

def serve_connection(ctrl: TcpConversation, hello: dict[str, Any], index: int, served: ServedFile, where: Where,
                     limits: Limits, file_size: int) -> None:
    """The body of a serving process: build, connect, answer ready; serve between start and
    stop; answer done with its CPU and counters. Raises only what ends the process anyway."""
    from rig import accounting as acct
    from rig.flows.smbd_serving import CpuCopy, Serving
    from rig.rdma.completions import CompletionError, PollTimeout
    from rig.rdma.devices import discover
    from rig.rdma.player import EventPlayer, PlayerConfig

    if where.serving_cpus:
        os.sched_setaffinity(0, {where.serving_cpus[index % len(where.serving_cpus)]})
    spec = ServeSpec(op=hello["op"], copy=hello["copy"], register=hello["register"], io_size=hello["io_size_bytes"],
                     buffers=buffers_for(hello["io_size_bytes"], hello["in_flight"]),
                     async_workers=hello["async_workers"], limits=served.limits, timeout_s=limits.silence_s)
    port = discover(where.device, where.ib_port, where.gid_index)
    cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=spec.tx_depth(), rx_depth=spec.recv_slots())
    player = EventPlayer(port, cfg)
    player.connect(endpoint_of(hello["endpoint"], index))
    fd = os.open(served.path, os.O_RDWR if hello["op"] == "write" else os.O_RDONLY)
    serving = Serving(player, spec, fd, file_size)
    ctrl.send({"type": "ready", "endpoint": player.endpoint()})
    ctrl.recv(limits.start_s, "start")
    thread0, process0, t0 = acct.Rusage.thread(), acct.Rusage.now(), time.perf_counter()
    switches0 = acct.own_switches("thread")

    def should_stop() -> bool:
        msg = ctrl.poll()            # PeerGone when the session is gone: the process ends
        return msg is not None and msg["type"] == "stop"

    outcome = "stopped"
    try:
        serving.negotiate()
        outcome = serving.run(should_stop, limits.run_limit(hello["run_seconds_max"]), (ctrl.sock.fileno(),))
    except smbd.Terminate as exc:
        outcome = f"terminated: {exc}"
    except (CompletionError, PollTimeout) as exc:
        outcome = f"failed: {exc}"
    thread, process = acct.Rusage.thread() - thread0, acct.Rusage.now() - process0
    switches = acct.own_switches("thread")
    negotiated = serving.params.as_params() if serving.params else {}
    waiter = getattr(serving, "waiter", None)
    counters = {**serving.counters.as_dict(), "sleeps": waiter.sleeps if waiter else 0,
                "idle_turns": waiter.idle_turns if waiter else 0, "turns": serving.turns,
                "copy_cpu_ns": serving.engine.cpu_ns if isinstance(serving.engine, CpuCopy) else 0,
                "woken_by_events": bool(waiter and waiter.events)}
    placed = {"cpus": sorted(os.sched_getaffinity(0))} if where.serving_cpus else {}
    ctrl.send({"type": "done", "outcome": outcome, "counters": counters, "negotiated": negotiated, **placed,
               "credits_granted": serving.params.credits_requested if serving.params else 0,
               "cpu": {"thread_user_s": thread.user_s, "thread_system_s": thread.system_s,
                       "process_user_s": process.user_s, "process_system_s": process.system_s,
                       "thread_voluntary_switches": switches[0] - switches0[0],
                       "thread_involuntary_switches": switches[1] - switches0[1],
                       "wall_s": time.perf_counter() - t0}})


def _child(run: Callable[[], None]) -> int:
    """Fork a process that runs `run` and exits (never returning into the caller's code)."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        run()
    except BaseException:            # noqa: BLE001 - a child ends here whatever happened
        code = 1
    finally:
        os._exit(code)


@dataclass
class Child:
    pid: int
    conv: TcpConversation
    answer: dict[str, Any] | None = None      # its done (or error)


# ---- the session ----------------------------------------------------------------------------

class SmbdSession(TargetSession):
    """One client's run (see the module docstring); `run()` never raises for anything the client,
    a serving process or the device does, and ends every serving process it forked."""

    validate = staticmethod(validate_hello)

    def __init__(self, conv: Conversation, served: ServedFile, where: Where = Where(), limits: Limits = Limits()):
        super().__init__(conv, limits, where.device, where.ib_port, where.gid_index)
        self.served, self.where = served, where
        self.children: list[Child] = []

    def run(self) -> dict[str, Any]:
        try:
            outcome = super().run()
            early = [f"connection {i}: {c.answer.get('outcome')}" for i, c in enumerate(self.children)
                     if c.answer is not None and c.answer.get("outcome") != "stopped"]
            if early and outcome.get("result") != "ok":      # why the client stopped hearing from us
                outcome["error"] = "; ".join([outcome.get("error", "")] + early).lstrip("; ")
            return outcome
        finally:
            self._end_children()

    def _serve(self, hello: dict[str, Any]) -> dict[str, Any]:
        from rig import accounting as acct
        write = hello["op"] == "write"
        if write and not self.served.allow_write:
            raise ProtocolError(f"this server serves {self.served.path} read-only: start it with --allow-write "
                                "to measure WRITE")
        if hello["io_size_bytes"] > self.served.limits.max_read_write_size:
            raise ProtocolError(f"I/O size {hello['io_size_bytes']} exceeds this server's max read/write size "
                                f"{self.served.limits.max_read_write_size}")
        fd = os.open(self.served.path, os.O_RDONLY)
        try:
            file_size = os.fstat(fd).st_size
            if not write and file_size == 0:
                raise ProtocolError(f"{self.served.path} is empty: nothing to read")
            blocks = hello["blocks"] if write else read_blocks(file_size, hello["io_size_bytes"])
            crcs = [] if write else block_crcs(fd, hello["io_size_bytes"], blocks, file_size)   # warms the cache too
        finally:
            os.close(fd)
        for i in range(hello["connections"]):
            self._spawn(hello, i, file_size)
        endpoints = [self._answer(child, "ready")["endpoint"] for child in self.children]
        endpoint = {**endpoints[0], "qpns": [e["qpns"][0] for e in endpoints],
                    "psns": [e["psns"][0] for e in endpoints],
                    "max_dest_rd_atomic": min(e["max_dest_rd_atomic"] for e in endpoints)}
        ready = {"type": "ready", "endpoint": endpoint, "boot_id": acct.boot_id(), "file_bytes": file_size,
                 "blocks": blocks, "buffers": buffers_for(hello["io_size_bytes"], hello["in_flight"]),
                 "async_workers": hello["async_workers"] if hello["copy"] == "async-workers" else 0}
        if crcs:
            ready["block_crc32"] = pack_crcs(crcs)
        self.conv.send(ready)
        self.conv.recv(self.limits.start_s, "start")
        window = acct.CpuWindow(scope="given", busy=True).start()
        for child in self.children:
            child.conv.send({"type": "start"})
        self._until_stop(self.limits.run_limit(hello["run_seconds_max"]), self._watch_children)
        for child in self.children:
            if child.answer is None:
                try:
                    child.conv.send({"type": "stop"})
                except PeerGone:
                    pass
        answers = [self._answer(child, "done", required=False) for child in self.children]
        cpu = self._cpu(window, answers)
        done: dict[str, Any] = {"type": "done", "cpu": cpu, "cpu_accounting": window.note(), "boot_id": acct.boot_id(),
                                "connections": [{"outcome": a.get("outcome", a.get("error", "no answer")),
                                                 "counters": a.get("counters", {}),
                                                 "negotiated": a.get("negotiated", {}),
                                                 "credits_granted": a.get("credits_granted", 0),
                                                 **({"cpus": a["cpus"]} if "cpus" in a else {})}
                                                for a in answers]}
        if write:
            fd = os.open(self.served.path, os.O_RDONLY)
            try:
                done["written_crc32"] = pack_crcs(block_crcs(fd, hello["io_size_bytes"], blocks, os.fstat(fd).st_size))
            finally:
                os.close(fd)
        self.conv.send(done)
        return {"result": "ok", "op": hello["op"], "copy": hello["copy"], "io_size_bytes": hello["io_size_bytes"],
                "connections": [c["outcome"] for c in done["connections"]]}

    def _spawn(self, hello: dict[str, Any], index: int, file_size: int) -> None:
        mine, theirs = socket.socketpair()
        client_sock = getattr(self.conv, "sock", None)

        def run() -> None:
            mine.close()
            if client_sock is not None:
                client_sock.close()      # the client sees the session end, not a serving process's copy
            ctrl = TcpConversation(theirs)
            try:
                serve_connection(ctrl, hello, index, self.served, self.where, self.limits, file_size)
            except (PeerGone, ProtocolError):
                raise
            except Exception as exc:     # noqa: BLE001 - told to the session, then the process ends
                try:
                    ctrl.send({"type": "error", "error": f"connection {index}: {exc.__class__.__name__}: {exc}"})
                except (PeerGone, ProtocolError):
                    pass
                raise
        pid = _child(run)
        theirs.close()
        self.children.append(Child(pid, TcpConversation(mine)))

    def _answer(self, child: Child, kind: str, required: bool = True) -> dict[str, Any]:
        """The child's `kind` message (ready/done) within its limit; an error message or silence
        is the session's error when `required`, else an answer saying so."""
        if child.answer is not None and kind == "done":
            return child.answer
        try:
            msg = child.conv.recv(CHILD_ANSWER_S if kind == "ready" else self.limits.silence_s + 30, (kind, "error"))
        except (PeerGone, ProtocolError) as exc:
            if required:
                raise PeerGone(f"serving process {child.pid} did not answer: {exc}") from None
            return {"outcome": f"no answer: {exc}"}
        if msg["type"] == "error":
            if required:
                raise ProtocolError(msg.get("error", "a serving process failed"))
            return {"outcome": f"failed: {msg.get('error')}"}
        return msg

    def _watch_children(self) -> None:
        """Between two looks at the client: a serving process that ended early (the protocol
        terminated its connection) keeps its answer for done."""
        for child in self.children:
            if child.answer is None:
                try:
                    early = child.conv.poll()
                except (PeerGone, ProtocolError) as exc:
                    early = {"type": "done", "outcome": f"serving process ended: {exc}"}
                if early is not None:
                    child.answer = early if early["type"] == "done" else {"outcome": f"failed: {early.get('error')}"}
        self._wait_for_messages()

    def _wait_for_messages(self) -> None:
        """Sleep until the client or a serving process still running has something to say, at most
        WATCH_S; a conversation without a socket (MPI's) is looked at every POLL_S instead."""
        convs = [self.conv] + [c.conv for c in self.children if c.answer is None]
        socks = [getattr(c, "sock", None) for c in convs]
        if any(s is None for s in socks):
            time.sleep(POLL_S)
            return
        if any(b"\n" in getattr(getattr(c, "reader", None), "buf", b"") for c in convs):
            return                  # a whole message is read already: no socket would say so
        select.select(socks, [], [], WATCH_S)

    def _cpu(self, window: Any, answers: list[dict[str, Any]]) -> dict[str, float]:
        """The server's CPU: the host window over the serving processes' rusage, split into the
        serving threads (user, system less the softirq served inside them), the io-wq workers,
        softirq and rxe's kworkers."""
        from rig import accounting as acct
        cpus = [a["cpu"] for a in answers if isinstance(a.get("cpu"), dict)]
        thread_user = sum(c["thread_user_s"] for c in cpus)
        thread_system = sum(c["thread_system_s"] for c in cpus)
        process = acct.Rusage(sum(c["process_user_s"] for c in cpus), sum(c["process_system_s"] for c in cpus))
        out = {k: v for k, v in window.stop(process).items() if isinstance(v, (int, float)) and v == v}
        out["serving_user_s"] = thread_user
        out["serving_system_raw_s"] = thread_system
        out["serving_system_s"] = max(0.0, thread_system - out.get("softirq_in_process_s", 0.0))
        out["workers_s"] = max(0.0, process.user_s + process.system_s - thread_user - thread_system)
        out["serving_processes"] = len(cpus)
        for kind in ("voluntary", "involuntary"):
            counts = [c.get(f"thread_{kind}_switches") for c in cpus]
            if counts and all(isinstance(n, int) for n in counts):
                out[f"serving_{kind}_switches"] = sum(counts)
        return out

    def _end_children(self) -> None:
        for child in self.children:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            child.conv.sock.close()
        self.children = []


# ---- the server ---------------------------------------------------------------------------------



class SmbdServer:
    """Accepts clients and forks a session process for each (its own process group: ended with
    every serving process it forked when the server stops). At most `max_concurrent` at once;
    one more client is answered "busy". The server process itself never touches the device."""

    def __init__(self, bind: str, port: int, served: ServedFile, where: Where = Where(),
                 log: Callable[[str], None] | None = None, limits: Limits = Limits(),
                 max_concurrent: int = DEFAULT_CONCURRENT):
        from rig.rdma.server import listen
        check_file(served.path, served.allow_write)
        self.sock = listen(bind, port, max_concurrent)
        self.address = self.sock.getsockname()[:2]
        self.served, self.where, self.limits, self.max_concurrent = served, where, limits, max_concurrent
        self.log = log or (lambda s: None)
        self.active: dict[int, tuple[str, int]] = {}      # session pid -> (peer, pipe to read its outcome)
        self.sessions: list[dict[str, Any]] = []
        self.accepted = 0

    def close(self) -> None:
        self.sock.close()
        for pid in list(self.active):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.reap(block=True)

    def serve(self, max_sessions: int | None = None, alive: Callable[[], bool] = lambda: True) -> None:
        """Accept clients until `max_sessions` were accepted (then wait for them) or `alive()`
        turns false."""
        preload()
        while (max_sessions is None or self.accepted < max_sessions) and alive():
            self.reap()
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            self._dispatch(conn, peer)
        while self.active and alive():
            self.reap()
            time.sleep(ACCEPT_POLL_S)

    def _dispatch(self, conn: socket.socket, peer: Any) -> None:
        who = f"{peer[0]}:{peer[1]}"
        if len(self.active) >= self.max_concurrent:
            answer_busy(conn, self.max_concurrent)
            self._finished(who, {"result": "busy"})
            return
        self.accepted += 1
        r, w = os.pipe()

        def run() -> None:
            os.setpgid(0, 0)
            os.close(r)
            self.sock.close()
            conn.settimeout(None)
            outcome = SmbdSession(TcpConversation(conn), self.served, self.where, self.limits).run()
            import json
            os.write(w, json.dumps(outcome, default=str).encode()[:65536])
        pid = _child(run)
        os.close(w)
        conn.close()
        self.active[pid] = (who, r)

    def reap(self, block: bool = False) -> None:
        for pid in list(self.active):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if not done:
                continue
            who, r = self.active.pop(pid)
            import json
            try:
                raw = b"".join(iter(lambda: os.read(r, 65536), b""))
                outcome = json.loads(raw) if raw else {"result": "error", "error": "the session process died"}
            except (OSError, ValueError):
                outcome = {"result": "error", "error": "the session process died"}
            os.close(r)
            self._finished(who, outcome)

    def _finished(self, who: str, outcome: dict[str, Any]) -> None:
        self.sessions.append({**outcome, "peer": who})
        self.log(session_line(who, outcome))


def check_file(path: str, allow_write: bool = False) -> None:
    """The served file: a regular file this process can read (and write with --allow-write), not empty."""
    if not path:
        raise InputError("serve smbd needs a file to serve", "pass --file PATH")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"--file {path}: {exc.strerror}", "name an existing regular file") from None
    import stat as stat_mod
    if not stat_mod.S_ISREG(st.st_mode):
        raise InputError(f"--file {path} is not a regular file", "name a regular file (not a directory or device)")
    if st.st_size == 0:
        raise InputError(f"--file {path} is empty", "serve a file with data in it (e.g. head -c 64M /dev/urandom > FILE)")
    if not os.access(path, os.R_OK | (os.W_OK if allow_write else 0)):
        raise InputError(f"--file {path} is not {'writable' if allow_write else 'readable'} by this user",
                         "fix its permissions or serve another file")


def preload() -> None:
    """Import what sessions use before forking any: each forked process then starts with it (a
    Python import costs seconds under emulation) and no child ever waits on an import lock."""
    from rig.copy import buffers, uring  # noqa: F401
    from rig.flows import smbd_serving  # noqa: F401
    from rig.rdma import compat, devices, player  # noqa: F401
    compat.load()


def start_local(served: ServedFile, where: Where, limits: Limits = Limits(),
                max_concurrent: int = DEFAULT_CONCURRENT) -> tuple[int, tuple[str, int]]:
    """A server on 127.0.0.1 in a forked child of this process (both ends here): (pid, address).
    It ends when this process ends (it watches its parent) or is sent SIGTERM."""
    server = SmbdServer("127.0.0.1", 0, served, where, limits=limits, max_concurrent=max_concurrent)
    parent = os.getpid()

    def run() -> None:
        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)          # the user's Ctrl-C is the parent's to handle
        try:
            server.serve(alive=lambda: os.getppid() == parent)
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
    pid = _child(run)
    server.sock.close()
    return pid, server.address


def stop_local(pid: int, timeout_s: float = 30.0) -> None:
    """End a server started by start_local (its sessions with it) and reap it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
