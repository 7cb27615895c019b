"""SMB Direct on the wire and its credit rules, without a device: sizes as the specifications give
them, every MUST that ends a connection, SMB2 errors that do not, the credit ledger."""

from __future__ import annotations

import struct

import pytest

from rig.flows import smbd
from rig.flows.descriptor import BufferDescriptor

DESC = BufferDescriptor(0x7F00_0000_1000, 0x1234, 1 << 20)


def negotiated(credits: smbd.Credits | None = None, limits: smbd.Limits = smbd.Limits()):
    credits = credits or smbd.Credits(posted=263)
    return smbd.accept_request(smbd.request_for(limits, 255), limits, credits)


# ---- sizes on the wire -----------------------------------------------------------------------

def test_message_sizes_are_the_specifications_and_the_models_framing():
    assert smbd.NEGOTIATE_REQUEST.size == 20 and smbd.NEGOTIATE_RESPONSE.size == 32
    assert smbd.SMB2_HEADER.size == 64 and smbd.READ_REQUEST.size == 48 and smbd.WRITE_REQUEST.size == 48
    read = smbd.DataTransfer(255, 3, data=smbd.read_request(1, 0, DESC).pack()).pack()
    assert len(read) == 24 + 64 + 48 + 16 == 152
    hdr = smbd.read_request(1, 0, DESC).header
    response = smbd.DataTransfer(255, 1, data=smbd.IoResponse(hdr.response(), 1 << 20).pack()).pack()
    # models/resources.py: SMBD_DATA_HEADER + SMB2_HEADER + SMB2_READ_RESPONSE per READ response
    from models.resources import SMB2_HEADER, SMB2_READ_RESPONSE, SMBD_DATA_HEADER
    assert len(response) == SMBD_DATA_HEADER + SMB2_HEADER + SMB2_READ_RESPONSE == 104
    assert len(smbd.DataTransfer(255, 7).pack()) == 20           # no payload: no padding
    error = smbd.IoResponse(hdr.response(smbd.STATUS_INVALID_PARAMETER)).pack()
    assert len(error) == 64 + 9


def test_negotiate_request_and_data_header_fields_in_order():
    raw = smbd.request_for(smbd.Limits(), 255).pack()
    assert struct.unpack("<HHHHIII", raw) == (0x0100, 0x0100, 0, 255, 1364, 1364, 1 << 20)
    msg = smbd.DataTransfer(255, 9, smbd.RESPONSE_REQUESTED, 0, b"x" * 8).pack()
    assert struct.unpack_from("<HHHHIII", msg) == (255, 9, 1, 0, 0, 24, 8) and msg[20:24] == bytes(4)


def test_read_and_write_requests_round_trip():
    for make in (smbd.read_request, smbd.write_request):
        req = make(42, 3 << 20, DESC)
        back = smbd.parse_request(req.pack(), 8 << 20)
        assert (back.offset, back.length, back.descriptors, back.header.message_id) == (3 << 20, 1 << 20, (DESC,), 42)
        assert back.header.credit_charge == 16                  # 1 MiB = 16 credits of 64 KiB
        assert back.is_read == (make is smbd.read_request)
    raw = smbd.write_request(1, 0, DESC).pack()
    body = struct.unpack_from("<HHIQ16sIIHHI", raw, 64)
    assert body[2] == 0 and body[6] == 1 << 20                   # RDMA channel: Length 0, RemainingBytes holds it


def test_responses_round_trip_and_count_the_bytes_moved():
    hdr = smbd.read_request(5, 0, DESC).header
    resp = smbd.parse_response(smbd.IoResponse(hdr.response(), 12345).pack())
    assert resp.count == 12345 and resp.status == smbd.STATUS_SUCCESS and resp.header.message_id == 5
    err = smbd.parse_response(smbd.IoResponse(hdr.response(smbd.STATUS_END_OF_FILE)).pack())
    assert err.status == smbd.STATUS_END_OF_FILE and err.count == 0
    whdr = smbd.write_request(6, 0, DESC).header
    assert smbd.parse_response(smbd.IoResponse(whdr.response(), 4096).pack()).count == 4096
    with pytest.raises(smbd.Terminate, match="request arrived"):
        smbd.parse_response(smbd.read_request(1, 0, DESC).pack())


# ---- negotiation ([MS-SMBD] 3.1.5.6, 3.1.5.7) -----------------------------------------------------

