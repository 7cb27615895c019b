"""Bad input to `measure verbs` and `serve`: one line naming the flag as typed, its range, exit 2.
Every row is caught before any RDMA device is needed (host tier)."""

from __future__ import annotations

import pytest

MEASURE = [
    (["--qps", "-1"], "--qps -1 is out of range; use 1..256"),
    (["--qps", "0"], "--qps 0 is out of range"),
    (["-q", "100000"], "--qps 100000 is out of range; use 1..256"),
    (["--tx-depth", "0"], "--tx-depth 0 is out of range; use 1..16384"),
    (["-t", "20000"], "--tx-depth 20000"),
    (["--rx-depth", "0"], "--rx-depth 0"),
    (["--cq-mod", "0"], "--cq-mod 0"),
    (["--post-list", "0"], "--post-list 0"),
    (["--post-list", "64", "--tx-depth", "16"], "--post-list 64 exceeds --tx-depth 16"),
    (["--iterations", "0"], "--iterations 0 is out of range; use 1..1e+09"),
    (["-n", "2000000000"], "--iterations 2e+09"),
    (["--warmup", "-1"], "--warmup -1 is out of range"),
    (["--size", "0"], "--size 0B is out of range; use 1B..1GiB"),
    (["--size", "2GiB"], "--size 2GiB is out of range"),
    (["--size", "4KiB..2GiB"], "--size 2GiB is out of range"),
    (["--size", "5XB"], "--size"),
    (["--inline", "1MiB"], "--inline 1MiB is out of range; use 0B..64KiB"),
    (["--op", "read", "--inline", "64"], "RDMA READ has no inline data"),
    (["--duration", "0s"], "--duration 0s is out of range; use 0.001s..3600s"),
    (["--duration", "2h"], "--duration 7200s is out of range"),
    (["--timeout", "0s"], "--timeout 0s is out of range"),
    (["--timeout", "1e999s"], "--timeout: '1e999s' is not a finite time"),
    (["--op", "frob"], "--op 'frob' is not an operation"),
    (["--latency-mode", "maybe"], "--latency-mode 'maybe'"),
    (["--op", "read", "--latency", "--latency-mode", "pingpong"], "ping-pong latency runs WRITE or SEND"),
    (["--peer", "198.18.0.2", "--peer-device", "rxe1"], "exclude each other"),
    (["--peer", "198.18.0.2", "--rdma-cm"], "--rdma-cm connects loopback runs only"),
    (["--peer", "198.18.0.2", "--validate"], "--validate checks loopback runs"),
    (["--peer", "198.18.0.2:70000"], "port 70000 out of range"),
    (["--peer", ":9000"], "no host"),
    (["--ib-port", "0"], "--ib-port 0 is out of range; use 1..255"),
    (["--gid-index", "-1"], "--gid-index -1 is out of range; use 0..1023"),
    (["--peer-gid-index", "5000"], "--peer-gid-index 5000"),
    (["--latency", "--vs-perftest"], "--vs-perftest compares loopback bandwidth runs"),
    (["--events", "--latency"], "--events sleeps between completions of the bandwidth loop"),
    (["-e", "--rdma-cm"], "--events and --rdma-cm are not supported together"),
    (["--events", "--vs-perftest"], "ib_write_bw has no completion events"),
    (["-e", "--op", "send", "--rx-depth", "8", "--tx-depth", "16"], "--rx-depth 8 is below --tx-depth 16"),
]

SERVE = [
    (["--bind", "127.0.0.1", "--port", "70000"], "--port 70000 is out of range; use 0..65535"),
    (["--bind", "127.0.0.1", "--port", "-1"], "--port -1 is out of range"),
    (["--bind", ""], "pass --bind ADDR"),
    (["--bind", "198.51.100.7", "--port", "0"], "cannot listen on 198.51.100.7:0"),
    (["--bind", "127.0.0.1", "--port", "0", "--concurrent", "0"], "--concurrent 0 is out of range; use 1..64"),
    (["--bind", "127.0.0.1", "--port", "0", "--sessions", "0"], "--sessions 0 is out of range"),
    (["--bind", "127.0.0.1", "--port", "0", "--max-run", "0s"], "--max-run 0s is out of range; use 1s..3600s"),
    (["--bind", "127.0.0.1", "--port", "0", "--max-run", "2h"], "--max-run 7200s is out of range"),
    (["--bind", "127.0.0.1", "--port", "0", "--max-run", "soon"], "--max-run"),
]


@pytest.mark.parametrize("argv,fragment", MEASURE, ids=[" ".join(a) for a, _ in MEASURE])
def test_measure_verbs_bad_input(run_cli, argv, fragment):
    run_cli("measure", "verbs", "--no-store", *argv).one_line_error(2, fragment)


@pytest.mark.parametrize("argv,fragment", SERVE, ids=[" ".join(a) for a, _ in SERVE])
def test_serve_bad_input(run_cli, argv, fragment):
    run_cli("serve", *argv).one_line_error(2, fragment)
