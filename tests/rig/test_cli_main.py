"""main(): the one place that turns failures into one line and an exit code."""

import pytest

import rig.cli as cli
from scenarios.errors import InputError


@pytest.fixture
def command():
    """Register a throw-away command on the real app; remove it afterwards."""
    added = []

    def add(fn):
        cli.app.command(fn.__name__.replace("_", "-"))(fn)
        added.append(fn.__name__.replace("_", "-"))
        return fn

    yield add
    cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name not in added]


def run(capsys, name):
    with pytest.raises(SystemExit) as info:
        cli.main([name])
    return info.value.code, capsys.readouterr().err


def test_ctrl_c_is_one_line_exit_130(command, capsys):
    @command
    def interrupted():
        raise KeyboardInterrupt

    code, err = run(capsys, "interrupted")
    assert code == 130
    assert err == "rdmarig: error: interrupted; records completed before the interrupt are kept in the store\n"


def test_input_error_is_one_line_exit_2(command, capsys):
    @command
    def bad_input():
        raise InputError("scenario x.toml: link.rate '200Gbit' has no '/s'", "write it like '200Gbit/s'")

    code, err = run(capsys, "bad-input")
    assert code == 2
    assert err.count("\n") == 1 and "link.rate" in err and "write it like" in err


def test_unreadable_file_is_one_line(command, capsys, tmp_path):
    @command
    def read_missing():
        open(tmp_path / "missing.toml").read()

    code, err = run(capsys, "read-missing")
    assert code == 2 and "missing.toml" in err and err.count("\n") == 1


def test_sigterm_is_one_line_exit_143(command, capsys):
    import os
    import signal

    @command
    def terminated():
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the command")

    code, err = run(capsys, "terminated")
    assert code == 143
    assert err == "rdmarig: error: interrupted; records completed before the interrupt are kept in the store\n"
    assert signal.getsignal(signal.SIGTERM) is not cli._raise_terminated   # handler restored


def _commands(group, prefix=()):
    """(argv prefix, click command) of every leaf command of the app."""
    if hasattr(group, "commands"):
        for name, sub in group.commands.items():
            yield from _commands(sub, prefix + (name,))
    else:
        yield prefix, group


def test_flags_take_no_value_in_help():
    """A boolean flag's help must not show a value it would refuse (`--wide <bool>`)."""
    import typer.main
    from typer.testing import CliRunner

    cli.register()                  # every command, as --help lists them
    root = typer.main.get_command(cli.app)
    flags = 0
    for argv, cmd in _commands(root):
        for param in cmd.params:
            if getattr(param, "is_flag", False) and not getattr(param, "hidden", False):
                flags += 1
        text = CliRunner().invoke(cli.app, [*argv, "--help"]).output
        assert "<bool>" not in text, argv
    assert flags >= 10


@pytest.mark.parametrize("argv, fragment", [
    (["plan", "--bogus"], "rdmarig plan: No such option: --bogus"),
    (["results", "list", "--limit", "abc"], "rdmarig results list: Invalid value for '--limit'"),
    (["nonexist"], "rdmarig: No such command 'nonexist'"),
    (["plan"], "rdmarig plan: Missing argument"),
    (["measure", "copy", "--wide"], "No such option: --wide"),
    (["plan", "smbdirect-2x200g", "--wide", "true"], "Got unexpected extra argument(s) (true)"),
    (["scenarios", "check"], "Missing argument"),
    (["results", "show"], "rdmarig results show: Missing argument"),
])
def test_usage_errors_are_one_line_exit_2(run_cli, argv, fragment):
    res = run_cli(*argv)
    res.one_line_error(2, fragment)
    assert "see `rdmarig" in res.err and "--help`" in res.err


def test_a_group_without_a_command_shows_its_help(run_cli):
    res = run_cli("measure")
    assert res.code == 2 and "Usage: rdmarig measure" in res.err and "copy" in res.err


@pytest.mark.parametrize("argv", [["serve", "--help"], ["measure", "verbs", "--help"], ["measure", "smbd", "--help"],
                                  ["serve", "smbd", "--help"], ["--help"]])
def test_light_commands_start_without_numpy(argv):
    """Commands run in the emulated guest import only what they use: no numpy, scipy, model; the
    full list (--help) loads no group's commands (no copy probes)."""
    import subprocess
    import sys
    code = ("import sys; from rig.cli import main\n"
            f"try: main({argv!r})\n"
            "except SystemExit: pass\n"
            "heavy = sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'models', 'pyverbs', 'rig.copy') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out, out[-500:]


def test_ctrl_c_while_importing_the_cli_is_one_line_exit_130(monkeypatch, capsys):
    """The console script's guard: a Ctrl-C while Python imports rig.cli (typer, numpy) is the one
    line a Ctrl-C during a run prints, not a traceback."""
    import builtins

    from rig import entry

    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name == "rig.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    with pytest.raises(SystemExit) as info:
        entry.main()
    assert info.value.code == 130
    assert capsys.readouterr().err == f"rdmarig: error: {entry.INTERRUPTED_AT_START}\n"


def test_ctrl_c_while_loading_the_commands_modules_is_one_line_exit_130(monkeypatch, capsys):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    with pytest.raises(SystemExit) as info:
        cli.main(["plan", "smbdirect-2x200g"])
    assert info.value.code == 130
    assert capsys.readouterr().err.count("\n") == 1
