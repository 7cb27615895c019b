"""rig.accounting: each part of a side's CPU counted once, whichever way the kernel accounts it."""

import gzip
import os
import platform
import threading
import time

import pytest

from rig import accounting as acct


def _delta(softirq_s, ksoftirqd_s, cpu=1, irq_s=0.0):
    fields = {f: 0.0 for f in ("user", "nice", "system", "idle", "iowait", "steal")}
    return {"stat": {f"cpu{cpu}": {**fields, "softirq": softirq_s, "irq": irq_s}}, "ksoftirqd_s": {cpu: ksoftirqd_s}}


def _two_cpus(d0, d1):
    return {"stat": {**d0["stat"], **d1["stat"]}, "ksoftirqd_s": {**d0["ksoftirqd_s"], **d1["ksoftirqd_s"]}}


def test_in_context_softirq_leaves_system_time_only_where_the_kernel_put_it_there():
    ru = acct.Rusage(user_s=0.1, system_s=0.5)
    delta = _delta(softirq_s=0.3, ksoftirqd_s=0.1)
    tick = acct.side_split(ru, 1, delta, softirq_in_system=True)
    assert tick["system_s"] == pytest.approx(0.3)      # 0.2 s of softirq ran inside the process
    assert tick["softirq_s"] == pytest.approx(0.3) and tick["ksoftirqd_s"] == pytest.approx(0.1)
    assert tick["system_raw_s"] == 0.5 and tick["softirq_in_process_s"] == pytest.approx(0.2)
    for not_in_task_time in (False, None):             # CONFIG_IRQ_TIME_ACCOUNTING, or unknown
        split = acct.side_split(ru, 1, delta, softirq_in_system=not_in_task_time)
        assert split["system_s"] == pytest.approx(0.5) and split["softirq_s"] == pytest.approx(0.3)
        assert split["softirq_in_process_s"] == 0.0


def test_irq_time_counts_with_softirq():
    split = acct.side_split(acct.Rusage(0.0, 1.0), 1, _delta(0.3, 0.0, irq_s=0.05), softirq_in_system=True)
    assert split["softirq_s"] == pytest.approx(0.35) and split["system_s"] == pytest.approx(0.65)


def test_softirq_not_ours_cannot_make_system_time_negative():
    split = acct.side_split(acct.Rusage(0.0, 0.05), 1, _delta(0.4, 0.0), softirq_in_system=True)
    assert split["system_s"] == 0.0 and split["softirq_in_process_s"] == pytest.approx(0.05)


def test_unpinned_side_has_no_softirq_figure():
    split = acct.side_split(acct.Rusage(0.1, 0.2), None, _delta(0.4, 0.0), softirq_in_system=True)
    assert split["softirq_s"] is None and split["system_s"] == 0.2


def test_a_side_on_several_cpus_adds_them_up():
    """A verbs loop is not pinned: softirq follows it over every CPU it may run on."""
    delta = _two_cpus(_delta(0.2, 0.05, cpu=0), _delta(0.1, 0.0, cpu=1))
    split = acct.side_split(acct.Rusage(0.1, 0.5), [0, 1], delta, softirq_in_system=True)
    assert split["softirq_s"] == pytest.approx(0.3) and split["ksoftirqd_s"] == pytest.approx(0.05)
    assert split["system_s"] == pytest.approx(0.25)
    assert acct.total_s(split) == pytest.approx(0.1 + 0.25 + 0.3)      # = user + raw system + ksoftirqd
    only_cpu0 = acct.side_split(acct.Rusage(0.1, 0.5), [0], delta, softirq_in_system=True)
    assert only_cpu0["softirq_s"] == pytest.approx(0.2) and only_cpu0["system_s"] == pytest.approx(0.35)


