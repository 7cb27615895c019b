"""Work completions: an error status becomes an exception naming the status and the WR; a wait
for a completion is bounded by a time limit. Shared by the bandwidth loops (rig.rdma.traffic),
the integrity transfers and the flows (rig.flows)."""

from __future__ import annotations

from typing import Any, Callable

from rig.rdma import compat


class CompletionError(RuntimeError):
    """A work completion with an error status: the status name and the WR that failed."""

    def __init__(self, status_name: str, status: int, wr: dict[str, Any], vendor_err: int = 0):
        self.status_name, self.status, self.wr, self.vendor_err = status_name, status, wr, vendor_err
        desc = ", ".join(f"{k}={v}" for k, v in wr.items())
        super().__init__(f"work completion error {status_name} (status {status}, vendor_err "
                         f"{vendor_err:#x}) for WR [{desc}]")


class PollTimeout(RuntimeError):
    """No completion within the time limit (peer gone, link down, or a stuck device)."""


def check_wc(V: compat.Verbs, wc: Any, describe: Callable[[Any], dict[str, Any]]) -> None:
    if wc.status != V.e.IBV_WC_SUCCESS:
        raise CompletionError(V.wc_status_name(wc.status), int(wc.status), describe(wc), int(wc.vendor_err))


def describe_recv(wc: Any) -> dict[str, Any]:
    return {"op": "recv", "wr_id": int(wc.wr_id), "qp_num": wc.qp_num}
