"""rig.guest.hostload: the host's /proc/stat CPU line, the shares over a window, and the spooled
records' provenance annotated with the span since the record before each."""

import datetime as dt

from results.record import Record, from_json
from rig.guest import hostload


def test_the_cpu_line_splits_into_busy_steal_and_total(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 800 10 3 2 60 0 0\ncpu0 1 2 3 4\n")
    assert hostload.read_cpu_line(str(stat)) == (130, 60, 1000)
    assert hostload.read_cpu_line(str(tmp_path / "absent")) is None
    other = tmp_path / "other"
    other.write_text("intr 5 1 2\n")               # not the all-CPUs line first: nothing to read
    assert hostload.read_cpu_line(str(other)) is None
    busy, steal, total = hostload.read_cpu_line()          # this host's own
    assert 0 <= busy <= total and 0 <= steal <= total


def test_window_takes_the_samples_around_it():
    samples = [(0.0, 0, 0, 0), (1.0, 50, 0, 100), (2.0, 100, 50, 200), (3.0, 110, 50, 300)]
    assert hostload.window(samples, 1.0, 2.0) == {"busy_fraction": 0.5, "steal_fraction": 0.5, "window_s": 1.0}
    assert hostload.window(samples, 0.5, 2.5) == {"busy_fraction": 0.3667, "steal_fraction": 0.1667, "window_s": 3.0}
    assert hostload.window(samples, -1.0, 2.0) is None and hostload.window(samples, 1.0, 4.0) is None


def test_spooled_records_get_the_span_since_the_record_before(tmp_path):
    t0 = dt.datetime(2026, 12, 1, 17, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    samples = [(t0 + i, 10 * i, (5 * i if i > 5 else 0), 20 * i) for i in range(13)]
    for name, at in (("b", 10.0), ("a", 4.0)):
        when = dt.datetime.fromtimestamp(t0 + at, dt.timezone.utc).isoformat()
        rec = Record(kind="measured", name=f"x.{name}", params={}, summary={}, provenance={"host": "g"}, created=when)
        (tmp_path / f"{name}.json").write_text(rec.to_json())
    (tmp_path / "junk.json").write_text("not a record")
    assert hostload.annotate_spool(tmp_path, samples, t0) == 2
    a = from_json((tmp_path / "a.json").read_text()).provenance
    b = from_json((tmp_path / "b.json").read_text()).provenance
    assert a["host"] == "g"
    assert a["host_cpu_under_guest"]["steal_fraction"] == 0 and a["host_cpu_under_guest"]["window_s"] == 4.0
    # b: from a's time (4 s) to its own (10 s): steal 5 x 10 - 0 over 20 x 6 jiffies
    assert b["host_cpu_under_guest"]["steal_fraction"] == round(50 / 120, 4)
    assert b["host_cpu_under_guest"]["busy_fraction"] == 0.5


def test_counters_interpolate_between_samples():
    series = [(10.0, 0.0), (11.0, 1.0), (13.0, 2.0)]
    assert hostload.at(series, 10.5) == 0.5 and hostload.at(series, 12.0) == 1.5
    assert hostload.at(series, 13.0) == 2.0
    assert hostload.at(series, 9.0) is None and hostload.at(series, 13.5) is None and hostload.at([], 1.0) is None


def test_executed_share_counts_per_vcpu_the_busy_time_the_host_did_not_run():
    # vCPU 0 busy all the time in the guest, executed 1 s per s, then half; vCPU 1 idle in the guest
    # but run by the host 0.3 s per s (the interrupts that wake it): it does not vouch for vCPU 0
    vcpu = [(0.0, {0: 100.0, 1: 10.0}), (2.0, {0: 102.0, 1: 10.6}), (4.0, {0: 103.0, 1: 11.2})]
    guest = [(0.0, {0: 50.0, 1: 5.0}), (2.0, {0: 52.0, 1: 5.0}), (4.0, {0: 54.0, 1: 5.0})]
    assert hostload.executed(vcpu, guest, 0.0, 2.0) == {
        "executed_cpu_per_s": 1.3, "guest_busy_cpu_per_s": 1.0, "executed_fraction": 1.0, "window_s": 2.0}
    ran = hostload.executed(vcpu, guest, 2.0, 4.0)
    assert ran["executed_fraction"] == 0.5 and ran["executed_cpu_per_s"] == 0.8 and ran["guest_busy_cpu_per_s"] == 1.0
    assert hostload.executed(vcpu, guest, 1.0, 5.0) is None and hostload.executed([], guest, 1.0, 2.0) is None
    assert hostload.executed(vcpu, guest, 3.0, 3.0) is None
    # a sample missing vCPU 1 (qemu starting its threads) drops it from no window: 2-4 s as before
    gap = [(0.0, {0: 100.0}), *vcpu[1:]]
    assert hostload.executed(gap, guest, 2.0, 4.0) == ran
    assert hostload.executed(gap, guest, 0.0, 2.0)["executed_cpu_per_s"] == 1.0        # vCPU 0 only there
    idle = hostload.executed(vcpu, [(0.0, {0: 5.0, 1: 1.0}), (4.0, {0: 5.0, 1: 1.0})], 1.0, 3.0)
    assert idle["guest_busy_cpu_per_s"] == 0 and idle["executed_fraction"] is None


def test_per_cpu_busy_seconds_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    ticks = hostload.TICKS_PER_S
    # cpu1: softirq counts, steal (a hypervisor running others) does not
    stat.write_text(f"cpu  9 9 9 9 9 9 9 9\ncpu0 {ticks} 0 {ticks} 500 0 0 0 0\ncpu1 0 0 0 800 0 0 {ticks} {ticks}\n"
                    "intr 1\n")
    assert hostload.read_cpu_busy(str(stat)) == {0: 2.0, 1: 1.0}
    assert hostload.read_cpu_busy(str(tmp_path / "absent")) is None
    own = hostload.read_cpu_busy()                        # this host's own
    assert own and all(isinstance(c, int) and v >= 0 for c, v in own.items())


def test_a_record_timed_over_seconds_gets_executed_time_over_them(tmp_path):
    t0 = dt.datetime(2026, 12, 1, 20, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    samples = [(t0 + i, 10 * i, 0, 20 * i) for i in range(21)]
    vcpu = [(t0 + i, {0: 0.9 * i if i < 10 else 9.0 + 0.5 * (i - 10), 1: 0.0 if i < 10 else 1.0 * (i - 10)})
            for i in range(21)]
    guest = [(t0 + i, {0: 1.0 * i, 1: 0.0 if i < 10 else 1.0 * (i - 10)}) for i in range(21)]
    for name, at, summary in (("a", 6.0, {}), ("b", 16.0, {"seconds": 4.0})):
        when = dt.datetime.fromtimestamp(t0 + at, dt.timezone.utc).isoformat()
        rec = Record(kind="measured", name=f"x.{name}", params={}, summary=summary, provenance={}, created=when)
        (tmp_path / f"{name}.json").write_text(rec.to_json())
    assert hostload.annotate_spool(tmp_path, samples, t0, vcpu, guest) == 2
    a = from_json((tmp_path / "a.json").read_text()).provenance["guest_cpu_executed"]
    b = from_json((tmp_path / "b.json").read_text()).provenance["guest_cpu_executed"]
    assert a["window_s"] == 6.0 and a["executed_fraction"] == 0.9       # no `seconds`: since the start
    assert b["window_s"] == 4.0 and b["executed_fraction"] == 0.75      # its own 4 s: 1.5 of 2 per s
    assert b["executed_cpu_per_s"] == 1.5 and b["guest_busy_cpu_per_s"] == 2.0
    # without vCPU samples (a qemu without named threads) only the host's shares are written
    (tmp_path / "c.json").write_text(Record(kind="measured", name="x.c", params={}, summary={}, provenance={},
                                            created=dt.datetime.fromtimestamp(t0 + 18, dt.timezone.utc).isoformat()).to_json())
    hostload.annotate_spool(tmp_path, samples, t0)
    c = from_json((tmp_path / "c.json").read_text()).provenance
    assert "host_cpu_under_guest" in c and "guest_cpu_executed" not in c


_NAMED = """
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None)
def name(n):
    libc.prctl(15, ctypes.c_char_p(n.encode()), 0, 0, 0)       # PR_SET_NAME: this thread's comm
name(sys.argv[1])
def vcpu():
    name("CPU 0/TCG")
    t = time.monotonic()
    while time.monotonic() - t < 0.3:
        pass
    time.sleep(30)
threading.Thread(target=vcpu, daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""


def test_the_sampler_finds_its_qemu_child_and_times_its_vcpu_threads():
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", _NAMED, "qemu-system-x86"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        assert hostload.qemu_child() == proc.pid
        import time
        time.sleep(0.5)
        ran = hostload.vcpu_seconds(proc.pid)
        assert set(ran) == {0} and 0.1 <= ran[0] <= 1.0      # the named thread's spin, not the main thread's sleep
        sampler = hostload.HostSampler(period_s=0.1).start()
        time.sleep(0.35)
        sampler.stop()
        assert len(sampler.vcpu_samples) >= 2 and sampler.vcpu_samples[-1][1][0] >= ran[0]
    finally:
        proc.kill()
        proc.wait()
    assert hostload.vcpu_seconds(proc.pid) is None


def test_the_guest_side_writes_its_busy_time_for_the_host(tmp_path):
    import subprocess
    import sys
    from rig.guest import guest_stat
    code = ("import time; from rig.guest import guest_stat; "
            f"assert guest_stat.start({{'RDMARIG_GUEST': '1', 'RDMARIG_GUEST_OUT': {str(tmp_path)!r}}}) is not None; "
            "assert guest_stat.start() is None\nt = time.monotonic()\nwhile time.monotonic() - t < 1.3: pass")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    samples = guest_stat.read_samples(tmp_path)
    assert len(samples) >= 3                       # at start, after 1 s, at exit
    assert [t for t, _ in samples] == sorted(t for t, _ in samples)
    assert sum(samples[-1][1].values()) - sum(samples[0][1].values()) >= 0.5    # the spinning second, and more
    assert set(hostload.read_cpu_busy()) <= set(samples[0][1])
    with open(next(tmp_path.glob("guest-stat-*.log")), "a") as f:
        f.write("123.0 4")                                # cut short: no newline, not read
    assert guest_stat.read_samples(tmp_path) == samples
    assert guest_stat.start({"RDMARIG_GUEST": "0", "RDMARIG_GUEST_OUT": str(tmp_path)}) is None


def test_a_record_that_says_when_its_run_ended_is_timed_up_to_then(tmp_path):
    """A record is created after its run's checks and provenance: `ended_unix_s` places the window."""
    t0 = dt.datetime(2026, 12, 1, 20, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    samples = [(t0 + i, 10 * i, 0, 20 * i) for i in range(21)]
    vcpu = [(t0 + i, {0: 1.0 * i if i < 10 else 10.0 + 0.5 * (i - 10)}) for i in range(21)]
    guest = [(t0 + i, {0: 1.0 * i}) for i in range(21)]
    for name, ended in (("early", t0 + 9.0), ("odd", t0 + 30.0)):
        rec = Record(kind="measured", name=f"x.{name}", params={}, provenance={},
                     summary={"seconds": 4.0, "ended_unix_s": ended},
                     created=dt.datetime.fromtimestamp(t0 + 14.0, dt.timezone.utc).isoformat())
        (tmp_path / f"{name}.json").write_text(rec.to_json())
        hostload.annotate_spool(tmp_path, samples, t0, vcpu, guest)
        ran = from_json((tmp_path / f"{name}.json").read_text()).provenance["guest_cpu_executed"]
        (tmp_path / f"{name}.json").unlink()
        # 5-9 s: executed whole; an end after the record's creation is not believed: 10-14 s, half
        assert ran["executed_fraction"] == (1.0 if name == "early" else 0.5) and ran["window_s"] == 4.0


def test_a_runs_last_stamp_in_wall_clock_time():
    import time
    from rig.rdma.analysis import ended_unix_s
    now = time.time()
    assert abs(ended_unix_s(time.perf_counter_ns() - 2_000_000_000) - (now - 2.0)) < 0.1
