"""SMB Direct ([MS-SMBD]) carrying SMB2 READ/WRITE over the RDMA channel ([MS-SMB2]): the wire
format, the negotiation and the credit rules, in pure Python (no pyverbs: testable anywhere).

On the wire (little-endian, sizes as the specifications give them):
- Negotiate Request, 20 bytes ([MS-SMBD] 2.2.1): MinVersion, MaxVersion, Reserved,
  CreditsRequested, PreferredSendSize, MaxReceiveSize, MaxFragmentedSize.
- Negotiate Response, 32 bytes (2.2.2): MinVersion, MaxVersion, NegotiatedVersion, Reserved,
  CreditsRequested, CreditsGranted, Status, MaxReadWriteSize, PreferredSendSize, MaxReceiveSize,
  MaxFragmentedSize.
- Data Transfer message (2.2.3): CreditsRequested, CreditsGranted, Flags
  (SMB_DIRECT_RESPONSE_REQUESTED = 0x0001), Reserved, RemainingDataLength, DataOffset,
  DataLength: 20 bytes; with a payload, 4 bytes of padding put the data at offset 24 (8-byte
  aligned, as ksmbd and Windows send it).
- The payload is an SMB2 message: the 64-byte SYNC header ([MS-SMB2] 2.2.1.2), then READ
  (2.2.19: 48 bytes + channel info) / WRITE (2.2.21: 48 bytes + channel info) requests and their
  responses (2.2.20 and 2.2.22: 16 bytes each), or an ERROR response (2.2.2: 8 bytes + 1).
  The channel info of the RDMA channel (SMB2_CHANNEL_RDMA_V1) is a list of
  SMB2_BUFFER_DESCRIPTOR_V1 (rig.flows.descriptor, 16 bytes each).

So a READ request on the wire is 24 + 64 + 48 + 16 = 152 bytes and its response 24 + 64 + 16 =
104 bytes, the framing models/resources.py counts; the data itself goes by RDMA WRITE (READ) or
RDMA READ (WRITE) to/from the client's advertised buffer.

Rules ([MS-SMBD] 3.1.5.6-3.1.5.9): a negotiate request whose version range misses 0x0100 gets a
failure response (STATUS_NOT_SUPPORTED) and the connection ends; one that asks for no credits, a
MaxReceiveSize below 128 or a MaxFragmentedSize below 128 KiB ends the connection. A data
transfer message shorter than 20 bytes, asking for no credits, with a misaligned or overlong
payload, or a fragment run longer than the negotiated maximum ends the connection. A message
that arrives without a credit (the sender had none) ends it too: every posted receive beyond
those granted is a reserve that exists to catch exactly that. Errors of the SMB2 request itself
(an I/O above MaxReadWriteSize, a missing RDMA descriptor, reading past the end of the file) get
an SMB2 ERROR response and the connection goes on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rig.flows.descriptor import SIZE_BYTES as DESCRIPTOR_BYTES
from rig.flows.descriptor import BufferDescriptor

SMBD_VERSION = 0x0100            # [MS-SMBD] 1.7: the only version

# Defaults per connection, [MS-SMBD] 3.1.1.1 (values initialised in 3.1.4.1). ksmbd:
# fs/smb/server/transport_rdma.c (smb_direct_receive_credit_max ... smb_direct_max_read_write_size,
# SMBD_DEFAULT_IOSIZE in transport_rdma.h). Windows Server 2012 and later: [MS-SMBD] Appendix B <2>.
RECEIVE_CREDIT_MAX = 255         # ksmbd smb_direct_receive_credit_max; Windows Connection.ReceiveCreditMax
SEND_CREDIT_TARGET = 255         # ksmbd smb_direct_send_credit_target; Windows Connection.SendCreditTarget
MAX_SEND_SIZE = 1364             # ksmbd smb_direct_max_send_size; Windows Connection.MaxSendSize
MAX_RECEIVE_SIZE = 1364          # ksmbd smb_direct_max_receive_size (Windows: 8192)
MAX_FRAGMENTED_SIZE = 1 << 20    # ksmbd smb_direct_max_fragmented_recv_size; Windows MaxFragmentedRecvSize
MAX_READ_WRITE_SIZE = 8 << 20    # ksmbd SMBD_DEFAULT_IOSIZE (clamped to 512 KiB..16 MiB)
MIN_READ_WRITE_SIZE, MAX_READ_WRITE_LIMIT = 512 << 10, 16 << 20    # ksmbd SMBD_MIN_IOSIZE, SMBD_MAX_IOSIZE
INITIATOR_DEPTH = 8              # ksmbd SMB_DIRECT_CM_INITIATOR_DEPTH: RDMA READs in flight per QP
MIN_RECEIVE_SIZE = 128           # [MS-SMBD] 3.1.5.6: MaxReceiveSize at least 128 bytes
MIN_FRAGMENTED_SIZE = 128 << 10  # [MS-SMBD] 3.1.5.6: MaxFragmentedSize at least 131072 bytes

RESPONSE_REQUESTED = 0x0001      # [MS-SMBD] 2.2.3 SMB_DIRECT_RESPONSE_REQUESTED

# NTSTATUS values ([MS-ERREF] 2.3.1)
STATUS_SUCCESS = 0x00000000
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_END_OF_FILE = 0xC0000011
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_NOT_SUPPORTED = 0xC00000BB

NEGOTIATE_REQUEST = struct.Struct("<HHHHIII")          # 20 bytes
NEGOTIATE_RESPONSE = struct.Struct("<HHHHHHIIIII")     # 32 bytes
DATA_HEADER = struct.Struct("<HHHHIII")                # 20 bytes, padding not included
DATA_OFFSET = 24                                       # payload offset: 20 + 4 padding, 8-byte aligned

# [MS-SMB2]
SMB2_PROTOCOL_ID = b"\xfeSMB"
SMB2_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")       # 64 bytes: the SYNC header
SMB2_READ, SMB2_WRITE = 0x0008, 0x0009
SMB2_FLAGS_SERVER_TO_REDIR = 0x00000001
SMB2_CHANNEL_NONE, SMB2_CHANNEL_RDMA_V1 = 0x00000000, 0x00000001
READ_REQUEST = struct.Struct("<HBBIQ16sIIIHH")         # 48 bytes, StructureSize 49
WRITE_REQUEST = struct.Struct("<HHIQ16sIIHHI")         # 48 bytes, StructureSize 49
READ_RESPONSE = struct.Struct("<HBBIII")               # 16 bytes, StructureSize 17
WRITE_RESPONSE = struct.Struct("<HHIIHH")              # 16 bytes, StructureSize 17
ERROR_RESPONSE = struct.Struct("<HBBIB")               # 9 bytes, StructureSize 9
CREDIT_UNIT_BYTES = 65536                              # [MS-SMB2] 3.1.5.2 CreditCharge per 64 KiB
MAX_DESCRIPTORS = 16                                   # RDMA descriptors accepted in one request
FILE_ID = b"rdmarig-smbd-fid"                          # one open file per connection: a fixed FileId


class Terminate(Exception):
    """The peer broke a MUST of [MS-SMBD]: the connection ends (the reason says which rule)."""


class CreditError(Terminate):
    """A message sent, or received, without a credit."""


class Smb2Error(Exception):
    """An SMB2 request the server answers with an ERROR response (`status`); the connection goes on."""

    def __init__(self, status: int, why: str, message_id: int = 0):
        super().__init__(why)
        self.status, self.message_id = status, message_id


# ---- limits of one end ------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What one end offers before negotiation ([MS-SMBD] 3.1.1.1)."""

    receive_credit_max: int = RECEIVE_CREDIT_MAX
    send_credit_target: int = SEND_CREDIT_TARGET
    max_send_size: int = MAX_SEND_SIZE
    max_receive_size: int = MAX_RECEIVE_SIZE
    max_fragmented_size: int = MAX_FRAGMENTED_SIZE
    max_read_write_size: int = MAX_READ_WRITE_SIZE

    def __post_init__(self) -> None:
        for name in ("receive_credit_max", "send_credit_target"):
            if not 1 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must be 1..65535, got {getattr(self, name)}")
        for name, low in (("max_send_size", MIN_RECEIVE_SIZE), ("max_receive_size", MIN_RECEIVE_SIZE),
                          ("max_fragmented_size", MIN_FRAGMENTED_SIZE), ("max_read_write_size", 1)):
            value = getattr(self, name)
            if not low <= value < (1 << 32):
                raise ValueError(f"{name} must be {low}..2^32-1, got {value}")


