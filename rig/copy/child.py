"""What every forked probe child (memcpy copier, socket sender and receiver) does about signals and
its result pipe.

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

import signal

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start(process) -> None:
    """process.start() with the stop signals held across the fork."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def detach_signals() -> None:
    """First thing in a child: leave Ctrl-C to the parent, die on its SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def report(conn, message: dict) -> None:
    """Send `message` to the parent; a parent that has stopped listening is no error of ours."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        pass
