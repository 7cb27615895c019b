import pytest

from scenarios import units
from scenarios.errors import InputError


@pytest.mark.parametrize("text, value", [
    ("8MiB", 8 * 1024**2), ("64KiB", 65536), ("4096", 4096), ("1GB", 1e9), ("100Mbit", 12.5e6), (512, 512),
])
def test_sizes(text, value):
    assert units.parse_size(text) == value


@pytest.mark.parametrize("text, value", [
    ("200Gbit/s", 25e9), ("46GB/s", 46e9), ("100Gbps", 12.5e9), ("12.5GB/s", 12.5e9),
])
def test_rates(text, value):
    assert units.parse_rate(text) == pytest.approx(value)


def test_times_and_freq():
    assert units.parse_time("250ns") == pytest.approx(2.5e-7)
    assert units.parse_time("10s") == 10
    assert units.parse_freq("2.25GHz") == 2.25e9


def test_size_lists():
    assert units.parse_size_list("4KiB..32KiB") == [4096, 8192, 16384, 32768]
    assert units.parse_size_list("64KiB,1MiB") == [65536, 1048576]
    assert units.parse_int_list("1,2,4") == [1, 2, 4]


@pytest.mark.parametrize("fn, text", [
    (units.parse_size, "8 parsecs"), (units.parse_rate, "200Gbit"), (units.parse_time, "soon"),
    (units.parse_size_list, "8MiB..4KiB"), (units.parse_int_list, "one,two"),
])
def test_bad_input_names_the_field(fn, text):
    with pytest.raises(InputError) as info:
        fn(text, where="platform.link.rate")
    assert "platform.link.rate" in info.value.one_line() or "range" in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_format():
    assert units.format_size(8 * 1024**2) == "8MiB"
    assert units.format_rate(25e9) == "25.00GB/s (200.0Gbit/s)"


@pytest.mark.parametrize("key,name,header", [
    ("cpu_system_s_per_gb", None, "cpu system [CPU-s/GB]"),
    ("tx_system_cpu_s_per_gb", "tx sys", "tx sys [CPU-s/GB]"),
    ("median_gbytes_per_s", None, "median [GB/s]"),
    ("bw_peak_gbits_per_s", "BW peak", "BW peak [Gbit/s]"),
    ("io_size_bytes", "I/O size", "I/O size [B]"),
    ("foreign_cpu_per_s", "foreign", "foreign [CPU-s/s]"),
    ("latency_median_s", None, "latency median [s]"),
    ("copy_path", "copy path", "copy path"),
    ("gbytes_per_s", None, "[GB/s]"),
    ("gbytes_per_s", "throughput", "throughput [GB/s]"),
])
def test_headers_take_their_unit_from_the_key(key, name, header):
    assert units.unit_header(key, name) == header


@pytest.mark.parametrize("fn, text", [
    (units.parse_rate, "1e999GB/s"), (units.parse_rate, "1e30GB/s"), (units.parse_size, "1e999B"),
    (units.parse_time, "1e-40s"), (units.parse_freq, "1e999GHz"), (units.parse_size, float("inf")),
    (units.parse_rate, float("nan")), (units.parse_time, float("-inf")), (units.parse_size_list, "1KiB..1e999B"),
])
def test_infinite_nan_and_absurd_exponents_are_one_line(fn, text):
    with pytest.raises(InputError) as info:
        fn(text, where="--target")
    line = info.value.one_line()
    assert "--target" in line and "not a finite" in line and "\n" not in line


@pytest.mark.parametrize("value, unit", [(25e9, "bytes/s"), (12.5e9, "bits/s"), (65536, "bytes"), (2.5e-7, "s"),
                                         (2.6e9, "Hz")])
def test_quantity_text_reads_back(value, unit):
    text = units.quantity_text(value, unit)
    parser = {"bytes/s": units.parse_rate, "bits/s": units.parse_rate, "bytes": units.parse_size,
              "s": units.parse_time, "Hz": units.parse_freq}[unit]
    assert parser(text) == pytest.approx(value)
