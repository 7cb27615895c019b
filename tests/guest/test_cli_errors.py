"""`rdmarig guest` refuses bad input with one line and exit code 2, before booting anything.

One row per input: the arguments ({tmp} is a per-test directory holding the files below), the exit
code and a fragment of the message. None of these rows reaches qemu.
"""

import pytest

from rig.guest import qemu

KVM_USABLE, KVM_WHY = qemu.kvm_candidate()

ROWS = [
    (("run", "--mem", "lots", "--", "true"), 2, "--mem"),
    (("run", "--mem", "100MiB", "--", "true"), 2, "outside 256 MiB"),
    (("run", "--mem", "100TiB", "--", "true"), 2, "this host's memory"),
    (("run", "--cpus", "0", "--", "true"), 2, "--cpus 0 is outside 1.."),
    (("run", "--cpus", "two", "--", "true"), 2, "--cpus 'two' is not a whole number"),
    (("run", "--cpus", "4096", "--", "true"), 2, "this host's CPUs"),
    (("run", "--timeout", "soon", "--", "true"), 2, "--timeout"),
    (("run", "--timeout", "0", "--", "true"), 2, "--timeout 0 s is outside 1 s"),
    (("run", "--boot-timeout", "1000h", "--", "true"), 2, "--boot-timeout 3.6e+06 s is outside"),
    (("run", "--accel", "xen", "--", "true"), 2, "--accel must be auto, tcg or kvm"),
    # refused where KVM cannot be tried: no /dev/kvm, or a CPU without vmx/svm (a paravirtual
    # /dev/kvm, as on the rig host, hangs the guest's stock kernel)
    pytest.param(("run", "--accel", "kvm", "--", "true"), 2, f"--accel kvm: {KVM_WHY}",
                 marks=pytest.mark.skipif(KVM_USABLE, reason=f"KVM can be tried here ({KVM_WHY})")),
    (("run", "--env", "NOEQUALS", "--", "true"), 2, "KEY=VALUE"),
    (("run", "--env", "=x", "--", "true"), 2, "KEY=VALUE"),
    (("run", "--env", "A B=1", "--", "true"), 2, "not a variable name"),
    (("run", "--env", "RDMARIG_SPOOL=/x", "--", "true"), 2, "the guest sets RDMARIG_SPOOL itself"),
    (("run",), 2, "no command given"),
    (("run", "--"), 2, "no command given"),
    (("run", "--", "no-such-command-rdmarig"), 2, "not found on the PATH the guest uses"),
    (("run", "--", "/no/such/dir/tool"), 2, "not found on this host"),
    (("run", "--", "{tmp}/plain.txt"), 2, "is not executable"),
    (("run", "--", "{tmp}/venv/bin/tool"), 2, "#!/tmp/gone-rdmarig-venv/bin/python, which does not exist"),
    (("run", "--env", "PATH=/nowhere", "--", "true"), 2, "not found on the PATH the guest uses (/nowhere)"),
    (("run", "--cache", "{tmp}/my cache", "--", "true"), 2, "plain path"),
    (("run", "--cache", "{tmp}/plain.txt", "--", "true"), 2, "is a file, not a directory"),
    (("check", "--bw-iters", "0"), 2, "--bw-iters 0 is outside 1..10000"),
    (("check", "--bw-iters", "many"), 2, "not a whole number"),
    (("check", "--cpus", "0"), 2, "--cpus 0 is outside"),
    (("check", "--mem", "1"), 2, "outside 256 MiB"),
    (("check", "--accel", "fast"), 2, "--accel must be"),
    (("check", "--cache", "{tmp}/plain.txt"), 2, "is a file, not a directory"),
    (("prepare", "--cache", "{tmp}/plain.txt"), 2, "is a file, not a directory"),
]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "plain.txt").write_text("data\n")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "tool").write_text("#!/tmp/gone-rdmarig-venv/bin/python\nprint(1)\n")
    (venv_bin / "tool").chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("argv, code, fragment", ROWS)
def test_bad_input_is_one_line_before_any_boot(run_cli, files, argv, code, fragment):
    result = run_cli("guest", *(a.replace("{tmp}", str(files)) for a in argv))
    result.one_line_error(code, fragment)


def test_missing_qemu_names_the_package(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    run_cli("guest", "run", "--cache", str(tmp_path), "--", "/bin/true").one_line_error(
        2, "qemu is missing (qemu-system-x86_64 not on PATH); install it: apt-get install")


def test_root_cannot_be_the_project_directory(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    run_cli("guest", "run", "--cache", str(tmp_path), "--", "true").one_line_error(2, "working directory is /")


def test_paths_with_spaces_are_refused(run_cli, tmp_path, monkeypatch):
    odd = tmp_path / "my project"
    odd.mkdir()
    monkeypatch.chdir(odd)
    run_cli("guest", "run", "--cache", str(tmp_path / "c"), "--", "true").one_line_error(2, "plain path")