@dataclass(frozen=True)
class Negotiated:
    """A connection's parameters after negotiation, as one end sees them."""

    credits_requested: int          # what this end asked of the peer
    credits_granted: int            # what the peer granted in the negotiate response
    max_send_size: int              # the largest message this end may send
    max_receive_size: int           # the largest message this end may receive
    max_fragmented_send_size: int   # the most upper-layer bytes the peer reassembles
    max_fragmented_receive_size: int
    max_read_write_size: int        # the largest RDMA READ/WRITE of one request

    def as_params(self) -> dict[str, int]:
        """The record's negotiated sizes (the client's view: what it may send and receive)."""
        return {"max_read_write_bytes": self.max_read_write_size, "max_send_bytes": self.max_send_size,
                "max_receive_bytes": self.max_receive_size, "max_fragmented_bytes": self.max_fragmented_send_size}


# ---- negotiation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NegotiateRequest:
    credits_requested: int
    preferred_send_size: int
    max_receive_size: int
    max_fragmented_size: int
    min_version: int = SMBD_VERSION
    max_version: int = SMBD_VERSION

    def pack(self) -> bytes:
        return NEGOTIATE_REQUEST.pack(self.min_version, self.max_version, 0, self.credits_requested,
                                      self.preferred_send_size, self.max_receive_size, self.max_fragmented_size)

    @staticmethod
    def unpack(data: bytes) -> "NegotiateRequest":
        if len(data) < NEGOTIATE_REQUEST.size:
            raise Terminate(f"negotiate request of {len(data)} bytes, at least {NEGOTIATE_REQUEST.size} "
                            "([MS-SMBD] 3.1.5.6)")
        lo, hi, _, credits, preferred, max_recv, max_frag = NEGOTIATE_REQUEST.unpack_from(data)
        return NegotiateRequest(credits, preferred, max_recv, max_frag, lo, hi)


