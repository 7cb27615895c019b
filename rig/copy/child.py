"""What every forked probe child (memcpy copier, socket sender and receiver, the per-page probes'
children) does about signals and its result pipe; `call` runs one function in such a child.

A Ctrl-C in a terminal reaches the whole process group. The parent alone handles it: it stops the
children (SIGTERM) and cleans up. A child that took SIGINT, or the parent's SIGTERM-as-interrupt
handler it inherits through fork, as a KeyboardInterrupt would try to report it through a pipe the
parent may already have closed, and print a traceback.

The parent starts children with SIGINT and SIGTERM held (`start`): Python runs a signal's handler
at the next bytecode, and if that is inside os.fork()'s at-fork hooks the KeyboardInterrupt is
"ignored" there, and the parent carries on as if there had been no Ctrl-C. Held, the signal stays
pending until the fork is over and is raised in the parent's own code; the child inherits the held
mask and releases it only once its handlers are its own.
"""

from __future__ import annotations

import ctypes
import os
import signal

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


_parent_pid: int | None = None   # set before each fork: the child checks its parent is still this one


def start(process) -> None:
    """process.start() with the stop signals held across the fork."""
    global _parent_pid
    _parent_pid = os.getpid()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def detach_signals() -> None:
    """First thing in a child: leave Ctrl-C to the parent, die on its SIGTERM, and die with it.

    A child waiting on its pipe would otherwise outlive a parent that was interrupted between
    its cleanup steps: forked children inherit each other's pipe ends, so the parent's exit alone
    does not give them EOF, and an orphan held the caller's stdout open for good."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


_PR_SET_PDEATHSIG = 1     # linux/prctl.h


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if _parent_pid is not None and os.getppid() != _parent_pid:   # it died before the request took hold
        os._exit(1)


def report(conn, message: dict) -> None:
    """Send `message` to the parent; a parent that has stopped listening is no error of ours."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        pass


def receive(conn, timeout_s: float, who: str, error: type[Exception] = RuntimeError) -> dict:
    """A child's next message; `error` if it gives none in time, exits without one, or failed."""
    if not conn.poll(timeout_s):
        raise error(f"the {who} gave no answer within {timeout_s:.0f} s")
    try:
        message = conn.recv()
    except EOFError:
        raise error(f"the {who} exited without a result") from None
    if "error" in message:
        raise error(f"the {who} failed: {message['error']}")
    return message


def call(fn, args: tuple = (), cpu: int | None = None, timeout_s: float = 120.0, what: str = "probe"):
    """fn(*args) in a forked child (single-threaded, pinned to `cpu`), its result returned here.

    A probe runs in a child of its own so that its address space has one thread on one CPU (a
    munmap then flushes one TLB, not the ticker thread's CPU as well) and the parent's memory
    stays out of its figures. The child's exception comes back as a RuntimeError."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_call_in_child, args=(fn, args, cpu, child_end), daemon=True)
    try:
        start(process)
        child_end.close()
        return receive(parent_end, timeout_s, f"{what} child")["result"]
    finally:
        if process.is_alive():
            process.join(1)
        if process.is_alive():
            process.terminate()
        process.join(2)
        parent_end.close()


def _call_in_child(fn, args, cpu, conn) -> None:
    detach_signals()
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        conn.send({"result": fn(*args)})
    except BaseException as exc:  # reported to the parent, which raises it there
        report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()
