"""The far end of a run that is not in this process: what `rdmarig serve` runs for each session
(and an MPI target rank next), over any Conversation (rig.launch.conversation).

A passive target: it validates the hello, builds and connects a Player, fills its memory (random
data for READ, whose SHA-256 goes back in `ready`; zeros otherwise), keeps receives posted for
SEND, counts its CPU between `start` and `stop`, and answers `done` with that CPU, the number of
messages received and the SHA-256 of its memory. Every phase is bounded by the target's own
`Limits`: a client that goes silent is dropped after `silence_s`, whatever it asked for.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from rig.launch.conversation import Conversation
from rig.rdma.handshake import PeerGone, ProtocolError, validate_hello
from scenarios.errors import InputError

SOCKET_CHECK_S = 0.005        # a SEND target's busy-poll between two looks at the conversation


@dataclass(frozen=True)
class Limits:
    """The target's own time limits (seconds)."""

    hello_s: float = 10.0        # connection -> hello
    start_s: float = 10.0        # ready -> start
    silence_s: float = 10.0      # the longest gap between two messages once the run started
    run_s: float = 3600.0        # start -> stop, whatever run_seconds_max the initiator asked for

    def run_limit(self, asked_s: float) -> float:
        return min(asked_s, self.run_s)


def _finite(cpu: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in cpu.items() if isinstance(v, (int, float)) and math.isfinite(v)}


class TargetSession:
    validate = staticmethod(validate_hello)       # a far end of another kind checks its own hello

    def __init__(self, conv: Conversation, limits: Limits, device: str | None = None,
                 ib_port: int | None = None, gid_index: int | None = None):
        self.conv, self.limits = conv, limits
        self.device, self.ib_port, self.gid_index = device, ib_port, gid_index

    def run(self) -> dict[str, Any]:
        """The session's outcome: {"result": ok | refused | gone | error, ...}; never raises for
        anything the peer or the device does."""
        try:
            hello = self.validate(self.conv.recv(self.limits.hello_s, "hello"))
        except ProtocolError as exc:
            return self._refuse("refused", str(exc))
        except PeerGone as exc:
            return {"result": "gone", "error": str(exc)}
        try:
            return self._serve(hello)
        except ProtocolError as exc:
            return self._refuse("refused", str(exc))
        except PeerGone as exc:
            return {"result": "gone", "error": str(exc), "op": hello["op"]}
        except InputError as exc:
            return self._refuse("error", exc.one_line())
        except Exception as exc:      # a verbs failure must not take the server down
            return self._refuse("error", f"{exc.__class__.__name__}: {exc}")

    def _refuse(self, result: str, why: str) -> dict[str, Any]:
        try:
            self.conv.send({"type": "error", "error": why})
        except (PeerGone, ProtocolError):
            pass
        return {"result": result, "error": why}

    def _serve(self, hello: dict[str, Any]) -> dict[str, Any]:
        from rig import accounting as acct
        from rig.rdma.devices import discover
        from rig.rdma.player import Player, PlayerConfig
        from rig.rdma.traffic import Receiver

        port = discover(self.device, self.ib_port, self.gid_index)
        cfg = PlayerConfig(msg_bytes=hello["msg_bytes"], slots=hello["slots"], num_qps=hello["num_qps"],
                           tx_depth=16, rx_depth=hello["rx_depth"])
        with Player(port, cfg) as player:
            ready: dict[str, Any] = {"type": "ready", "boot_id": acct.boot_id()}
            if hello["op"] == "read":
                data = os.urandom(cfg.mr_bytes)
                player.write_bytes(data)
                ready["sha256"] = hashlib.sha256(data).hexdigest()
            else:
                player.write_bytes(bytes(cfg.mr_bytes))
            player.connect(hello["endpoint"])
            receiver = Receiver(player, hello["msg_bytes"]) if hello["op"] == "send" else None
            ready["endpoint"] = player.endpoint()
            self.conv.send(ready)
            self.conv.recv(self.limits.start_s, "start")
            # a SEND target busy-polls its receive CQ; the others sleep in the conversation
            window = acct.CpuWindow(scope="thread", busy=receiver is not None).start()
            run_s = self.limits.run_limit(hello["run_seconds_max"])
            if receiver is None:
                self._until_stop(run_s)
            else:
                self._until_stop(run_s, lambda: receiver.spin(SOCKET_CHECK_S))
                receiver.service()
            cpu = _finite(window.stop())
            done = {"type": "done", "cpu": cpu, "cpu_accounting": window.note(), "boot_id": acct.boot_id(),
                    "received": receiver.received if receiver else 0,
                    "sha256": hashlib.sha256(player.read_bytes()).hexdigest()}
            self.conv.send(done)
            return {"result": "ok", "op": hello["op"], "msg_bytes": hello["msg_bytes"], "cpu": cpu}

    def _until_stop(self, run_s: float, between: Callable[[], None] | None = None) -> None:
        """Serve until `stop`: ticks keep the session alive; silence or the run limit end it. With
        `between` (work of the session's own: a receive queue to keep filled, serving processes to
        watch) the conversation is polled, `between` running before each look; else it is waited on."""
        silence, deadline = self.limits.silence_s, time.monotonic() + run_s
        heard = time.monotonic()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise PeerGone(f"no stop message within this server's run limit of {run_s:g} s")
            if between is None:
                msg = self.conv.recv(min(silence, deadline - now), ("tick", "stop"))
            else:
                between()
                msg = self.conv.poll()
                if msg is None:
                    if now - heard > silence:
                        raise PeerGone(f"no message from the peer within {silence:g} s")
                    continue
                if msg["type"] not in ("tick", "stop"):
                    raise ProtocolError(f"expected a tick or stop message, got {msg['type']!r}")
            heard = time.monotonic()
            if msg["type"] == "stop":
                return