@dataclass(frozen=True)
class NegotiateResponse:
    status: int
    credits_requested: int = 0
    credits_granted: int = 0
    max_read_write_size: int = 0
    preferred_send_size: int = 0
    max_receive_size: int = 0
    max_fragmented_size: int = 0
    negotiated_version: int = SMBD_VERSION
    min_version: int = SMBD_VERSION
    max_version: int = SMBD_VERSION

    def pack(self) -> bytes:
        return NEGOTIATE_RESPONSE.pack(self.min_version, self.max_version, self.negotiated_version, 0,
                                       self.credits_requested, self.credits_granted, self.status,
                                       self.max_read_write_size, self.preferred_send_size, self.max_receive_size,
                                       self.max_fragmented_size)

    @staticmethod
    def unpack(data: bytes) -> "NegotiateResponse":
        if len(data) < NEGOTIATE_RESPONSE.size:
            raise Terminate(f"negotiate response of {len(data)} bytes, at least {NEGOTIATE_RESPONSE.size} "
                            "([MS-SMBD] 3.1.5.2)")
        lo, hi, ver, _, req, granted, status, rw, pref, max_recv, max_frag = NEGOTIATE_RESPONSE.unpack_from(data)
        return NegotiateResponse(status, req, granted, rw, pref, max_recv, max_frag, ver, lo, hi)

    @staticmethod
    def failure(status: int = STATUS_NOT_SUPPORTED) -> "NegotiateResponse":
        """[MS-SMBD] 3.1.5.3: a failure response names the version this end speaks, nothing else."""
        return NegotiateResponse(status, negotiated_version=0)


