"""The rdmarig command line: one typer app, one module per command group.

`main()` is the console script. It turns every InputError (and OSError on a file the user named)
into one line on stderr and exit code 2, Ctrl-C into exit code 130 and SIGTERM into 143 (128 +
the signal, as shells report them), never a traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import typer
import typer.main
from typer._click import exceptions as click_exceptions

from rig.guest import guest_stat
from scenarios.errors import InputError

app = typer.Typer(
    name="rdmarig",
    help="Measure and model file-data throughput over RDMA (SMB Direct) and TCP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,       # plain help: flags show no '<bool>' value they do not take
    add_completion=False,
)


def error(message: str, code: int = 2) -> None:
    print(f"rdmarig: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so every cleanup path that handles an interrupt
    handles it too; only the exit code differs."""


_terminated = False       # set when SIGTERM arrived (typer may swallow the exception it raised)


def _raise_terminated(signum, frame) -> None:
    global _terminated
    _terminated = True
    raise Terminated


def interrupt_exit_code(exc: BaseException | None) -> int:
    return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 128 + signal.SIGINT


INTERRUPTED = "interrupted; records completed before the interrupt are kept in the store"


@app.callback()
def _root() -> None:
    """Measure and model file-data throughput over RDMA (SMB Direct) and TCP."""
    # a callback keeps the app a group when only one command is registered (typer would make a
    # lone command the root and read its name as an extra argument)


# The commands, in --help order: name -> (module, attribute, help for a group or None for a command).
# A command's module is imported only when that command runs (or for --help), so `rdmarig serve`
# and `rdmarig measure verbs` start without numpy, the model or the copy probes (slow in the guest).
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "plan": ("rig.cli.plan", "plan", None),
    "report": ("rig.cli.report", "report", None),
    "plot": ("rig.cli.plot", "app", "Draw one figure of a plan: throughput, bottlenecks, needs, vs-measured, "
             "efficiency."),
    "scenarios": ("rig.cli.scenarios_cmd", "app", "List, show and check scenario files."),
    "results": ("rig.cli.results", "app", "List, show, export, import, plot and compare stored records."),
    "measure": ("rig.cli.measure", "app", "Measure real transfers and copy costs on this host."),
    "serve": ("rig.cli.serve", "serve", None),
    "guest": ("rig.cli.guest", "app", "The soft-RoCE qemu guest: real RDMA where the kernel has none."),
    "calibrate": ("rig.cli.calibrate", "app", "Fit model parameters to stored measurements."),
}
_registered: set[str] = set()


def register(argv: list[str] | None = None) -> None:
    """Add the command `argv` names to the app (and its subcommand, for a group that loads its
    own lazily), or every command when argv names none (help, a typo: the full list is shown)."""
    words = [a for a in (argv or []) if not a.startswith("-")]
    names = [words[0]] if words and words[0] in COMMANDS else list(COMMANDS)
    for name in names:
        module_name, attr, group_help = COMMANDS[name]
        module = importlib.import_module(module_name)
        if hasattr(module, "register") and len(names) == 1:
            # a group's own commands are loaded when it runs; the full list shows only its help
            module.register(words[1:2])
        if name in _registered:
            continue
        if group_help is None:
            app.command(name)(getattr(module, attr))
        else:
            app.add_typer(getattr(module, attr), name=name, help=group_help)
        _registered.add(name)


def main(argv: list[str] | None = None) -> None:
    global _terminated
    _terminated = False
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    argv = sys.argv[1:] if argv is None else list(argv)
    guest_stat.start()       # inside the soft-RoCE guest: its busy time, for the host (no-op elsewhere)
    try:
        register(argv)       # imports the command's modules: a Ctrl-C here is one line too
        # not standalone: a usage error comes back as an exception, to be said in one line
        code = typer.main.get_command(app).main(args=argv, prog_name="rdmarig", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()          # a group called without a command: its help, as click does
        raise SystemExit(exc.exit_code) from None
    except click_exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "rdmarig"
        error(f"{where}: {exc.format_message().rstrip('.')}; see `{where} --help`", exc.exit_code)
    except click_exceptions.ClickException as exc:
        error(exc.format_message(), exc.exit_code)
    except typer.Abort:
        error("aborted (end of input)", 1)
    except InputError as exc:
        error(exc.one_line(), exc.exit_code)
    except KeyboardInterrupt as exc:
        error(INTERRUPTED, interrupt_exit_code(exc))
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        error(f"{exc.strerror or exc}:{where}; check the path and its permissions")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if code == 130:
        # typer turns an unhandled interrupt into exit 130 and swallows it; say what happened
        error(INTERRUPTED, 128 + signal.SIGTERM if _terminated else 130)
    raise SystemExit(code if isinstance(code, int) else 0)
