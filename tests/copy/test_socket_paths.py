"""Every socket path on real sockets: exact bytes, in order (crc32 over the received stream)."""

import os

import pytest

from rig import accounting as acct
from rig.copy import senders, sources, transfer, uring

TOTAL = 3 * (1 << 20) + 4097  # not a multiple of the chunk or a page: partial last chunk


@pytest.fixture(scope="module")
def tmpfs_source():
    src = sources.open_source("tmpfs", 2 << 20)
    yield src
    src.close()


@pytest.fixture(scope="module")
def anon_source():
    src = sources.open_source("anon", 2 << 20)
    yield src
    src.close()


def _transfer_checked(path, source, chunk):
    raw = transfer.run(path, source, chunk, total_bytes=TOTAL, verify=True)
    if "refused" in raw:
        pytest.skip(f"{path} refused by this kernel: {raw['refused']}")
    assert raw["sent"]["bytes"] == TOTAL
    assert raw["received"]["bytes"] == TOTAL
    assert raw["received"]["crc32"] == source.stream_crc32(TOTAL)
    return raw


@pytest.mark.parametrize("path", senders.PATHS)
def test_path_moves_exactly_the_file_bytes(path, tmpfs_source):
    raw = _transfer_checked(path, tmpfs_source, 1 << 20)
    split = transfer.cpu_split(raw)
    assert split["gbytes_per_s"] > 0
    assert split["total_cpu_s_per_gb"] > 0


@pytest.mark.parametrize("path", ["rw", "vmsplice", "msg-zerocopy", "uring-send"])
def test_user_memory_paths_from_anonymous_memory(path, anon_source):
    _transfer_checked(path, anon_source, 64 << 10)


def test_disk_page_cache_source_sendfile_and_splice():
    src = sources.open_source("disk", 1 << 20)
    try:
        assert src.info["filesystem"] not in ("tmpfs", "ramfs")
        for path in ("rw", "sendfile", "splice"):
            _transfer_checked(path, src, 256 << 10)
    finally:
        src.close()
    assert not src.path.exists()


def test_file_paths_refuse_anonymous_memory(anon_source):
    for path in senders.FILE_ONLY:
        raw = transfer.run(path, anon_source, 1 << 20, total_bytes=1 << 20)
        assert "anonymous memory has no file" in raw["refused"]


@pytest.mark.parametrize("path", ["msg-zerocopy", "uring-send-zc"])
def test_zero_copy_paths_say_the_kernel_copied_on_loopback(path, tmpfs_source):
    raw = _transfer_checked(path, tmpfs_source, 1 << 20)
    info = raw["sent"]["info"]
    assert info["zerocopy_completed"] == info["zerocopy_sends"] > 0
    assert info["kernel_copied"] is True
    assert info["zerocopy_copied"] == info["zerocopy_sends"]
    assert transfer.cpu_split(raw)["kernel_copied"] is True


def test_send_zc_notifications_that_overflow_the_completion_ring_all_arrive(tmpfs_source):
    # thousands of 64 KiB sends, one request in flight: notifications pile up past the 16-entry CQ
    # ring while the sender sends. They must all be read (the kernel keeps the overflow until an
    # io_uring_enter flushes it) and the sender must not sit out its 10 s completion deadline.
    raw = transfer.run("uring-send-zc", tmpfs_source, 64 << 10, duration_s=0.3)
    if "refused" in raw:
        pytest.skip(f"uring-send-zc refused by this kernel: {raw['refused']}")
    info = raw["sent"]["info"]
    assert info["zerocopy_sends"] > 16 and info["zerocopy_completed"] == info["zerocopy_sends"]
    assert raw["sent"]["end"] - raw["sent"]["start"] < senders.NOTIFICATION_WAIT_S


def test_zero_copy_is_never_claimed_without_every_completion():
    assert senders._copied_verdict(copied=0, completed=9, sends=10) is None
    assert senders._copied_verdict(copied=0, completed=0, sends=0) is None
    assert senders._copied_verdict(copied=0, completed=10, sends=10) is False
    assert senders._copied_verdict(copied=1, completed=3, sends=10) is True


def test_io_uring_setup_or_skip_with_reason():
    try:
        ring = uring.Uring(4)
    except uring.UringUnavailable as exc:
        pytest.skip(f"io_uring unavailable here: {exc}")
    with ring:
        assert ring.params.sq_entries >= 4
        assert ring.params.cq_entries >= ring.params.sq_entries


def test_timed_transfer_accounts_cpu_per_side(tmpfs_source):
    raw = transfer.run("sendfile", tmpfs_source, 1 << 20, duration_s=0.2)
    split = transfer.cpu_split(raw)
    assert split["bytes"] == split["bytes_sent"] > 0
    assert split["seconds"] >= 0.19
    for side in ("tx", "rx"):
        for part in ("user", "system"):
            assert split[f"{side}_{part}_cpu_s_per_gb"] >= 0
    gb = split["bytes"] / 1e9
    for side in ("tx", "rx"):
        side_cpu_s = sum(split[f"{side}_{p}_cpu_s_per_gb"] for p in ("user", "system", "softirq")) * gb
        # a side is one process and the softirq of the one CPU it is pinned to: it cannot get more
        # CPU than the wall time of the window /proc/stat was read over (tick sampling: 4 ticks of
        # slack), and it must have used some
        assert 0 < side_cpu_s <= raw["wall_s"] + 4 / acct.TICKS_PER_S, side
    assert split["foreign_cpu_per_s"] >= 0


def test_a_call_the_kernel_refuses_mid_run_becomes_a_skip_with_the_reason():
    from rig.copy import runs
    src = sources.open_source("tmpfs", 1 << 20)
    try:
        os.close(src.fd)   # sendfile from a closed descriptor: the kernel answers EBADF
        src.fd = 10_000
        out = runs._socket_config("sendfile", src, 1 << 20, "loopback", None, 1, 0.1, None, {}, {})
    finally:
        src.fd = None
        src.close()
    assert out.record is None
    assert "sender failed" in out.skipped and "Bad file descriptor" in out.skipped


def test_source_files_of_killed_runs_are_removed():
    dead_pid = 4_000_000  # above pid_max, never alive
    stale = sources.TMPFS_DIR / f"{sources.FILE_PREFIX}{dead_pid}-x"
    stale.write_bytes(b"left by a killed run")
    ours = sources.TMPFS_DIR / f"{sources.FILE_PREFIX}{os.getpid()}-x"
    ours.write_bytes(b"in use")
    try:
        removed = sources.remove_stale(sources.TMPFS_DIR)
        assert stale in removed and ours not in removed
        assert ours.exists() and not stale.exists()
    finally:
        stale.unlink(missing_ok=True)
        ours.unlink(missing_ok=True)