def request_for(limits: Limits, credits_requested: int) -> NegotiateRequest:
    """The initiator's negotiate request ([MS-SMBD] 3.1.5.2 order: it offers, the listener decides)."""
    return NegotiateRequest(credits_requested, limits.max_send_size, limits.max_receive_size,
                            limits.max_fragmented_size)


def accept_request(req: NegotiateRequest, limits: Limits, credits: "Credits") -> tuple[NegotiateResponse, Negotiated]:
    """The listener's side of [MS-SMBD] 3.1.5.6: the response to send and the connection's
    parameters. A version range without 0x0100 raises Terminate carrying the failure response to
    send first (`.response`); the other violations raise Terminate alone."""
    if not req.min_version <= SMBD_VERSION <= req.max_version:
        exc = Terminate(f"negotiate request offers versions {req.min_version:#06x}..{req.max_version:#06x}, "
                        f"not {SMBD_VERSION:#06x}: STATUS_NOT_SUPPORTED ([MS-SMBD] 3.1.5.6)")
        exc.response = NegotiateResponse.failure()          # type: ignore[attr-defined]
        raise exc
    if req.credits_requested == 0:
        raise Terminate("negotiate request asks for no credits ([MS-SMBD] 3.1.5.6)")
    if req.max_receive_size < MIN_RECEIVE_SIZE:
        raise Terminate(f"negotiate request's MaxReceiveSize {req.max_receive_size} is below {MIN_RECEIVE_SIZE} "
                        "([MS-SMBD] 3.1.5.6)")
    if req.max_fragmented_size < MIN_FRAGMENTED_SIZE:
        raise Terminate(f"negotiate request's MaxFragmentedSize {req.max_fragmented_size} is below "
                        f"{MIN_FRAGMENTED_SIZE} ([MS-SMBD] 3.1.5.6)")
    max_receive = max(MIN_RECEIVE_SIZE, min(limits.max_receive_size, req.preferred_send_size))
    credits.receive_target = min(req.credits_requested, credits.receive_max)
    granted = credits.to_grant()
    if granted == 0:
        raise Terminate("no receive posted to grant ([MS-SMBD] 3.1.5.6: ReceiveCredits is zero)")
    resp = NegotiateResponse(STATUS_SUCCESS, limits.send_credit_target, granted, limits.max_read_write_size,
                             limits.max_send_size, max_receive, limits.max_fragmented_size)
    params = Negotiated(limits.send_credit_target, req.credits_requested,
                        max_send_size=min(limits.max_send_size, req.max_receive_size),
                        max_receive_size=max_receive,
                        max_fragmented_send_size=req.max_fragmented_size,
                        max_fragmented_receive_size=limits.max_fragmented_size,
                        max_read_write_size=limits.max_read_write_size)
    return resp, params


def accept_response(resp: NegotiateResponse, req: NegotiateRequest, limits: Limits,
                    credits: "Credits") -> Negotiated:
    """The initiator's side ([MS-SMBD] 3.1.5.7, receiving the negotiate response): Terminate on a
    failure status or values out of the protocol's ranges; else the connection's parameters, the
    credits granted added to this end's send credits."""
    if resp.status != STATUS_SUCCESS:
        raise Terminate(f"the server refused the negotiation: status {resp.status:#010x}"
                        + (" (STATUS_NOT_SUPPORTED: no common version)" if resp.status == STATUS_NOT_SUPPORTED else ""))
    if resp.negotiated_version != SMBD_VERSION:
        raise Terminate(f"negotiated version {resp.negotiated_version:#06x}, this end speaks {SMBD_VERSION:#06x}")
    if resp.credits_granted == 0 or resp.credits_requested == 0:
        raise Terminate("negotiate response grants or asks for no credits ([MS-SMBD] 3.1.5.7)")
    if resp.preferred_send_size < MIN_RECEIVE_SIZE or resp.max_receive_size < MIN_RECEIVE_SIZE:
        raise Terminate("negotiate response's sizes are below 128 bytes ([MS-SMBD] 3.1.5.7)")
    if resp.max_fragmented_size < MIN_FRAGMENTED_SIZE or resp.max_read_write_size == 0:
        raise Terminate("negotiate response's MaxFragmentedSize or MaxReadWriteSize is out of range")
    credits.granted(resp.credits_granted)
    credits.receive_target = min(resp.credits_requested, credits.receive_max)
    return Negotiated(req.credits_requested, resp.credits_granted,
                      max_send_size=min(limits.max_send_size, resp.max_receive_size),
                      max_receive_size=min(limits.max_receive_size, resp.preferred_send_size),
                      max_fragmented_send_size=resp.max_fragmented_size,
                      max_fragmented_receive_size=limits.max_fragmented_size,
                      max_read_write_size=min(limits.max_read_write_size, resp.max_read_write_size))


