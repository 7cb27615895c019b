"""The MPI side with a real Open MPI on this host (no RDMA needed): messages between two ranks
(phases, time limits, size bound), and a whole --mpi run's rendezvous where no rank has a device:
every pair fails, each rank says one line, rank 0 stores the partial aggregate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rig.launch.mpi import installed

MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None or installed() is None,
                                reason="needs mpirun and mpi4py (make test installs openmpi-bin, python3-mpi4py)")
ENV = {**{k: v for k, v in os.environ.items() if k != "RDMARIG_SPOOL"},
       "OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "self,vader", "OMPI_MCA_osc": "^ucx"}

CONVERSATION = textwrap.dedent('''
    import json, sys, time
    from rig.launch import mpi
    from rig.rdma.handshake import PeerGone, ProtocolError, VERSION, MAX_MESSAGE_BYTES
    MPI = mpi.load()
    box = mpi.Mailbox(MPI, MPI.COMM_WORLD)
    out = {}
    if box.rank == 0:
        box.wait(1, mpi.TAG_CTRL, 1000, time.monotonic() + 30)       # rank 1 has timed out once
        mpi.MpiConversation(box, 1, phase=1).send({"type": "hello", "stale": True})
        mpi.MpiConversation(box, 1, phase=2).send({"type": "hello", "n": 7})
        box.send(1, mpi.TAG_CONV, {"version": VERSION, "type": "tick", "phase": 3, "pad": "x" * MAX_MESSAGE_BYTES})
        box.send(1, mpi.TAG_CTRL, {"type": "done", "phase": 0})
    else:
        t0 = time.monotonic()
        try:
            mpi.MpiConversation(box, 0, phase=9).recv(0.5, "ready")
        except PeerGone as exc:
            out["timeout"] = [str(exc), time.monotonic() - t0]
        box.send(0, mpi.TAG_CTRL, {"type": "go", "phase": 0})
        out["hello"] = mpi.MpiConversation(box, 0, phase=2).recv(30, "hello")
        try:
            mpi.MpiConversation(box, 0, phase=3).recv(30)
        except ProtocolError as exc:
            out["too_big"] = str(exc)
        out["ctrl"] = json.loads(box.wait(0, mpi.TAG_CTRL, 1000, time.monotonic() + 30)[1])
        print(json.dumps(out))
    box.flush(5)
''')


def _mpirun(n: int, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(n), *argv],
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def test_conversation_between_two_ranks(tmp_path):
    script = tmp_path / "conv.py"
    script.write_text(CONVERSATION)
    proc = _mpirun(2, [sys.executable, str(script)])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["hello"]["n"] == 7 and "stale" not in out["hello"]        # the phase-1 message was dropped
    why, waited = out["timeout"]
    assert why == "no message from rank 0 within 0.5 s" and 0.5 <= waited < 5
    assert "exceeds 65536" in out["too_big"]
    assert out["ctrl"] == {"type": "done", "phase": 0}


def test_run_without_devices_ends_partial_with_one_line_per_rank(tmp_path):
    if Path("/sys/class/infiniband").is_dir() and any(Path("/sys/class/infiniband").iterdir()):
        pytest.skip("this host has RDMA devices: the real runs are in tests/rdma/test_mpi.py")
    store = tmp_path / "s.sqlite"
    proc = _mpirun(3, [str(Path(sys.executable).with_name("rdmarig")), "measure", "verbs", "--mpi", "--pattern",
                       "all-pairs", "--store", str(store), "--timeout", "1s"])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("rdmarig: error:")]
    assert sorted(line.split()[3] for line in errors) == ["0", "1", "2"], proc.stderr
    assert all("partial (3 pair(s) failed)" in line and "no RDMA device" in line for line in errors), errors
    from results.matrix import matrices
    from results.store import Store
    with Store(store) as st:
        [m] = matrices(st.query(kind="measured"))
    assert not m.complete and m.expected == 3 and m.pairs == [] and m.hosts.keys() == {0, 1, 2}
    assert "0 of 3 pairs measured; 3 pair(s) failed" in m.partial_reason()
    assert m.run in proc.stdout and "PARTIAL run" in proc.stdout


@pytest.mark.parametrize("n,argv,fragment", [
    (1, [], "--pattern pairs: 1 rank(s): a pattern needs 2..1048576 ranks; launch at least 2 ranks"),
    (3, ["--pattern", "sampled", "--partners", "5"], "--pattern sampled: 5 partners per rank: 3 ranks allow 1..3; "
                                                     "use --partners 1..3"),
])
def test_pattern_impossible_for_the_ranks_launched(n, argv, fragment):
    proc = _mpirun(n, [str(Path(sys.executable).with_name("rdmarig")), "measure", "verbs", "--mpi", "--no-store", *argv])
    # every rank refuses alike; mpirun ends the others once the first has exited, so some may not get to say it
    ours = [line for line in proc.stderr.splitlines() if line.startswith("rdmarig: ")]
    assert proc.returncode == 2 and 1 <= len(ours) <= n and all(fragment in line for line in ours), proc.stderr
    assert "Traceback" not in proc.stderr