def test_negotiation_takes_the_smaller_sizes_and_grants_what_was_asked():
    limits = smbd.Limits()
    server = smbd.Credits(posted=263)
    req = smbd.NegotiateRequest(credits_requested=16, preferred_send_size=1024, max_receive_size=8192,
                                max_fragmented_size=1 << 20)
    resp, params = smbd.accept_request(req, limits, server)
    assert resp.credits_granted == 16 and server.receive == 16
    assert params.max_receive_size == 1024 and params.max_send_size == 1364
    client = smbd.Credits(posted=20, receive_max=20)
    seen = smbd.accept_response(smbd.NegotiateResponse.unpack(resp.pack()), req, limits, client)
    assert client.send == 16 and client.receive_target == 20
    assert seen.max_read_write_size == 8 << 20 and seen.as_params()["max_fragmented_bytes"] == 1 << 20


@pytest.mark.parametrize("fields,fragment", [
    ({"min_version": 0x0200, "max_version": 0x0200}, "STATUS_NOT_SUPPORTED"),
    ({"credits_requested": 0}, "no credits"),
    ({"max_receive_size": 64}, "below 128"),
    ({"max_fragmented_size": 65536}, "MaxFragmentedSize"),
])
def test_a_bad_negotiate_request_ends_the_connection(fields, fragment):
    req = smbd.NegotiateRequest(**{**dict(credits_requested=255, preferred_send_size=1364, max_receive_size=1364,
                                          max_fragmented_size=1 << 20), **fields})
    with pytest.raises(smbd.Terminate, match=fragment) as info:
        smbd.accept_request(smbd.NegotiateRequest.unpack(req.pack()), smbd.Limits(), smbd.Credits(posted=10))
    if "min_version" in fields:           # a version mismatch is answered first, as 3.1.5.3 says
        failure = smbd.NegotiateResponse.unpack(info.value.response.pack())
        assert failure.status == smbd.STATUS_NOT_SUPPORTED and failure.min_version == failure.max_version == 0x0100


def test_a_truncated_negotiate_message_ends_the_connection():
    with pytest.raises(smbd.Terminate, match="at least 20"):
        smbd.NegotiateRequest.unpack(bytes(12))
    with pytest.raises(smbd.Terminate, match="at least 32"):
        smbd.NegotiateResponse.unpack(bytes(20))


def test_the_client_refuses_a_failed_or_empty_negotiate_response():
    req = smbd.request_for(smbd.Limits(), 255)
    with pytest.raises(smbd.Terminate, match="no common version"):
        smbd.accept_response(smbd.NegotiateResponse.failure(), req, smbd.Limits(), smbd.Credits())
    empty = smbd.NegotiateResponse(smbd.STATUS_SUCCESS, 255, 0, 8 << 20, 1364, 1364, 1 << 20)
    with pytest.raises(smbd.Terminate, match="no credits"):
        smbd.accept_response(empty, req, smbd.Limits(), smbd.Credits())


# ---- data transfer messages ([MS-SMBD] 3.1.5.8) ---------------------------------------------------

@pytest.mark.parametrize("raw,fragment", [
    (bytes(12), "at least 20"),
    (struct.pack("<HHHHIII", 0, 1, 0, 0, 0, 0, 0), "no credits"),
    (struct.pack("<HHHHIII", 1, 1, 0, 0, 0, 20, 4) + bytes(8), "not 8-byte aligned"),
    (struct.pack("<HHHHIII", 1, 1, 0, 0, 0, 24, 100) + bytes(10), "outside"),
    (struct.pack("<HHHHIII", 1, 1, 0, 0, 2 << 20, 24, 8) + bytes(12), "fragmented size"),
])
def test_a_malformed_data_transfer_message_ends_the_connection(raw, fragment):
    with pytest.raises(smbd.Terminate, match=fragment):
        smbd.parse_data_transfer(raw, 1 << 20)


def test_fragments_are_reassembled_and_checked():
    r = smbd.Reassembly(1000)
    assert r.add(smbd.DataTransfer(1, 0, 0, 6, b"abcd")) is None
    assert r.add(smbd.DataTransfer(1, 0, 0, 0, b"efghij")) == b"abcdefghij"
    assert r.add(smbd.DataTransfer(1, 0, 0, 0, b"one")) == b"one"
    with pytest.raises(smbd.Terminate, match="do not add up"):
        r.add(smbd.DataTransfer(1, 0, 0, 4, b"ab"))
        r.add(smbd.DataTransfer(1, 0, 0, 0, b"abc"))
    with pytest.raises(smbd.Terminate, match="exceeds"):
        smbd.Reassembly(4).add(smbd.DataTransfer(1, 0, 0, 0, b"toolong"))


