"""The SMB Direct protocol's per-I/O work as a part (`proto.smbd`): one request/response exchange
with a one-packet data WR, between two processes on two RDMA devices, as `measure smbd` runs its ends.

What each I/O costs besides its data: the client builds an SMB2 READ request naming a registered
buffer (rig.flows.smbd: read_request, DataTransfer, to_send) and SENDs it; the server takes the
message (rig.flows.smbd_serving.take_message: credits, repost, parse, reassembly), parses the
request (parse_request), builds the response (IoResponse) and SENDs it back with the credits it
grants; the client takes it and parses the response (parse_response). Before its response the
server RDMA WRITEs the first DATA_WR_BYTES of the named buffer, one packet, through the flows' own
bulk_wr and post, as `measure smbd` posts a READ's data: the per-I/O work of the data WR (build it,
post it, reap its completion) is in the part, its bytes are what `measure verbs` measures (the
calibration takes the one-packet WR's chain out, as it does the SENDs'). Both ends sleep on their
completion channels when idle (rig.flows.channel.Waiter, after the same 16 empty polls as the
flows), each in a forked single-threaded process, so each end's CPU is its rusage; the host's
softirq run by ksoftirqd, counted apart, belongs to neither.

`depth` requests are kept in flight (bounded by credits, as the flows are); with 1 every exchange
wakes both ends, with more the ends find work waiting and sleep less (the record counts sleeps).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rig import accounting as acct
from rig.copy import child

IO_SIZE_BYTES = 65536              # the length the requests name (one credit)
DATA_WR_BYTES = 64                 # what the server's data WR moves of it: one packet
MESSAGE_BYTES = 4096               # the channel's message slots (a request is 152 bytes, a response 104)
RECV_RESERVE = 8
SEND_SLOTS = 32
DEFAULT_DEPTHS = (1, 8, 32)
TIMEOUT_S = 20.0


def _open(device: str | None, depth: int):
    from rig.flows.channel import Channel
    from rig.rdma.devices import discover
    from rig.rdma.player import EventPlayer, PlayerConfig

    port = discover(device)
    recv_slots = depth + RECV_RESERVE
    player = EventPlayer(port, PlayerConfig(msg_bytes=MESSAGE_BYTES, slots=1, num_qps=1,
                                            tx_depth=SEND_SLOTS + 2 * depth + 8, rx_depth=recv_slots + 8))
    return player, recv_slots, lambda: Channel(player, max_msg_bytes=MESSAGE_BYTES, recv_slots=recv_slots,
                                               send_slots=SEND_SLOTS, timeout_s=TIMEOUT_S)


def _stalled(t_last: float, what: str) -> None:
    if time.monotonic() - t_last > TIMEOUT_S:
        from rig.rdma.completions import PollTimeout
        raise PollTimeout(f"{what}: nothing for {TIMEOUT_S:g} s")


def _whole_messages(channel, credits, reassembly, params, events: list) -> list[bytes]:
    """The whole messages the taken events' receives complete (a fragment completes none yet), the
    flows' own `take_message` doing credits, repost and reassembly; `events` is emptied."""
    from rig.flows.smbd_serving import take_message

    out = []
    for e in events:
        if e.kind == "recv":
            _msg, whole = take_message(channel, credits, reassembly, params.max_fragmented_receive_size,
                                       e.slot, e.byte_len)
            if whole is not None:
                out.append(whole)
    events.clear()
    return out


