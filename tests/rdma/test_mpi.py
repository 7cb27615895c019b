"""Runs under mpirun (real Open MPI, real ranks, real RDMA on rxe0/rxe1): all-pairs, incast (verbs and
SMB Direct), and a rank killed mid-run (the pairs pattern's schedule is tested on the host tier, in
tests/launch/test_schedule.py). Each test is one mpirun: four ranks' start-up under the guest's TCG
costs ~20 s of the 2 vCPUs, so every mpirun here must earn its place."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from results.matrix import AGGREGATE_PREFIX, matrices
from results.store import Store

pytestmark = pytest.mark.rdma
IN_GUEST = os.environ.get("RDMARIG_GUEST") == "1"
RDMARIG = str(Path(sys.executable).with_name("rdmarig"))
# MPI's own messages over shared memory: off the rxe devices under test, and ~4 s less start-up in the guest
MCA = {"OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "self,vader", "OMPI_MCA_osc": "^ucx"}
RUN_LIMIT_S = 600


@pytest.fixture(scope="module")
def mpirun(rdma_devices) -> str:
    from rig.launch.mpi import installed

    found = shutil.which("mpirun")
    why = "mpirun not found" if not found else None if installed() else "mpi4py not found"
    if why:
        why += " (make test installs openmpi-bin and python3-mpi4py)"
        if IN_GUEST:
            pytest.fail(f"inside the soft-RoCE guest but {why}")
        pytest.skip(why)
    return found


def _command(mpirun: str, n: int, args: list[str], extra: list[str] = (), kind: str = "verbs") -> list[str]:
    return [mpirun, "--allow-run-as-root", "--oversubscribe", *extra, "-n", str(n), RDMARIG, "measure", kind,
            "--mpi", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RDMARIG_SPOOL"}     # records into --store
    return {**env, **MCA}


def _records(path: Path) -> list:
    with Store(path) as st:
        return st.query(kind="measured")


def _one_run(path: Path):
    recs = _records(path)
    runs = {r.params["mpi_run"] for r in recs}
    assert len(runs) == 1, runs
    return recs, runs.pop()


def test_all_pairs_four_ranks(mpirun, tmp_path, run_cli):
    """-n 4 over the ACTIVE devices rxe0, rxe1 (two ranks per device, chosen without --device): 3
    rounds, every pair once, each checked; each pair record names both ranks' hosts and devices and
    ran the loop a single run would."""
    store = tmp_path / "s.sqlite"
    t0 = time.monotonic()
    # no --device: the ranks take the ACTIVE devices round-robin, as a user's first run does
    proc = subprocess.run(_command(mpirun, 4, ["--pattern", "all-pairs", "--size", "16KiB",
                                               "--iterations", "100", "--store", str(store)]),
                          capture_output=True, text=True, env=_env(), timeout=RUN_LIMIT_S)
    print(f"mpirun -n 4 all-pairs: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, proc.stderr
    assert "rdmarig: error" not in proc.stderr
    recs, run = _one_run(store)
    [m] = matrices(recs)
    assert m.complete and m.ranks == 4 and m.expected == 6
    assert sorted((p.initiator, p.target) for p in m.pairs) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert all(p.value_gbytes_per_s and p.value_gbytes_per_s > 0 for p in m.pairs)
    assert m.devices == {0: "rxe0", 1: "rxe1", 2: "rxe0", 3: "rxe1"}
    pairs = [r for r in recs if not r.name.startswith(AGGREGATE_PREFIX)]
    assert all(r.summary["integrity_ok"] and r.provenance["integrity"]["integrity_ok"] for r in pairs)
    assert all(r.name == "verbs.write.bw" and r.summary["wrs"] == 100 and r.summary["bw_average_gbytes_per_s"] > 0
               for r in pairs)
    assert sorted(r.params["round"] for r in pairs) == [0, 0, 1, 1, 2, 2]    # two pairs at once per round
    first = next(r for r in pairs if r.params["initiator_rank"] == 0 and r.params["target_rank"] == 1)
    assert (first.params["initiator_device"], first.params["target_device"]) == ("rxe0", "rxe1")
    from rig.rdma import native          # a rank runs the same loop as a single run: compiled where built
    assert {r.summary["loop"] for r in pairs} == {"native" if native.available()[0] else "python"}, \
        [r.summary.get("loop_note") for r in pairs]
    assert all(r.provenance["host"] and r.provenance["peer_host"]["host"] and r.provenance["mpi_library"]
               for r in pairs)
    [agg] = [r for r in recs if r.name.startswith(AGGREGATE_PREFIX)]
    assert agg.summary["complete"] and agg.summary["pairs_measured"] == 6 == agg.summary["pairs_expected"]
    assert run in proc.stdout
    shown = run_cli("results", "show", run[:10], "--matrix", "--store", str(store))
    assert shown.code == 0 and "complete: every pair" in shown.out, shown.err
    rows = {int(cells[1]): cells for cells in (line.split("|") for line in shown.out.splitlines())
            if len(cells) > 2 and cells[1].strip().isdigit()}
    for i, t in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        assert float(rows[i][4 + t].strip(" *")) > 0, (i, t, shown.out)


def test_incast_three_ranks(mpirun, tmp_path):
    """-n 3 incast: ranks 1 and 2 write into rank 0 at once (one session thread per client there);
    the aggregate is the server's total, with the clients' fairness."""
    store = tmp_path / "s.sqlite"
    proc = subprocess.run(_command(mpirun, 3, ["--pattern", "incast", "--device", "rxe0,rxe1", "--size", "16KiB",
                                               "--iterations", "100", "--store", str(store)]),
                          capture_output=True, text=True, env=_env(), timeout=RUN_LIMIT_S)
    assert proc.returncode == 0, proc.stderr
    recs, _ = _one_run(store)
    pairs = sorted((r for r in recs if not r.name.startswith(AGGREGATE_PREFIX)), key=lambda r: r.params["initiator_rank"])
    [agg] = [r for r in recs if r.name.startswith(AGGREGATE_PREFIX)]
    assert [(r.params["initiator_rank"], r.params["target_rank"]) for r in pairs] == [(1, 0), (2, 0)]
    assert all(r.summary["integrity_ok"] and r.summary["wrs"] == 100 for r in pairs)
    assert [r.params["initiator_device"] for r in pairs] == ["rxe1", "rxe0"]
    s = agg.summary
    assert s["complete"] and s["pairs_measured"] == 2 and agg.params["pattern"] == "incast"
    assert s["aggregate_gbytes_per_s"] == pytest.approx(sum(r.summary["bw_average_gbytes_per_s"] for r in pairs))
    assert 0.5 <= s["fairness_jain_ratio"] <= 1.0


def test_smbd_incast_three_ranks(mpirun, tmp_path):
    """-n 3 `measure smbd --mpi --pattern incast`: ranks 1 and 2 READ from rank 0's SMB Direct server
    at once (a session per client, each forking its serving process); every response checked, the
    server's CPU in each client's record, the aggregate their sum."""
    store = tmp_path / "s.sqlite"
    proc = subprocess.run(_command(mpirun, 3, ["--pattern", "incast", "--device", "rxe0,rxe1", "--io-size", "256KiB",
                                               "--connections", "1", "--copy", "cpu-copy", "--ios", "48",
                                               "--file-size", "4MiB", "--store", str(store)], kind="smbd"),
                          capture_output=True, text=True, env=_env(), timeout=RUN_LIMIT_S)
    assert proc.returncode == 0, proc.stderr
    recs, _ = _one_run(store)
    pairs = sorted((r for r in recs if not r.name.startswith(AGGREGATE_PREFIX)), key=lambda r: r.params["initiator_rank"])
    [agg] = [r for r in recs if r.name.startswith(AGGREGATE_PREFIX)]
    assert [(r.name, r.params["initiator_rank"], r.params["target_rank"]) for r in pairs] == \
        [("smbd.read", 1, 0), ("smbd.read", 2, 0)]
    for r in pairs:
        assert r.summary["integrity_ok"] and r.summary["ios"] == 48 and r.summary["error_responses"] == 0
        assert r.params["copy"] == "cpu-copy" and r.params["io_size_bytes"] == 256 << 10
        assert r.summary["server_cpu_s_per_gb"] > 0 and r.provenance["integrity"]["integrity_checked_ios"] == 48
    assert agg.name == AGGREGATE_PREFIX + "smbd.read" and agg.summary["complete"]
    assert agg.summary["aggregate_gbytes_per_s"] == pytest.approx(sum(r.summary["gbytes_per_s"] for r in pairs))


def _rank_pid(parent: int, rank: int) -> int | None:
    """The PID of MPI rank `rank` among mpirun's children."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(pid)
    return None


