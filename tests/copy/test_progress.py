"""Progress: the time-left estimate weighs what is left by its expected cost, and a long step ticks."""

import io
import os
import select
import time

import pytest

from rig.copy import runs
from rig.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_estimate_weighs_the_steps_left_by_their_cost():
    # two cheap memcpy steps first, then two socket steps eight times dearer (measure copy's order)
    clock, out = FakeClock(), io.StringIO()
    p = Progress(4, "measure copy", stream=out, costs=[1, 1, 8, 8], clock=clock)
    clock.now = 1.0
    p.step("memcpy a")
    clock.now = 2.0
    p.step("memcpy b")
    # a count of steps would say 2 s (two more steps at 1 s each); the costs say 16 s
    assert p.seconds_left() == pytest.approx(16.0)
    assert "~16s left" in out.getvalue().splitlines()[-1]


def test_estimate_follows_the_pace_of_the_finished_steps():
    clock = FakeClock()
    p = Progress(3, "x", stream=io.StringIO(), costs=[1, 1, 1], clock=clock)
    clock.now = 3.0  # the first step took three times its expected cost: a busy host
    p.step()
    assert p.seconds_left() == pytest.approx(6.0)


def test_estimate_counts_down_inside_a_long_step():
    clock = FakeClock()
    p = Progress(2, "x", stream=io.StringIO(), costs=[1, 10], clock=clock)
    clock.now = 1.0
    p.step()
    clock.now = 5.0  # 4 s into the 10 s step
    assert p.seconds_left() == pytest.approx(6.0)
    clock.now = 30.0  # far past its estimate: never a negative time left
    assert p.seconds_left() == 0.0


def test_without_costs_every_step_weighs_the_same():
    clock = FakeClock()
    p = Progress(4, "x", stream=io.StringIO(), clock=clock)
    clock.now = 2.0
    p.step()
    assert p.seconds_left() == pytest.approx(6.0)


def test_costs_must_match_the_steps():
    with pytest.raises(ValueError):
        Progress(3, "x", stream=io.StringIO(), costs=[1, 2])


def test_a_long_step_ticks_in_a_log():
    out = io.StringIO()
    with Progress(2, "measure copy", stream=out, names=["memcpy 1 B x1", "socket"], log_tick_s=0.05) as p:
        deadline = time.monotonic() + 10
        while "running" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        p.step("memcpy 1 B x1")
    tick = [line for line in out.getvalue().splitlines() if "running" in line][0]
    assert tick.startswith("[0/2] measure copy: memcpy 1 B x1 running")


def test_a_terminal_gets_a_live_line():
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            with Progress(1, "measure copy", stream=tty, names=["fault 4096 B 4k"]) as p:
                p.step("fault 4096 B 4k")
        # a pty hands its output over in pieces (the line discipline turns "\n" into "\r\n"): read
        # until the line has ended or nothing more comes
        text, deadline = "", time.monotonic() + 5
        while not text.endswith("\n") and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                text += os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "\r\033[K[1/1] measure copy fault 4096 B 4k" in text and text.endswith("\n")


def test_plans_cost_socket_transfers_more_than_memcpy_steps():
    # what made the old count-based estimate ~4x low: memcpy steps are cheap, transfers are not
    memcpy = runs.memcpy_plan([4096, 1 << 20], [1, 2], 3)
    socket = runs.socket_plan(["rw", "sendfile"], ["tmpfs", "anon"], [65536], ["loopback"], 3, 0.5)
    assert len(memcpy) == 4 and len(socket) == 4
    assert max(s.cost_s() for s in memcpy) < min(s.cost_s() for s in socket if s.cost_s() > 0)
    refused = [s for s in socket if s.what.startswith("sendfile anon")]
    assert refused and refused[0].cost_s() == 0.0  # a path the source refuses costs nothing
    # a busy host stretches CPU work, not a transfer's fixed duration
    busy, idle = socket[0].cost_s(load=3.0), socket[0].cost_s()
    assert busy > idle and busy - idle == pytest.approx(2 * socket[0].cpu_s)
    assert memcpy[0].cost_s(load=3.0) == pytest.approx(3 * memcpy[0].cost_s())