# ---- credits ----------------------------------------------------------------------------------

@dataclass
class Credits:
    """One end's credits ([MS-SMBD] 3.1.1.1 Connection.SendCredits / ReceiveCredits, 3.1.5.9).

    send: messages this end may still send (the peer granted them); receive: receives granted to
    the peer and not yet consumed; posted: receives posted on the QP (granted or not: the
    ungranted ones are a reserve that catches a peer sending without a credit); receive_target:
    what the peer asked for (its CreditsRequested), granted up to receive_max."""

    posted: int = 0
    receive_max: int = RECEIVE_CREDIT_MAX
    send: int = 0
    receive: int = 0
    receive_target: int = 1
    spent: int = 0                  # messages sent with a credit
    consumed_total: int = 0         # messages received against a credit

    def spend(self) -> None:
        """Before posting a data transfer message: one credit, or CreditError."""
        if self.send <= 0:
            raise CreditError("no send credit: the peer has granted no receive for this message")
        self.send -= 1
        self.spent += 1

    def granted(self, n: int) -> None:
        """The peer's CreditsGranted (a negotiate response or a data transfer message)."""
        if self.send + n > 0xFFFF:
            raise Terminate(f"the peer granted {n} credits on top of {self.send}: more than 65535")
        self.send += n

    def consumed(self) -> None:
        """A data transfer message arrived: it used one of the receives this end granted."""
        if self.receive <= 0:
            raise CreditError("the peer sent a message without a credit (none of its granted receives "
                              "was left): the connection ends")
        self.receive -= 1
        self.posted -= 1
        self.consumed_total += 1

    def negotiate_received(self) -> None:
        """The negotiate request/response used a receive no credit covered (posted for it alone)."""
        self.posted -= 1

    def reposted(self, n: int = 1) -> None:
        self.posted += n

    def to_grant(self) -> int:
        """Credits to grant in the next message ([MS-SMBD] 3.1.5.9): receives posted and not yet
        granted, up to what the peer asked for; counted as granted at once."""
        n = max(0, min(self.posted, self.receive_target, self.receive_max) - self.receive)
        self.receive += n
        return n

    def low(self) -> bool:
        """The peer is about to run out (an eighth of its target left, as ksmbd's
        is_receive_credit_post_required): grant promptly, even without data to send."""
        return self.receive <= self.receive_target >> 3


# ---- data transfer messages -------------------------------------------------------------------

@dataclass(frozen=True)
class DataTransfer:
    credits_requested: int
    credits_granted: int
    flags: int = 0
    remaining_data_length: int = 0
    data: bytes = b""

    def pack(self) -> bytes:
        if not self.data:
            return DATA_HEADER.pack(self.credits_requested, self.credits_granted, self.flags, 0,
                                    self.remaining_data_length, 0, 0)
        return DATA_HEADER.pack(self.credits_requested, self.credits_granted, self.flags, 0,
                                self.remaining_data_length, DATA_OFFSET, len(self.data)) + bytes(4) + self.data

    @property
    def response_requested(self) -> bool:
        return bool(self.flags & RESPONSE_REQUESTED)


