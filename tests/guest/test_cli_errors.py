"""`rdmarig guest` refuses bad input with one line and exit code 2, before booting anything."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rdmarig(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "rig.cli", "guest", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdmarig: error: "), proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_qemu_names_the_package(tmp_path):
    one_line_error(rdmarig("run", "--cache", str(tmp_path), "--", "true", env={"PATH": str(tmp_path)}),
                   "qemu is missing", "apt-get install", "qemu-system-x86")


def test_bad_sizes_and_env(tmp_path):
    one_line_error(rdmarig("run", "--mem", "lots", "--cache", str(tmp_path), "--", "true"), "--mem")
    one_line_error(rdmarig("run", "--timeout", "soon", "--cache", str(tmp_path), "--", "true"), "--timeout")
    one_line_error(rdmarig("run", "--env", "NOEQUALS", "--cache", str(tmp_path), "--", "true"), "KEY=VALUE")


def test_root_cannot_be_the_project_directory(tmp_path):
    one_line_error(rdmarig("run", "--cache", str(tmp_path), "--", "true", cwd="/"), "working directory is /")


def test_paths_with_spaces_are_refused(tmp_path):
    odd = tmp_path / "my project"
    odd.mkdir()
    one_line_error(rdmarig("run", "--cache", str(tmp_path / "c"), "--", "true", cwd=odd), "plain path")
