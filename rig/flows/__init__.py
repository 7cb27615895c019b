"""Flows: request/response protocols over connected players, one module per protocol.

A flow is what two connected ends say to each other beyond a raw stream of WRs: ping-pong
latency (`pingpong`), SMB Direct (`smbd`: the wire format and credits; `smbd_serving`: the
server's end of a connection; `smbd_client`: the client's N connections). Every flow is built from the same parts:

- `descriptor.BufferDescriptor`: a peer's advertised memory (offset = its virtual address, token =
  its rkey, length), packed as SMB2_BUFFER_DESCRIPTOR_V1 (16 bytes, little-endian).
- `channel.Channel`: one RC QP of a Player (rig.rdma.player) with
  - a message ring: `recv_slots` receive buffers of `max_msg_bytes`, all posted when the channel
    opens (a posted receive is a receive credit the protocol may grant the peer), `send_slots`
    send buffers, a slot free again once its send completion is reaped;
  - credits: `send_credits` = SENDs we may post (what the peer granted); `grant_send(n)` adds what
    the peer's messages grant, each send spends one; `receive_credits()` counts receives reposted
    since the protocol last announced them (SMBD's CreditsGranted);
  - bulk data: `write(local, desc)` / `read(local, desc)`: RDMA WRITE to / READ from a peer's
    advertised buffer, tagged with a cookie the completion returns;
  - completions: `poll(timeout_s)` returns events (recv: slot, bytes, immediate; send; write/read:
    cookie) and raises CompletionError naming the WR, or PollTimeout after the time limit; hot
    loops use `wait_message` / `reap` / prebuilt `send_wr`s instead of per-message objects.

Contract of a protocol module (rig/flows/<name>.py):
- Its wire format is pure Python (struct), importable and testable without pyverbs.
- It defines its roles as classes over a Channel (or several: one per connection, each Player
  with its own QP and CQs, sharing a PD through `Player(parent=...)` when memory is registered
  once for all of them); a role never creates a connection: the launcher (rig.launch) does, and
  hands the role its channel and the peer's advertised descriptors.
- Every wait is bounded (timeout_s) and ends in PollTimeout or CompletionError, never a hang.
- It returns raw stamps and counters (rig.rdma.traffic.RawRun or its own dataclass) and the CPU
  window of its side (rig.accounting.CpuWindow); statistics are computed afterwards.
- A serving role runs one thread per connection and is bounded by its own limits, not the peer's.
"""
