"""Fixtures every room's tests share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def one_line_error(self, code: int, fragment: str) -> None:
        """The house rule for bad input: exit `code`, one line on stderr naming the cause, no traceback."""
        assert self.code == code, (self.code, self.err)
        assert self.err.startswith("rdmarig: error: ") and self.err.count("\n") == 1, self.err
        assert "Traceback" not in self.err
        assert fragment.lower() in self.err.lower(), (fragment, self.err)


@pytest.fixture
def run_cli(capsys):
    """The console script's entry point in this process: run_cli("plan", "x") -> CliResult.

    For table-driven bad-input tests: one row per input, its exit code and a message fragment."""
    from rig.cli import main

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run
