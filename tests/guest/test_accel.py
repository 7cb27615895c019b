"""The KVM/TCG decision. This machine's CPU shows no vmx/svm, so the KVM branch is driven here by
substituting the two things it depends on: the capability probe and the outcome of the test boot."""

from types import SimpleNamespace

import pytest

from rig.guest import hostcheck, qemu, run
from rig.guest.cache import Cache
from scenarios.errors import InputError

PREPARED = SimpleNamespace(kernel_version="6.1.0-57-amd64", cache="/nonexistent")


def test_tcg_when_kvm_is_not_usable(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "kvm_candidate", lambda: (False, "the CPU shows no vmx/svm"))
    assert run.choose_accel("auto", Cache(tmp_path), PREPARED, print) == ("tcg", "the CPU shows no vmx/svm")
    assert run.choose_accel("kvm", Cache(tmp_path), PREPARED, print)[0] == "kvm"   # an explicit choice wins
    with pytest.raises(InputError, match="auto, tcg or kvm"):    # refused before anything is prepared
        run.check_options(run.RunOptions(accel="hvf"))


@pytest.mark.parametrize("boots, expected", [(True, "kvm"), (False, "tcg")])
def test_kvm_only_after_a_test_boot_and_the_verdict_is_cached(tmp_path, monkeypatch, boots, expected):
    monkeypatch.setattr(qemu, "kvm_candidate", lambda: (True, "vmx"))
    calls = []

    def test_boot(argv, cwd, cache, options, store, say):
        calls.append(options.accel)
        return SimpleNamespace(status="finished" if boots else "boot-timeout", exit_code=0 if boots else 125,
                               message="ok" if boots else "the guest was not ready within 60 s")

    monkeypatch.setattr(run, "run_in_guest", test_boot)
    cache = Cache(tmp_path)
    first = run.choose_accel("auto", cache, PREPARED, lambda _: None)
    second = run.choose_accel("auto", cache, PREPARED, lambda _: None)
    assert first[0] == second[0] == expected
    assert calls == ["kvm"]                      # one test boot, under KVM; then the cached verdict
    if not boots:
        assert "test boot failed" in first[1]


def test_no_space_is_one_clear_error(tmp_path):
    hostcheck.require_space(tmp_path, 1)
    with pytest.raises(InputError, match="not enough space") as exc:
        hostcheck.require_space(tmp_path / "not" / "yet", 1e18)
    assert "--cache" in exc.value.fix