def test_rank_killed_mid_run(mpirun, tmp_path):
    """Rank 3 is killed while step 2 of 3 runs (mpirun --enable-recovery keeps the others): the job
    ends within its limits, each surviving rank says one error line, the finished pairs are
    stored and the run is marked partial."""
    store = tmp_path / "s.sqlite"
    cmd = _command(mpirun, 4, ["--pattern", "all-pairs", "--device", "rxe0,rxe1", "--size", "16KiB",
                               "--duration", "1s", "--timeout", "2s", "--store", str(store)],
                   extra=["--enable-recovery"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    err: list[str] = []
    killed = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            err.append(line)
            if line.startswith("step 2/3") and not killed.is_set():
                time.sleep(1.0)                     # inside step 2's timed loop
                pid = _rank_pid(proc.pid, 3)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        out = proc.stdout.read()
        proc.wait(timeout=RUN_LIMIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    print(f"mpirun -n 4 all-pairs, rank 3 killed: {time.monotonic() - t0:.1f} s")
    assert killed.is_set(), "".join(err)
    text = "".join(err)
    # ranks share mpirun's stderr: their lines may arrive run together, so find the messages, not lines
    ranks = re.findall(r"rdmarig: error: rank (\d) of 4 \([^)]*\): run \w+ partial", text)
    assert sorted(ranks) == ["0", "1", "2"], text
    print(text)                                      # (mpirun --enable-recovery itself exits 0 here)
    recs, run = _one_run(store)
    [m] = matrices(recs)
    assert not m.complete and "rank(s) 3 gone" in (m.partial_reason() or "")
    done = sorted((p.initiator, p.target) for p in m.pairs)
    assert len(done) >= 2 and all(3 not in pair or pair in [(0, 3), (1, 3), (2, 3)] for pair in done), done
    step1 = [(p.initiator, p.target) for p in m.pairs if p.round == 0]
    assert len(step1) == 2, done                    # round 1 finished before the kill: both pairs kept
    assert run in out