def test_ksoftirqd_counts_by_its_exact_run_time_where_ticks_missed_it():
    """The TCG guest showed as softirq only part of what ksoftirqd ran: the exact figure counts,
    and nothing is taken out of the process (all of it ran in ksoftirqd)."""
    delta = _delta(softirq_s=0.6, ksoftirqd_s=1.0)
    exact = acct.side_split(acct.Rusage(2.0, 0.2), 1, delta, softirq_in_system=True, ksoftirqd_exact=True)
    assert exact["softirq_s"] == 1.0 and exact["system_s"] == 0.2
    assert acct.total_s(exact) == pytest.approx(2.0 + 0.2 + 1.0)          # process + ksoftirqd
    sampled = acct.side_split(acct.Rusage(2.0, 0.2), 1, delta, softirq_in_system=True)
    assert sampled["softirq_s"] == 0.6                                       # the copy probes' figure
    inside = acct.side_split(acct.Rusage(0.1, 1.5), 1, _delta(1.2, 0.1), softirq_in_system=True,
                             ksoftirqd_exact=True)                           # served inside the loop
    assert inside["softirq_s"] == pytest.approx(1.2) and inside["system_s"] == pytest.approx(0.4)
    assert acct.total_s(inside) == pytest.approx(0.1 + 1.5 + 0.1)


def test_a_side_that_sleeps_keeps_its_system_time():
    """A serve session waiting on its socket was not on the CPU when the softirq ran."""
    split = acct.side_split(acct.Rusage(0.1, 0.5), 1, _delta(0.3, 0.0), softirq_in_system=True, busy=False)
    assert split["system_s"] == 0.5 and split["softirq_s"] == pytest.approx(0.3)


@pytest.fixture
def fresh_config_cache():
    acct.kernel_config_path.cache_clear()
    acct.softirq_in_task_time.cache_clear()
    yield
    acct.kernel_config_path.cache_clear()
    acct.softirq_in_task_time.cache_clear()


def test_kernel_accounting_mode_is_read_from_the_config_found(tmp_path, monkeypatch, fresh_config_cache):
    with_irqtime = tmp_path / "config.gz"
    with_irqtime.write_bytes(gzip.compress(b"CONFIG_HZ=250\nCONFIG_IRQ_TIME_ACCOUNTING=y\n"))
    without = tmp_path / "config-plain"
    without.write_text("CONFIG_HZ=250\n# CONFIG_IRQ_TIME_ACCOUNTING is not set\nCONFIG_VIRT_CPU_ACCOUNTING_GEN=y\n")
    missing = tmp_path / "nope"
    for candidates, path, mode in (([missing, with_irqtime, without], with_irqtime, False),
                                   ([missing, without, with_irqtime], without, True),
                                   ([missing], None, None)):
        acct.kernel_config_path.cache_clear()
        acct.softirq_in_task_time.cache_clear()
        monkeypatch.setattr(acct, "kernel_config_candidates", lambda c=candidates: c)
        assert acct.kernel_config_path() == path
        assert acct.softirq_in_task_time() is mode


def test_the_guest_reads_the_config_of_the_kernel_it_was_prepared_from(tmp_path, monkeypatch, fresh_config_cache):
    """The guest's / is the host's: no /boot/config of the guest kernel there, but the cache is."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("RDMARIG_GUEST", "1")
    config = tmp_path / "rdmarig" / "guest" / "kernel" / "boot" / f"config-{platform.release()}"
    assert config in acct.kernel_config_candidates()
    monkeypatch.setenv("RDMARIG_GUEST", "0")
    assert config not in acct.kernel_config_candidates()


def _burn(cpu_s):
    t0 = time.thread_time()
    while time.thread_time() - t0 < cpu_s:
        pass


def test_a_window_counts_its_scope_only():
    """Process scope sees another thread's work, thread scope (a serve session) does not."""
    process = acct.CpuWindow(scope="process", busy=False).start()
    thread = acct.CpuWindow(scope="thread", busy=False).start()
    worker = threading.Thread(target=_burn, args=(0.3,))
    worker.start()
    worker.join()
    mine, all_of_us = thread.stop(), process.stop()
    assert all_of_us["user_s"] + all_of_us["system_s"] >= 0.25
    assert mine["user_s"] + mine["system_s"] < 0.1
    assert set(acct.CPU_PARTS) <= set(all_of_us) and all_of_us["wall_s"] > 0
    assert all_of_us["softirq_in_process_s"] == 0.0          # not busy: nothing taken out
    note = process.note()
    assert note["scope"] == "process" and note["softirq_cpus"] == sorted(os.sched_getaffinity(0))