def test_a_keepalive_asks_for_a_response():
    msg = smbd.parse_data_transfer(smbd.DataTransfer(5, 0, smbd.RESPONSE_REQUESTED).pack(), 1 << 20)
    assert msg.response_requested and msg.data == b""


# ---- credits ------------------------------------------------------------------------------------

def test_no_message_without_a_credit_either_way():
    c = smbd.Credits(posted=4, receive_max=4, receive_target=4)
    with pytest.raises(smbd.CreditError, match="no send credit"):
        c.spend()
    c.granted(2)
    c.spend()
    c.spend()
    with pytest.raises(smbd.CreditError):
        c.spend()
    with pytest.raises(smbd.CreditError, match="without a credit"):
        c.consumed()                                         # nothing granted to the peer yet
    assert c.to_grant() == 4 and c.to_grant() == 0           # all posted receives granted once
    for _ in range(4):
        c.consumed()
    with pytest.raises(smbd.CreditError):
        c.consumed()                                         # a fifth message: beyond its credits
    c.reposted(4)
    assert c.to_grant() == 4 and c.consumed_total == 4 and c.spent == 2


def test_grants_stop_at_the_target_and_the_maximum_leaving_a_reserve():
    c = smbd.Credits(posted=263, receive_max=255, receive_target=300)
    assert c.to_grant() == 255 and c.posted - c.receive == 8          # the reserve that catches a violation
    c.receive_target = 10
    c.consumed()
    c.reposted()
    assert c.to_grant() == 0                                          # already above what the peer asks
    low = smbd.Credits(posted=8, receive_max=8, receive_target=8)
    low.to_grant()
    assert not low.low()
    for _ in range(7):
        low.consumed()
    assert low.low()
    with pytest.raises(smbd.Terminate, match="65535"):
        smbd.Credits(send=65535).granted(1)


# ---- SMB2 errors that keep the connection ---------------------------------------------------------

def test_requests_the_server_answers_with_an_error():
    big = BufferDescriptor(0x1000, 1, 16 << 20)
    with pytest.raises(smbd.Smb2Error, match="MaxReadWriteSize") as info:
        smbd.parse_request(smbd.read_request(9, 0, big).pack(), 8 << 20)
    assert info.value.status == smbd.STATUS_INVALID_PARAMETER and info.value.message_id == 9
    raw = bytearray(smbd.read_request(3, 0, DESC).pack())
    struct.pack_into("<I", raw, 64 + 36, smbd.SMB2_CHANNEL_NONE)
    with pytest.raises(smbd.Smb2Error, match="RDMA_V1"):
        smbd.parse_request(bytes(raw), 8 << 20)
    short = smbd.read_request(4, 0, DESC).pack()[:-8]              # the descriptor cut in half
    with pytest.raises(smbd.Smb2Error, match="channel info"):
        smbd.parse_request(short, 8 << 20)
    small = smbd.IoRequest(smbd.Smb2Header(smbd.SMB2_READ, 5), 0, 1 << 20, (BufferDescriptor(0, 1, 4096),))
    with pytest.raises(smbd.Smb2Error, match="hold 4096"):
        smbd.parse_request(small.pack(), 8 << 20)
    other = smbd.Smb2Header(0x0005, 6).pack() + bytes(48)
    with pytest.raises(smbd.Smb2Error, match="READ and WRITE only") as info:
        smbd.parse_request(other, 8 << 20)
    assert info.value.status == smbd.STATUS_NOT_SUPPORTED
    with pytest.raises(smbd.Terminate, match="not an SMB2 message"):
        smbd.parse_request(b"\xffSMB" + bytes(100), 8 << 20)


def test_credit_charge_is_one_per_64KiB():
    assert [smbd.credit_charge(n) for n in (1, 65536, 65537, 8 << 20)] == [1, 1, 2, 128]


def test_limits_are_range_checked():
    with pytest.raises(ValueError, match="max_receive_size"):
        smbd.Limits(max_receive_size=100)
    with pytest.raises(ValueError, match="receive_credit_max"):
        smbd.Limits(receive_credit_max=0)
