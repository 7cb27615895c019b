import pytest

from rig.guest.probe import ipv4_gid_index, parse_devinfo_mtu
from rig.rdma.perftest import parse_report

IB_WRITE_BW = """---------------------------------------------------------------------------------------
 GID: 00:00:00:00:00:00:00:00:00:00:255:255:198:18:00:02
---------------------------------------------------------------------------------------
 #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]
 1048576    50               0.21               0.18   \t\t   0.000021
---------------------------------------------------------------------------------------
"""

DEVINFO = """hca_id:\trxe0
\ttransport:\t\t\tInfiniBand (0)
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_ACTIVE (4)
\t\t\tmax_mtu:\t\t4096 (5)
\t\t\tactive_mtu:\t\t1024 (3)
"""


def test_ib_write_bw_result_line():
    r = parse_report(IB_WRITE_BW)
    assert r == {"bytes_per_msg": 1048576.0, "iterations": 50.0, "bw_peak_gbits_per_s": 0.21,
                 "bw_average_gbits_per_s": 0.18, "msg_rate_mpps": 0.000021}
    with pytest.raises(ValueError, match="no result line"):
        parse_report("Couldn't connect to 198.18.0.2:18515\n")


def test_devinfo_mtu():
    assert parse_devinfo_mtu(DEVINFO) == {"active_mtu_bytes": 1024, "max_mtu_bytes": 4096}
    assert parse_devinfo_mtu("") == {}


def test_ipv4_mapped_gid_is_found():
    dev = {"gids": [{"index": 0, "gid": "fe80:0000:0000:0000:a471:15ff:fe0d:b51b"},
                    {"index": 1, "gid": "0000:0000:0000:0000:0000:ffff:c612:0001"}]}
    assert ipv4_gid_index(dev) == 1
    assert ipv4_gid_index({"gids": dev["gids"][:1]}) is None
