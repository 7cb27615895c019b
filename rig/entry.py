"""The `rdmarig` console script: the CLI behind a guard that keeps a Ctrl-C during start-up
(importing typer, numpy and the command's modules takes a tenth of a second or more) to the one
line a Ctrl-C during a run prints, instead of Python's traceback."""

from __future__ import annotations

import signal
import sys

# the words of rig.cli.INTERRUPTED: nothing ran yet, so there is nothing to keep
INTERRUPTED_AT_START = "interrupted while starting; nothing was run"


def main() -> None:
    try:
        from rig.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write(f"rdmarig: error: {INTERRUPTED_AT_START}\n")
        raise SystemExit(128 + signal.SIGINT) from None
    cli_main()