def _serve(channel, credits, params, exchanges: int, player) -> tuple[int, int]:
    """The server's loop: answer `exchanges` READ requests, each after its one-packet data WR; (sleeps,
    loop turns)."""
    from rig.flows import smbd
    from rig.flows.channel import Waiter

    reassembly = smbd.Reassembly(params.max_fragmented_receive_size)
    source = player.alloc(DATA_WR_BYTES)
    waiter = Waiter(player)
    events: list = []
    replies: deque[bytes] = deque()
    served, target, t_last, turns, tag = 0, smbd.SEND_CREDIT_TARGET, time.monotonic(), 0, 0
    while served < exchanges:
        turns += 1
        channel.take(events)
        if events:
            for whole in _whole_messages(channel, credits, reassembly, params, events):
                req = smbd.parse_request(whole, params.max_read_write_size)
                tag += 1
                channel.post(channel.bulk_wr("write", source.addr, source.lkey,
                                             req.descriptors[0].part(0, DATA_WR_BYTES), tag))
                replies.append(smbd.IoResponse(req.header.response(), req.length).pack())
            while replies and credits.send > 0:
                msg = smbd.DataTransfer(target, credits.to_grant(), data=replies.popleft())
                channel.post_message(smbd.to_send(msg, credits, params.max_send_size))
                served += 1
            waiter.busy()
            t_last = time.monotonic()
        else:
            waiter.idle(lambda: bool(channel.take(events)), t_last + TIMEOUT_S - time.monotonic())
            _stalled(t_last, "the exchange probe's server")
    channel.drain()
    return waiter.sleeps, turns


def _ask(channel, credits, params, exchanges: int, depth: int, player) -> tuple[int, int]:
    """The client's loop: `exchanges` READ requests, `depth` in flight; (sleeps, loop turns)."""
    from rig.flows import smbd
    from rig.flows.channel import Waiter
    from rig.flows.descriptor import BufferDescriptor

    region = player.alloc(IO_SIZE_BYTES, player.V.e.IBV_ACCESS_LOCAL_WRITE | player.V.e.IBV_ACCESS_REMOTE_WRITE)
    desc = BufferDescriptor(region.addr, region.rkey, IO_SIZE_BYTES)
    reassembly = smbd.Reassembly(params.max_fragmented_receive_size)
    waiter = Waiter(player)
    events: list = []
    issued = done = outstanding = 0
    mid, target, t_last, turns = 1, smbd.SEND_CREDIT_TARGET, time.monotonic(), 0
    while done < exchanges:
        turns += 1
        while outstanding < depth and issued < exchanges and credits.send > 0:
            req = smbd.read_request(mid, 0, desc)
            mid += req.header.credit_charge
            msg = smbd.DataTransfer(target, credits.to_grant(), data=req.pack())
            channel.post_message(smbd.to_send(msg, credits, params.max_send_size))
            issued, outstanding = issued + 1, outstanding + 1
        channel.take(events)
        if events:
            for whole in _whole_messages(channel, credits, reassembly, params, events):
                smbd.parse_response(whole)
                done, outstanding = done + 1, outstanding - 1
            waiter.busy()
            t_last = time.monotonic()
        else:
            waiter.idle(lambda: bool(channel.take(events)), t_last + TIMEOUT_S - time.monotonic())
            _stalled(t_last, "the exchange probe's client")
    channel.drain()
    return waiter.sleeps, turns


def _end(role: str, device: str | None, depth: int, exchanges: int, conn: Any) -> None:
    """One end, in its own process: open the device, swap endpoints through the parent, negotiate
    as [MS-SMBD] says, wait for `go`, run the loop, report its CPU."""
    child.detach_signals()
    player = None
    try:
        from rig.flows import smbd
        from rig.flows.smbd_serving import negotiate_message

        player, recv_slots, make_channel = _open(device, depth)
        conn.send({"endpoint": player.endpoint()})
        player.connect(conn.recv()["endpoint"])
        channel = make_channel()
        conn.send({"ready": True})
        conn.recv()                                            # both channels have their receives posted
        limits = smbd.Limits()
        if role == "server":
            credits = smbd.Credits(posted=recv_slots, receive_max=limits.receive_credit_max)
            req = smbd.NegotiateRequest.unpack(negotiate_message(channel, credits))
            resp, params = smbd.accept_request(req, limits, credits)
            channel.post_message(resp.pack())
        else:
            credits = smbd.Credits(posted=recv_slots, receive_max=recv_slots)
            req = smbd.request_for(limits, min(depth + RECV_RESERVE, limits.send_credit_target))
            channel.post_message(req.pack())
            params = smbd.accept_response(smbd.NegotiateResponse.unpack(negotiate_message(channel, credits)),
                                          req, limits, credits)
        conn.send({"negotiated": True})
        conn.recv()                                            # go
        r0, t0 = acct.Rusage.now(), time.perf_counter()
        sleeps, turns = (_serve(channel, credits, params, exchanges, player) if role == "server"
                  else _ask(channel, credits, params, exchanges, depth, player))
        ru, wall = acct.Rusage.now() - r0, time.perf_counter() - t0
        conn.send({"result": {"user_s": ru.user_s, "system_s": ru.system_s, "wall_s": wall, "sleeps": sleeps, "turns": turns,
                              "device": player.port.device}})
    except BaseException as exc:
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if player is not None:
            player.close()
        conn.close()


