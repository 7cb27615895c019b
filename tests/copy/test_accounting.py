"""How one side's system and softirq seconds are separated, depending on the kernel's accounting."""

import pytest

from rig import accounting as acct


def _delta(softirq_s, ksoftirqd_s):
    cpu1 = {f: 0.0 for f in ("user", "nice", "system", "idle", "iowait", "irq", "steal")}
    cpu1["softirq"] = softirq_s
    return {"stat": {"cpu1": cpu1}, "ksoftirqd_s": {1: ksoftirqd_s}}


def test_in_context_softirq_leaves_system_time_only_where_the_kernel_put_it_there():
    ru = acct.Rusage(user_s=0.1, system_s=0.5)
    delta = _delta(softirq_s=0.3, ksoftirqd_s=0.1)
    tick = acct.side_split(ru, 1, delta, softirq_in_system=True)
    assert tick["system_s"] == pytest.approx(0.3)      # 0.2 s of softirq ran inside the process
    assert tick["softirq_s"] == pytest.approx(0.3)
    for not_in_task_time in (False, None):             # CONFIG_IRQ_TIME_ACCOUNTING, or unknown
        split = acct.side_split(ru, 1, delta, softirq_in_system=not_in_task_time)
        assert split["system_s"] == pytest.approx(0.5) and split["softirq_s"] == pytest.approx(0.3)


def test_softirq_not_ours_cannot_make_system_time_negative():
    split = acct.side_split(acct.Rusage(0.0, 0.05), 1, _delta(0.4, 0.0), softirq_in_system=True)
    assert split["system_s"] == 0.0


def test_unpinned_side_has_no_softirq_figure():
    split = acct.side_split(acct.Rusage(0.1, 0.2), None, _delta(0.4, 0.0), softirq_in_system=True)
    assert split["softirq_s"] is None and split["system_s"] == 0.2


def test_kernel_accounting_mode_is_read_from_its_config():
    mode = acct.softirq_in_task_time()
    if mode is None:
        pytest.skip("neither /proc/config.gz nor /boot/config-$(uname -r) is readable here")
    assert isinstance(mode, bool)
