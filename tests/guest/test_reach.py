"""What the guest will find of the host's files, worked out before booting (rig.guest.reach)."""

import os
from pathlib import Path

import pytest

from rig.guest import reach
from scenarios.errors import InputError


def tool(path: Path, text: str = "#!/bin/sh\necho hi\n", mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_command_is_found_as_env_will_find_it(tmp_path):
    a = tool(tmp_path / "a" / "run-me")
    tool(tmp_path / "b" / "run-me")
    assert reach.find_command("run-me", f"{tmp_path}/a:{tmp_path}/b", Path("/")) == a
    assert reach.find_command("a/run-me", "/nowhere", tmp_path) == a          # relative to the cwd
    assert reach.find_command("run-me", "a", tmp_path) == a                    # a relative PATH entry
    tool(tmp_path / "c" / "run-me", mode=0o644)
    assert reach.find_command("run-me", f"{tmp_path}/c:{tmp_path}/b", Path("/")) == tmp_path / "b" / "run-me"


@pytest.mark.parametrize("name, fragment", [
    ("no-such-command-here", "not found on the PATH the guest uses"),
    ("/no/such/dir/tool", "not found on this host"),
    ("plain.txt", "not found on the PATH"),           # not executable: not a PATH match either
    ("./plain.txt", "is not executable"),
])
def test_a_command_the_guest_cannot_run_is_refused(tmp_path, name, fragment):
    tool(tmp_path / "plain.txt", "data\n", 0o644)
    with pytest.raises(InputError, match=fragment):
        reach.find_command(name, str(tmp_path), tmp_path)


def test_the_interpreter_of_a_script_is_needed_too(tmp_path):
    script = tool(tmp_path / "venv" / "bin" / "tool", "#!/tmp/gone-venv-x/bin/python -u\nprint(1)\n")
    assert reach.interpreter(script) == Path("/tmp/gone-venv-x/bin/python")
    assert reach.interpreter(Path("/bin/true")) is None
    with pytest.raises(InputError, match="which does not exist"):
        reach.plan([str(script)], tmp_path, [tmp_path], "/usr/bin", {})


def test_host_paths_under_the_guests_own_tmp_are_bound_in_whole(tmp_path):
    shared = [Path("/work/project")]
    assert reach.bind_for(Path("/tmp/venv/bin/python"), shared) == Path("/tmp/venv")
    assert reach.bind_for(Path("/dev/shm/x.py"), shared) == Path("/dev/shm/x.py")
    assert reach.bind_for(Path("/run/user/0/a"), shared) == Path("/run/user")
    assert reach.bind_for(Path("/tmp"), shared) is None               # the guest's own /tmp is /tmp
    assert reach.bind_for(Path("/usr/bin/python3"), shared) is None   # the host root is visible
    assert reach.bind_for(Path("/tmp/p/x"), [Path("/tmp/p")]) is None  # shared read-write already
    assert reach.bind_for(Path("/tmpfoo/x"), shared) is None


def test_a_venv_in_tmp_and_the_files_named_are_planned(tmp_path):
    """The README's failure: a venv under the host's /tmp (the guest has its own /tmp)."""
    assert str(tmp_path).startswith("/tmp/"), "pytest's tmp_path is expected under /tmp here"
    top = Path("/tmp") / tmp_path.relative_to("/tmp").parts[0]
    venv_tool = tool(tmp_path / "venv" / "bin" / "rdmarig", "#!/bin/sh\n")
    data = tool(tmp_path / "data" / "s.toml", "x = 1\n", 0o644)
    project = Path(os.getcwd())
    r = reach.plan(["rdmarig", f"--scenario={data}", "-k", "rdma", "/tmp/not-there-yet.csv"], project,
                   [project], f"{venv_tool.parent}:/usr/bin", {"PYTHONPATH": "/usr/lib/python3/dist-packages"})
    assert r.command == venv_tool
    assert r.binds == (top,)
    assert r.not_shared == (Path("/tmp/not-there-yet.csv"),)


def test_a_path_that_cannot_be_bound_is_refused(tmp_path):
    odd = Path("/tmp") / f"rdmarig test {os.getpid()}"
    try:
        script = tool(odd / "tool")
        with pytest.raises(InputError, match="cannot be bound in"):
            reach.plan([str(script)], tmp_path, [tmp_path], "/usr/bin", {})
    finally:
        (odd / "tool").unlink(missing_ok=True)
        odd.rmdir()


def test_a_venv_inside_the_working_directory_is_read_through_the_cached_root(tmp_path):
    """The read-write share of the working directory is uncached; the venv's packages are read from
    the host root instead (Python start-up in the guest was 1.5-2.5x slower through the share)."""
    project = tmp_path / "project"
    python = tool(project / ".venv" / "bin" / "python", "#!/bin/sh\n")
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert reach.venv_root(python) == project / ".venv" and reach.venv_root(project) is None
    assert reach.plan([".venv/bin/python"], project, [project], "/usr/bin", {}).binds == (project / ".venv",)
    assert reach.plan(["true"], project, [project], "/usr/bin", {"VIRTUAL_ENV": str(project / ".venv")}).binds == (
        project / ".venv",)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert reach.plan([str(python)], elsewhere, [elsewhere], "/usr/bin", {}).binds == (
        Path("/tmp") / tmp_path.relative_to("/tmp").parts[0],)        # only the /tmp bind