def run(server_device: str | None, client_device: str | None, depth: int, exchanges: int) -> dict:
    """One timed run: a server and a client process, `exchanges` exchanges with `depth` in flight.
    Returns each end's user and system seconds, sleeps, wall time, and the host's ksoftirqd time and
    other tenants' CPU over the run."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ends = {}
    try:
        for role, device in (("server", server_device), ("client", client_device)):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=_end, args=(role, device, depth, exchanges, theirs), daemon=True)
            child.start(process)
            theirs.close()
            ends[role] = (process, mine)
        s, c = ends["server"][1], ends["client"][1]
        endpoints = {role: child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")["endpoint"]
                     for role, (_, conn) in ends.items()}
        s.send({"endpoint": endpoints["client"]})
        c.send({"endpoint": endpoints["server"]})
        for role, (_, conn) in ends.items():
            child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")          # ready
        for _, conn in ends.values():
            conn.send({"go": True})
        for role, (_, conn) in ends.items():
            child.receive(conn, TIMEOUT_S * 3, f"exchange {role}")          # negotiated
        pids = acct.ksoftirqd_pids()
        before, t0 = acct.HostSnapshot.now(pids), time.perf_counter()
        for _, conn in ends.values():
            conn.send({"go": True})
        results = {role: child.receive(conn, TIMEOUT_S + exchanges * 0.5, f"exchange {role}")["result"]
                   for role, (_, conn) in ends.items()}
        wall = time.perf_counter() - t0
        delta = acct.host_delta(before, acct.HostSnapshot.now(pids))
        ours = [acct.Rusage(r["user_s"], r["system_s"]) for r in results.values()]
        return {**results, "ksoftirqd_s": sum(delta["ksoftirqd_s"].values()), "wall_s": wall,
                **acct.foreign_cpu_per_s(delta, ours, wall)}
    finally:
        for process, conn in ends.values():
            process.join(2)
            if process.is_alive():
                process.terminate()
                process.join(2)
            conn.close()


def samples(raw_runs: list[dict], exchanges: int) -> dict[str, list[float]]:
    """Per exchange, each end's user and system CPU seconds and sleeps, ksoftirqd's seconds, and the
    rate; per second, other tenants' CPU."""
    out: dict[str, list[float]] = {}
    for role in ("server", "client"):
        for part in ("user", "system"):
            out[f"{role}_{part}_cpu_seconds_per_exchange"] = [r[role][f"{part}_s"] / exchanges for r in raw_runs]
        out[f"{role}_cpu_seconds_per_exchange"] = [(r[role]["user_s"] + r[role]["system_s"]) / exchanges
                                                   for r in raw_runs]
        out[f"{role}_sleeps_per_exchange"] = [r[role]["sleeps"] / exchanges for r in raw_runs]
        out[f"{role}_turns_per_exchange"] = [r[role]["turns"] / exchanges for r in raw_runs]
        out[f"{role}_busy_ratio"] = [(r[role]["user_s"] + r[role]["system_s"]) / r[role]["wall_s"] for r in raw_runs]
    out["ksoftirqd_cpu_seconds_per_exchange"] = [r["ksoftirqd_s"] / exchanges for r in raw_runs]
    out["both_ends_cpu_seconds_per_exchange"] = [
        (r["server"]["user_s"] + r["server"]["system_s"] + r["client"]["user_s"] + r["client"]["system_s"]
         + r["ksoftirqd_s"]) / exchanges for r in raw_runs]
    out["exchanges_per_s"] = [exchanges / r["wall_s"] for r in raw_runs]
    out["foreign_cpu_per_s"] = [r["foreign_cpu_per_s"] for r in raw_runs]
    return out