def test_given_scope_takes_the_rusage_of_reaped_children():
    window = acct.CpuWindow(scope="given").start()
    with pytest.raises(ValueError, match="needs the rusage"):
        window.stop()
    cpu = window.stop(acct.Rusage(1.5, 0.25))
    assert cpu["user_s"] == 1.5 and cpu["system_raw_s"] == 0.25
    with pytest.raises(ValueError, match="scope"):
        acct.CpuWindow(scope="children")


def test_rxe_kworkers_are_the_ones_named_after_rxe_wq():
    pid = os.getpid()
    _burn(0.05)
    ran = acct.rxe_kworker_s({pid: 0.0}, {pid: "kworker/u4:2-rxe_wq"})
    assert ran >= 0.05
    assert acct.rxe_kworker_s({pid: 0.0}, {pid: "kworker/0:1-mm_percpu_wq"}) == 0.0
    assert acct.rxe_kworker_s({pid: ran + 100.0}, {pid: "kworker/u4:2-rxe_wq"}) == 0.0


def test_a_peer_on_this_host_keeps_its_process_time_and_no_softirq():
    peer = {"user_s": 0.1, "system_s": 0.05, "system_raw_s": 0.4, "softirq_s": 0.9, "rxe_kworker_s": 0.0}
    same = acct.same_host_peer(peer)
    assert same["system_s"] == 0.4 and same["softirq_s"] == 0.0
    assert acct.total_s(same) == pytest.approx(0.5) and acct.total_s(peer) == pytest.approx(1.05)
    assert acct.total_s({"user_s": 1.0, "softirq_s": None}) == 1.0


def test_on_one_kernel_the_initiator_counts_only_ksoftirqd_as_the_hosts_softirq():
    # sampled softirq 0.9 s ran partly inside the peer (whose raw system time holds it) and partly
    # inside the initiator (0.3 s taken out of its system time); ksoftirqd ran 0.2 s
    local = {"user_s": 1.0, "system_s": 0.2, "system_raw_s": 0.5, "softirq_s": 0.9, "ksoftirqd_s": 0.2,
             "softirq_in_process_s": 0.3, "rxe_kworker_s": 0.0}
    peer = acct.same_host_peer({"user_s": 0.7, "system_s": 0.1, "system_raw_s": 0.6, "softirq_s": 0.9})
    one = acct.one_kernel_initiator(local, softirq_in_system=True)
    assert one["system_s"] == 0.5 and one["softirq_s"] == 0.2 and one["softirq_in_process_s"] == 0.0
    # every CPU-second once: 1.0 + 0.5 + 0.2 here, 0.7 + 0.6 there (3.0 s, not 3.4 s)
    assert acct.total_s(one) + acct.total_s(peer) == pytest.approx(3.0)
    assert acct.one_kernel_initiator({"user_s": 1.0, "ksoftirqd_s": None}, True) == {"user_s": 1.0, "ksoftirqd_s": None}
    # a kernel whose task times hold no softirq (CONFIG_IRQ_TIME_ACCOUNTING), or one whose config is
    # unknown: the sampled softirq is nobody's task time, it stays the host's
    assert acct.one_kernel_initiator(local, softirq_in_system=False) == local
    assert acct.one_kernel_initiator(local, softirq_in_system=None) == local


def test_a_window_reports_the_cpus_busy_time_per_second():
    window = acct.CpuWindow(scope="process").start()
    _burn(0.2)
    cpu = window.stop()
    # this process burnt ~1 CPU-s/s; the host's busy time includes it (other tenants may add more)
    assert cpu["busy_cpu_per_s"] >= 0.5 * (cpu["user_s"] + cpu["system_raw_s"]) / cpu["wall_s"]
    assert cpu["busy_cpu_per_s"] <= os.cpu_count() + 0.1


