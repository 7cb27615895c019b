"""RDMA tier fixtures: real pyverbs on a real (soft-)RoCE device, or a skip that says why.

Inside the soft-RoCE guest (RDMARIG_GUEST=1) the devices are the point of the run: a missing
device or pyverbs there FAILS the tests instead of skipping them.
"""

from __future__ import annotations

import os

import pytest

IN_GUEST = os.environ.get("RDMARIG_GUEST") == "1"


def _devices() -> tuple[list[str], str]:
    try:
        from rig.rdma import compat
        from rig.rdma.devices import list_devices
        compat.load()
        names = list_devices()
    except Exception as exc:          # InputError (no pyverbs) or anything pyverbs raises
        return [], f"pyverbs unavailable: {exc}"
    return names, "" if names else "no RDMA device on this host (run the tier in the soft-RoCE guest: make test-rdma)"


@pytest.fixture(scope="session")
def rdma_devices() -> list[str]:
    names, why = _devices()
    if not names:
        if IN_GUEST:
            pytest.fail(f"inside the soft-RoCE guest but {why}")
        pytest.skip(why)
    return names


@pytest.fixture(scope="session")
def two_devices(rdma_devices: list[str]) -> tuple[str, str]:
    if len(rdma_devices) < 2:
        if IN_GUEST:
            pytest.fail(f"inside the soft-RoCE guest but only {rdma_devices} exist (rxe0 and rxe1 expected)")
        pytest.skip(f"needs two RDMA devices, found {rdma_devices}")
    return rdma_devices[0], rdma_devices[1]


def _use(name: str, monkeypatch) -> str:
    """Run the test with loop `name` ("native": the compiled one, which in the guest must be built
    and elsewhere skips with the reason when it is not; "python": the fallback)."""
    from rig.rdma import native
    if name == "native":
        monkeypatch.delenv(native.ENV_LOOP, raising=False)
        ok, why = native.available()
        if not ok:
            if IN_GUEST:
                pytest.fail(f"inside the soft-RoCE guest but the compiled loop is unavailable: {why}")
            pytest.skip(f"the compiled loop is unavailable: {why}")
    else:
        monkeypatch.setenv(native.ENV_LOOP, "python")
    return name


@pytest.fixture(params=["native", "python"])
def loop(request, monkeypatch) -> str:
    """The tests where the two loops differ (integrity, stamps, completion errors, time limits,
    ticks, ping-pong) run with both."""
    return _use(request.param, monkeypatch)


@pytest.fixture
def default_loop(monkeypatch) -> str:
    """The rest run once, with the loop a run picks by default (the compiled one)."""
    return _use("native", monkeypatch)