def to_send(msg: DataTransfer, credits: Credits, max_send_size: int) -> bytes:
    """The bytes of a data transfer message about to be sent: within the negotiated send size,
    one send credit spent (CreditError without one)."""
    data = msg.pack()
    if len(data) > max_send_size:
        raise Terminate(f"a {len(data)}-byte message exceeds the negotiated send size {max_send_size}")
    credits.spend()
    return data


def parse_data_transfer(msg: bytes, max_fragmented_size: int) -> DataTransfer:
    """[MS-SMBD] 3.1.5.8: the checks whose failure ends the connection, then the message."""
    if len(msg) < DATA_HEADER.size:
        raise Terminate(f"data transfer message of {len(msg)} bytes, at least {DATA_HEADER.size} ([MS-SMBD] 3.1.5.8)")
    requested, granted, flags, _, remaining, offset, length = DATA_HEADER.unpack_from(msg)
    if requested == 0:
        raise Terminate("data transfer message asks for no credits ([MS-SMBD] 3.1.5.8)")
    if length and offset % 8:
        raise Terminate(f"data offset {offset} is not 8-byte aligned ([MS-SMBD] 3.1.5.8)")
    if length and offset < DATA_HEADER.size or offset + length > len(msg):
        raise Terminate(f"data at {offset}..{offset + length} lies outside the {len(msg)}-byte message "
                        "([MS-SMBD] 3.1.5.8)")
    if length + remaining > max_fragmented_size:
        raise Terminate(f"{length} + {remaining} remaining bytes exceed the negotiated fragmented size "
                        f"{max_fragmented_size} ([MS-SMBD] 3.1.5.8)")
    return DataTransfer(requested, granted, flags, remaining, bytes(msg[offset:offset + length]) if length else b"")


@dataclass
class Reassembly:
    """Connection.FragmentReassemblyBuffer: payloads appended until RemainingDataLength is 0."""

    max_bytes: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    expected: int | None = None       # bytes the first fragment announced (its data + remaining)

    def add(self, msg: DataTransfer) -> bytes | None:
        """The whole upper-layer message once its last fragment arrived, else None."""
        if not msg.data:
            if msg.remaining_data_length:
                raise Terminate("a fragment without data announces more to come")
            return None
        if self.expected is None:
            self.expected = len(msg.data) + msg.remaining_data_length
        elif self.size + len(msg.data) + msg.remaining_data_length != self.expected:
            raise Terminate("fragment lengths do not add up to what the first fragment announced")
        self.parts.append(msg.data)
        self.size += len(msg.data)
        if self.size > self.max_bytes:
            raise Terminate(f"reassembled message exceeds the negotiated {self.max_bytes} bytes")
        if msg.remaining_data_length:
            return None
        whole = b"".join(self.parts)
        self.parts, self.size, self.expected = [], 0, None
        return whole


# ---- SMB2 -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Smb2Header:
    command: int
    message_id: int
    credit_charge: int = 1
    credits: int = 1                 # CreditRequest (request) / CreditResponse (response)
    status: int = STATUS_SUCCESS
    flags: int = 0
    session_id: int = 1
    tree_id: int = 1

    def pack(self) -> bytes:
        return SMB2_HEADER.pack(SMB2_PROTOCOL_ID, 64, self.credit_charge, self.status, self.command, self.credits,
                                self.flags, 0, self.message_id, 0, self.tree_id, self.session_id, bytes(16))

    def response(self, status: int = STATUS_SUCCESS) -> "Smb2Header":
        return Smb2Header(self.command, self.message_id, self.credit_charge, max(1, self.credits), status,
                          SMB2_FLAGS_SERVER_TO_REDIR, self.session_id, self.tree_id)


