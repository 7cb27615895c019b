"""The memcpy probe on real buffers, at small sizes."""

import pytest

from rig.copy import memcpy
from rig.copy.buffers import PAGE_BYTES, address_of, aligned_buffer, page_offset


def test_buffers_are_page_aligned_and_resident():
    for size in (1, 4096, 100_000, 3 << 20):
        buf = aligned_buffer(size, fill=0x33)
        assert address_of(buf) % PAGE_BYTES == 0
        assert page_offset(buf) == 0
        assert buf[0] == 0x33 and buf[size - 1] == 0x33
        buf.close()


def test_bytearray_is_not_what_the_probe_uses():
    # the trap the probe avoids: a large bytearray's data is not page-aligned
    assert any(address_of(bytearray(1 << 20)) % PAGE_BYTES for _ in range(4))


@pytest.mark.parametrize("size", [64 << 10, 4 << 20])
def test_memcpy_bandwidth_positive_and_timed_long_enough(size):
    count, alignment = memcpy.calibrate_count(size, min_timing_s=0.02)
    assert alignment == {"src_page_offset_bytes": 0, "dst_page_offset_bytes": 0}
    timings = memcpy.measure(size, processes=1, timings=2, count=count)
    assert len(timings) == 2
    for t in timings:
        # the count was calibrated for >= 20 ms of CPU; a busy host only lengthens the wall time
        assert t.wall_s >= 0.01 and max(t.per_process_cpu_s) >= 0.01
        assert 0.1 < t.total_gbytes_per_s < 1000
        assert t.per_core_gbytes_per_s == pytest.approx(t.total_gbytes_per_s)


def test_two_copiers_each_report_a_span():
    count, _ = memcpy.calibrate_count(256 << 10, min_timing_s=0.01)
    (t,) = memcpy.measure(256 << 10, processes=2, timings=1, count=count)
    assert t.processes == 2 and len(t.per_process_s) == 2
    assert t.total_gbytes_per_s == pytest.approx(2 * t.per_core_gbytes_per_s)
    assert t.wall_s >= max(t.per_process_s)


def test_call_overhead_is_sub_microsecond_scale():
    assert 1e-9 < memcpy.call_overhead_s(20_000) < 2e-5


def test_batches_are_one_copy_from_about_a_mebibyte_and_longer_below():
    assert memcpy.copies_per_batch(1 << 20, 2500, 20e-6) == 1           # one copy per stamp, as mbw
    assert memcpy.copies_per_batch(4096, 150_000, 0.3e-6) == 50          # >= 15 us of copies per stamp
    assert memcpy.copies_per_batch(4096, 10, 0.3e-6) == 10               # never more than the timing


def test_batch_median_is_stamped_per_batch():
    count, _ = memcpy.calibrate_count(1 << 20, min_timing_s=0.01)
    per_batch = memcpy.copies_per_batch(1 << 20, count, 0.01 / count)
    (t,) = memcpy.measure(1 << 20, processes=1, timings=1, count=count, per_batch=per_batch)
    assert t.copies_per_process % per_batch == 0
    assert len(t.per_process_batch_s[0]) == t.copies_per_process // per_batch
    assert sum(t.per_process_batch_s[0]) == pytest.approx(t.per_process_s[0], rel=1e-6)
    assert 0.1 < t.batch_median_per_core_gbytes_per_s < 1000