@pytest.mark.skipif(not acct.read_ipis(), reason="/proc/interrupts has no x86 IPI lines (CAL, TLB, RES) here")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs: a TLB shootdown goes to another CPU")
def test_a_window_counts_the_tlb_shootdowns_a_munmap_sends_to_a_sibling_threads_cpu():
    """A thread unmapping pages it touched while a sibling thread of the same process runs on the
    other CPU makes the kernel flush that CPU's TLB too: an IPI the window counts."""
    import hashlib
    import mmap

    cpus = sorted(os.sched_getaffinity(0))
    data = os.urandom(4 << 20)
    started, stop = threading.Event(), threading.Event()

    def sibling():                            # hashlib releases the GIL over large buffers
        os.sched_setaffinity(0, {cpus[1]})
        while not stop.is_set():
            started.set()
            hashlib.sha256(data).digest()

    thread = threading.Thread(target=sibling)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpus[0]})
    thread.start()
    try:
        assert started.wait(10)
        window = acct.CpuWindow().start()
        t_end = time.monotonic() + 0.5
        while time.monotonic() < t_end:
            m = mmap.mmap(-1, 1 << 20)
            m.write(b"x" * (1 << 20))
            m.close()
        out = window.stop()
    finally:
        stop.set()
        thread.join()
        os.sched_setaffinity(0, before)
    assert out["tlb_shootdown_ipis"] > 0
    assert out["function_call_ipis"] >= out["tlb_shootdown_ipis"]     # CAL counts the flushes too
    assert out["reschedule_ipis"] >= 0


def test_ipis_are_read_from_the_x86_lines_summed_over_cpus(tmp_path):
    table = tmp_path / "interrupts"
    table.write_text("           CPU0       CPU1\n"
                     "  0:         12          0   IO-APIC   2-edge      timer\n"
                     "RES:        100         20   Rescheduling interrupts\n"
                     "CAL:          7          5   Function call interrupts\n"
                     "TLB:          3          1   TLB shootdowns\n")
    assert acct.read_ipis(str(table)) == {"reschedule_ipis": 120, "function_call_ipis": 12, "tlb_shootdown_ipis": 4}
    assert acct.read_ipis(str(tmp_path / "absent")) == {}


def test_a_window_counts_its_own_sleeps_and_preemptions_as_switches():
    """Real scheduler: each sleep is a voluntary switch of this process; a busy process sharing its
    one CPU with another busy process is switched out involuntarily."""
    import subprocess
    import sys
    window = acct.CpuWindow(scope="process", busy=False).start()
    for _ in range(5):
        time.sleep(0.002)
    slept = window.stop()
    assert slept["voluntary_switches"] >= 5
    assert slept["context_switches"] >= slept["voluntary_switches"]      # the machine's hold this process's

    mask = os.sched_getaffinity(0)
    cpu = min(mask)
    rival = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        os.sched_setaffinity(0, {cpu})
        time.sleep(0.2)                       # the rival is running on that CPU by now
        window = acct.CpuWindow(scope="process", busy=True).start()
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            pass
        shared = window.stop()
    finally:
        os.sched_setaffinity(0, mask)
        rival.kill()
        rival.wait()
    assert shared["involuntary_switches"] > 0

def test_the_machines_context_switches_are_read_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 5 1 2\nctxt 123456\nbtime 1\n")
    assert acct.read_context_switches(str(stat)) == 123456
    stat.write_text("cpu  1 2 3 4 5 6 7 8 0 0\n")
    assert acct.read_context_switches(str(stat)) is None
    assert acct.read_context_switches(str(tmp_path / "absent")) is None


def test_the_spread_says_where_ksoftirqd_ran_and_how_idle_the_least_busy_cpu_was():
    def stat(busy_s: float) -> dict[str, float]:
        return {"user": busy_s, "nice": 0.0, "system": 0.0, "idle": 2.0 - busy_s, "iowait": 0.0, "irq": 0.0,
                "softirq": 0.0, "steal": 0.0}
    delta = {"stat": {"cpu": stat(3.0), "cpu0": stat(1.9), "cpu1": stat(1.1)}, "ksoftirqd_s": {0: 0.9, 1: 0.3}}
    out = acct._spread(delta, [0, 1], wall=2.0)
    assert out == pytest.approx({"ksoftirqd_top_share": 0.75, "least_busy_cpu_per_s": 0.55})
    assert "ksoftirqd_top_share" not in acct._spread({**delta, "ksoftirqd_s": {0: 0.0, 1: 0.0}}, [0, 1], 2.0)