def credit_charge(length: int) -> int:
    """[MS-SMB2] 3.1.5.2: one credit per 64 KiB (at least one)."""
    return max(1, -(-length // CREDIT_UNIT_BYTES))


def parse_header(msg: bytes) -> Smb2Header:
    """The SMB2 header of an upper-layer message; Terminate when there is none to answer."""
    if len(msg) < SMB2_HEADER.size:
        raise Terminate(f"SMB2 message of {len(msg)} bytes, shorter than its 64-byte header")
    pid, size, charge, status, command, credits, flags, _next, mid, _pid, tree, session, _sig = \
        SMB2_HEADER.unpack_from(msg)
    if pid != SMB2_PROTOCOL_ID or size != 64:
        raise Terminate("not an SMB2 message (ProtocolId or StructureSize of the header is wrong)")
    return Smb2Header(command, mid, charge, credits, status, flags, session, tree)


@dataclass(frozen=True)
class IoRequest:
    """An SMB2 READ or WRITE over the RDMA channel: `length` bytes at file `offset`, to/from the
    client's buffers `descriptors`."""

    header: Smb2Header
    offset: int
    length: int
    descriptors: tuple[BufferDescriptor, ...]
    minimum: int = 0

    @property
    def is_read(self) -> bool:
        return self.header.command == SMB2_READ

    def pack(self) -> bytes:
        info = b"".join(d.pack() for d in self.descriptors)
        info_offset = SMB2_HEADER.size + READ_REQUEST.size
        if self.is_read:
            body = READ_REQUEST.pack(49, 0, 0, self.length, self.offset, FILE_ID, self.minimum,
                                     SMB2_CHANNEL_RDMA_V1, 0, info_offset, len(info))
        else:
            # [MS-SMB2] 2.2.21: over the RDMA channel Length is 0 and RemainingBytes holds the length
            body = WRITE_REQUEST.pack(49, 0, 0, self.offset, FILE_ID, SMB2_CHANNEL_RDMA_V1, self.length,
                                      info_offset, len(info), 0)
        return self.header.pack() + body + info


def read_request(message_id: int, offset: int, desc: BufferDescriptor, minimum: int = 0) -> IoRequest:
    return IoRequest(Smb2Header(SMB2_READ, message_id, credit_charge(desc.length), credit_charge(desc.length)),
                     offset, desc.length, (desc,), minimum)


def write_request(message_id: int, offset: int, desc: BufferDescriptor) -> IoRequest:
    return IoRequest(Smb2Header(SMB2_WRITE, message_id, credit_charge(desc.length), credit_charge(desc.length)),
                     offset, desc.length, (desc,))


def parse_request(msg: bytes, max_read_write_size: int) -> IoRequest:
    """The server's reading of an SMB2 READ/WRITE: Terminate without a usable header, Smb2Error
    (an ERROR response; the connection goes on) for a request it refuses ([MS-SMB2] 3.3.5.12,
    3.3.5.13: a length above the maximum, no RDMA channel, descriptors that do not cover it)."""
    header = parse_header(msg)
    mid = header.message_id
    if header.command not in (SMB2_READ, SMB2_WRITE):
        raise Smb2Error(STATUS_NOT_SUPPORTED, f"SMB2 command {header.command:#06x} is not served here "
                        "(READ and WRITE only)", mid)
    body = msg[SMB2_HEADER.size:]
    if header.command == SMB2_READ:
        if len(body) < READ_REQUEST.size:
            raise Smb2Error(STATUS_INVALID_PARAMETER, f"READ request body of {len(body)} bytes, 48 expected", mid)
        size, _pad, _flags, length, offset, _fid, minimum, channel, _rem, info_off, info_len = \
            READ_REQUEST.unpack_from(body)
    else:
        if len(body) < WRITE_REQUEST.size:
            raise Smb2Error(STATUS_INVALID_PARAMETER, f"WRITE request body of {len(body)} bytes, 48 expected", mid)
        size, _data_off, inline_len, offset, _fid, channel, length, info_off, info_len, _flags = \
            WRITE_REQUEST.unpack_from(body)
        minimum = 0
        if inline_len:
            raise Smb2Error(STATUS_INVALID_PARAMETER, "inline WRITE data is not served: use the RDMA channel", mid)
    if size != 49:
        raise Smb2Error(STATUS_INVALID_PARAMETER, f"StructureSize {size}, 49 expected", mid)
    if channel != SMB2_CHANNEL_RDMA_V1:
        raise Smb2Error(STATUS_INVALID_PARAMETER, f"channel {channel:#x}: only SMB2_CHANNEL_RDMA_V1 is served", mid)
    if length == 0 or length > max_read_write_size:
        raise Smb2Error(STATUS_INVALID_PARAMETER, f"{length} bytes asked, the negotiated MaxReadWriteSize is "
                        f"{max_read_write_size}", mid)
    if info_len < DESCRIPTOR_BYTES or info_len % DESCRIPTOR_BYTES or info_len > MAX_DESCRIPTORS * DESCRIPTOR_BYTES \
            or info_off < SMB2_HEADER.size or info_off + info_len > len(msg):
        raise Smb2Error(STATUS_INVALID_PARAMETER, f"RDMA channel info of {info_len} bytes at {info_off} does not "
                        f"hold whole buffer descriptors inside the {len(msg)}-byte request", mid)
    descs = tuple(BufferDescriptor.unpack(msg, at) for at in range(info_off, info_off + info_len, DESCRIPTOR_BYTES))
    if sum(d.length for d in descs) < length:
        raise Smb2Error(STATUS_INVALID_PARAMETER, f"the RDMA buffers hold {sum(d.length for d in descs)} bytes, "
                        f"{length} asked", mid)
    return IoRequest(header, offset, length, descs, minimum)


@dataclass(frozen=True)
class IoResponse:
    """An SMB2 READ/WRITE response (or ERROR response when status is not success): `count`
    bytes moved (READ: DataRemaining, as over the RDMA channel DataLength is 0; WRITE: Count)."""

    header: Smb2Header
    count: int = 0

    @property
    def status(self) -> int:
        return self.header.status

    def pack(self) -> bytes:
        if self.header.status != STATUS_SUCCESS:
            return self.header.pack() + ERROR_RESPONSE.pack(9, 0, 0, 0, 0)
        if self.header.command == SMB2_READ:
            return self.header.pack() + READ_RESPONSE.pack(17, 0, 0, 0, self.count, 0)
        return self.header.pack() + WRITE_RESPONSE.pack(17, 0, self.count, 0, 0, 0)


def parse_response(msg: bytes) -> IoResponse:
    """The client's reading of a READ/WRITE/ERROR response; Terminate if it is not one."""
    header = parse_header(msg)
    body = msg[SMB2_HEADER.size:]
    if not header.flags & SMB2_FLAGS_SERVER_TO_REDIR:
        raise Terminate("a request arrived where a response was expected")
    if header.status != STATUS_SUCCESS:
        if len(body) < ERROR_RESPONSE.size - 1:
            raise Terminate(f"ERROR response body of {len(body)} bytes, 8 at least")
        return IoResponse(header)
    if header.command == SMB2_READ:
        if len(body) < READ_RESPONSE.size:
            raise Terminate(f"READ response body of {len(body)} bytes, 16 expected")
        size, _off, _res, data_len, remaining, _ = READ_RESPONSE.unpack_from(body)
        count = remaining + data_len
    elif header.command == SMB2_WRITE:
        if len(body) < WRITE_RESPONSE.size:
            raise Terminate(f"WRITE response body of {len(body)} bytes, 16 expected")
        size, _res, count, _rem, _io, _il = WRITE_RESPONSE.unpack_from(body)
    else:
        raise Terminate(f"response to command {header.command:#06x}, READ or WRITE expected")
    if size != 17:
        raise Terminate(f"response StructureSize {size}, 17 expected")
    return IoResponse(header, count)


def status_name(status: int) -> str:
    return {STATUS_SUCCESS: "STATUS_SUCCESS", STATUS_INVALID_PARAMETER: "STATUS_INVALID_PARAMETER",
            STATUS_END_OF_FILE: "STATUS_END_OF_FILE", STATUS_ACCESS_DENIED: "STATUS_ACCESS_DENIED",
            STATUS_NOT_SUPPORTED: "STATUS_NOT_SUPPORTED"}.get(status, f"{status:#010x}")
