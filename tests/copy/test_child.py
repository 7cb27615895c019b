"""Probe children die with their parent, whatever state the parent's cleanup was in."""

import os
import subprocess
import sys
import time

PARENT = """
import multiprocessing as mp, os, sys, time
from rig.copy import child

def wait_forever():
    child.detach_signals()
    time.sleep(600)

p = mp.get_context("fork").Process(target=wait_forever, daemon=True)
child.start(p)
time.sleep(0.5)                 # the child has detached its signals
print(p.pid, flush=True)
os._exit(0)                     # no cleanup, no atexit: as if killed between cleanup steps
"""


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_child_dies_with_its_parent():
    out = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(pid)
    if alive:
        os.kill(pid, 9)
    assert not alive, "the probe child outlived its parent"
