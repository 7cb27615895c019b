"""The compiled hot loops (rig/rdma/_fastloop.c): loading, finding the verbs structs inside
pyverbs objects, driving a loop, converting its raw stamps.

The extension is plain C loaded with ctypes (built at install by setup.py; a failed build leaves
the reason in `_fastloop.build-error.txt` and the Python loops run). `available()` says whether
it loaded and, when not, why; `RDMARIG_LOOP=python` turns it off.

pyverbs (Debian's python3-pyverbs ships no .pxd declarations to compile against) keeps its C
pointers in Cython object fields Python cannot read. The loader finds them in the objects'
memory and checks each find against what pyverbs does expose:
- the ibv_qp behind a QP: the one pointer among the object's words whose target is an RC QP with
  the QP's qp_num, whose send CQ is on the same context, and which the pyverbs CQ the Player
  created also holds;
- the ibv_send_wr / ibv_recv_wr structs embedded in SendWR / RecvWR objects: where wr_id,
  num_sge, opcode and send flags read as the properties say; a chain's `next` pointers must lead
  to the next WR found.
Any check that fails turns the run into a Python-loop run with the reason recorded. Reading a
candidate pointer goes through the kernel (a pipe write), so a wrong guess is EFAULT, not a crash.

Stamps are raw clock readings (the TSC on x86-64); `Clock` converts them to perf_counter_ns
afterwards from pairs of (clock, perf_counter_ns) readings.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
STEM = "_fastloop"
BUILD_ERROR_FILE = HERE / f"{STEM}.build-error.txt"
ENV_LOOP = "RDMARIG_LOOP"          # "python" turns the native loops off
ENV_VALUES = ("", "auto", "native", "python")
ABI_VERSION = 3

DONE, TICK, FULL, WC_ERROR, TIMEOUT, POST_FAILED, POLL_FAILED = range(7)
SEND_CQ, RECV_CQ, POST_SEND, POST_RECV, WAIT_TARGET = range(5)
WHERE_NAMES = {SEND_CQ: "send CQ", RECV_CQ: "receive CQ", POST_SEND: "ibv_post_send",
               POST_RECV: "ibv_post_recv", WAIT_TARGET: "target buffer"}
NEVER = (1 << 63) - 1
BACK_TO_PYTHON_S = 0.2      # a compiled loop returns at least this often (signals, Ctrl-C) and resumes


class Run(ctypes.Structure):
    """Mirror of struct rr_run in _fastloop.c (the loader compares sizes with rr_abi)."""

    _fields_ = [("post", ctypes.c_void_p), ("post_cap", ctypes.c_int64), ("n_post", ctypes.c_int64),
                ("comp", ctypes.c_void_p), ("comp_cap", ctypes.c_int64), ("n_comp", ctypes.c_int64),
                ("start", ctypes.c_int64), ("timeout_clk", ctypes.c_int64), ("deadline", ctypes.c_int64),
                ("next_tick", ctypes.c_int64), ("now", ctypes.c_int64), ("completed", ctypes.c_int64),
                ("in_flight", ctypes.c_int64), ("received", ctypes.c_int64), ("wc_wr_id", ctypes.c_uint64),
                ("wc_status", ctypes.c_uint32), ("wc_vendor_err", ctypes.c_uint32), ("wc_qp_num", ctypes.c_uint32),
                ("err", ctypes.c_int32), ("where", ctypes.c_int32), ("seq", ctypes.c_int32)]


class NativeUnavailable(RuntimeError):
    """The compiled loop cannot run here (not built, not loadable, a pointer not found)."""


_P, _I, _I64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "rr_clock": (_I64, []),
    "rr_clock_is_counter": (_I, []),
    "rr_abi": (None, [_P]),
    "rr_find_qp": (_P, [_P, _I64, ctypes.c_uint32]),
    "rr_qp_parts": (None, [_P, _P]),
    "rr_holds": (_I, [_P, _I64, _P]),
    "rr_find_send_wr": (_I64, [_P, _I64, ctypes.c_uint64, ctypes.c_int32, ctypes.c_int32, ctypes.c_uint32]),
    "rr_find_recv_wr": (_I64, [_P, _I64, ctypes.c_uint64, ctypes.c_int32]),
    "rr_send_wr_next": (_P, [_P]),
    "rr_rx_spin": (_I, [_I, _P, _P, _P, _I64, ctypes.POINTER(Run)]),
    "rr_bw_new": (_P, [_I, _I, _I, _I, _I, _I, _I64, _P, _P, _P, _P, _P, _P, _P, _I]),
    "rr_bw_run": (_I, [_P, ctypes.POINTER(Run)]),
    "rr_bw_free": (None, [_P]),
    "rr_lat_new": (_P, [_P, _P, _P, _I, _P, _P, _P]),
    "rr_lat_run": (_I, [_P, ctypes.POINTER(Run)]),
    "rr_lat_free": (None, [_P]),
    "rr_pp_new": (_P, [_I, _P, _P, _P, _P, _P, _P, _P]),
    "rr_pp_run": (_I, [_P, ctypes.POINTER(Run)]),
    "rr_pp_free": (None, [_P]),
    "rr_pp_in_flight": (None, [_P, _P]),
    "rr_null_new": (_P, [_I, _I, _I64]),
    "rr_null_qp": (_P, [_P, _I]),
    "rr_null_cq": (_P, [_P]),
    "rr_null_chain": (_P, [_P, _I, _I]),
    "rr_null_free": (None, [_P]),
}

_lib: Any = None
_why_not: str | None = None


def library_path() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = HERE / f"{STEM}{suffix}"
        if path.exists():
            return path
    return None


def _load() -> Any:
    global _lib, _why_not
    if _lib is not None or _why_not is not None:
        return _lib
    path = library_path()
    if path is None:
        try:
            why = BUILD_ERROR_FILE.read_text().strip().splitlines()[-1]
            _why_not = f"the C loop failed to build at install: {why}"
        except (OSError, IndexError):
            _why_not = f"the C loop is not built (no {STEM}*.so in {HERE}; `pip install -e .` builds it)"
        return None
    try:
        lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        abi = (ctypes.c_int64 * 4)()
        lib.rr_abi(abi)
    except (OSError, AttributeError) as exc:
        _why_not = f"{path.name} does not load ({exc}); rebuild: pip install -e ."
        return None
    if abi[0] != ABI_VERSION or abi[1] != ctypes.sizeof(Run):
        _why_not = f"{path.name} is another build (ABI {abi[0]}, run struct {abi[1]} B; expected " \
                   f"{ABI_VERSION}, {ctypes.sizeof(Run)} B); rebuild: pip install -e ."
        return None
    _lib = lib
    return lib


def available() -> tuple[bool, str]:
    """(True, "") when the compiled loops can run, else (False, the reason). InputError when
    RDMARIG_LOOP holds something else than python, native or auto."""
    wanted = os.environ.get(ENV_LOOP, "").strip().lower()
    if wanted not in ENV_VALUES:
        from scenarios.errors import InputError
        raise InputError(f"{ENV_LOOP}={os.environ[ENV_LOOP]!r} names no loop",
                         "set it to python (the Python loops) or native/auto (the compiled ones where built), or unset it")
    if wanted == "python":
        return False, f"{ENV_LOOP}=python"
    lib = _load()
    return (True, "") if lib is not None else (False, _why_not or "unknown")


def lib() -> Any:
    ok, why = available()
    if not ok:
        raise NativeUnavailable(why)
    return _lib


# ---- the clock -----------------------------------------------------------------------------

class Clock:
    """The loops' raw clock against perf_counter_ns: a rate calibrated once per process (for time
    limits and ticks inside the loop), and a conversion of stamps that measures the rate again
    over everything since the calibration."""

    CALIBRATE_NS = 5_000_000

    def __init__(self, L: Any):
        self.L = L
        self.counter = bool(L.rr_clock_is_counter())
        self.anchor = self.pair()
        if self.counter:
            while time.perf_counter_ns() - self.anchor[1] < self.CALIBRATE_NS:
                pass
            self.per_ns = self.rate(self.pair())
        else:
            self.per_ns = 1.0

    def pair(self) -> tuple[int, int]:
        """(clock, perf_counter_ns) read together: the clock's midpoint around the ns reading."""
        a = self.L.rr_clock()
        n = time.perf_counter_ns()
        b = self.L.rr_clock()
        return (a + b) // 2, n

    def rate(self, later: tuple[int, int]) -> float:
        c0, n0 = self.anchor
        return (later[0] - c0) / max(1, later[1] - n0)

    def ticks(self, seconds: float) -> int:
        return max(1, int(seconds * 1e9 * self.per_ns))

    def converter(self) -> Callable[[Any], Any]:
        """A function from raw clock values (int or int64 array) to perf_counter_ns."""
        import numpy as np
        if not self.counter:
            return lambda x: x
        c1, n1 = self.pair()
        per_ns = self.rate((c1, n1)) if n1 - self.anchor[1] > self.CALIBRATE_NS else self.per_ns

        def to_ns(x: Any) -> Any:
            if isinstance(x, (int, np.integer)):
                return n1 + round((int(x) - c1) / per_ns)
            return n1 + np.rint((np.asarray(x, dtype=np.int64) - c1) / per_ns).astype(np.int64)
        return to_ns


_clock: Clock | None = None


def clock() -> Clock:
    global _clock
    if _clock is None:
        _clock = Clock(lib())
    return _clock


# ---- finding the verbs structs ------------------------------------------------------------------

def _span(obj: Any) -> tuple[int, int]:
    return id(obj), type(obj).__basicsize__


def qp_pointers(qp: Any, send_cq: Any | None = None, recv_cq: Any | None = None) -> tuple[int, int, int]:
    """(ibv_qp*, its send ibv_cq*, its receive ibv_cq*) of a pyverbs QP, checked against the
    pyverbs CQ objects it was created with when given."""
    L = lib()
    ptr = L.rr_find_qp(*_span(qp), int(qp.qp_num))
    if not ptr:
        raise NativeUnavailable(f"no ibv_qp with qp_num {qp.qp_num} found in the pyverbs QP object "
                                f"({type(qp).__module__}.{type(qp).__name__})")
    parts = (ctypes.c_void_p * 4)()
    L.rr_qp_parts(ptr, parts)
    for cq, found, what in ((send_cq, parts[1], "send"), (recv_cq, parts[2], "receive")):
        if cq is not None and not L.rr_holds(*_span(cq), found):
            raise NativeUnavailable(f"the {what} CQ of QP {qp.qp_num} is not the pyverbs CQ it was created with")
    return ptr, parts[1], parts[2]


def send_wr_pointer(wr: Any) -> int:
    """Address of the ibv_send_wr inside a pyverbs SendWR."""
    off = lib().rr_find_send_wr(*_span(wr), int(wr.wr_id), int(wr.num_sge), int(wr.opcode), int(wr.send_flags))
    if off < 0:
        raise NativeUnavailable(f"no ibv_send_wr with wr_id {wr.wr_id:#x} found in the pyverbs SendWR object")
    return id(wr) + off


def chain_pointer(wrs: list[Any]) -> int:
    """Address of the head of a chain of SendWRs (each linked to the next), checked link by link."""
    ptrs = [send_wr_pointer(w) for w in wrs]
    for here, nxt in zip(ptrs, ptrs[1:] + [None]):
        if (lib().rr_send_wr_next(here) or None) != nxt:
            raise NativeUnavailable("a SendWR chain's next pointers do not lead to its next WR")
    return ptrs[0]


def recv_wr_pointer(wr: Any) -> int:
    off = lib().rr_find_recv_wr(*_span(wr), int(wr.wr_id), int(wr.num_sge))
    if off < 0:
        raise NativeUnavailable(f"no ibv_recv_wr with wr_id {wr.wr_id:#x} found in the pyverbs RecvWR object")
    return id(wr) + off


def pointers(values: list[int]) -> Any:
    return (ctypes.c_void_p * len(values))(*values)


# ---- driving a loop ----------------------------------------------------------------------------

class StampLog:
    """A growable int64 stamp log (growing is rare: duration runs only)."""

    def __init__(self, n: int):
        import numpy as np
        self.np = np
        self.chunks: list[Any] = []
        self.arr = np.empty(max(16, n), dtype=np.int64)

    def grow(self, used: int) -> Any:
        """Keep the first `used` stamps of the current array; a fresh one twice as long."""
        self.chunks.append(self.arr[:used])
        self.arr = self.np.empty(len(self.arr) * 2, dtype=self.np.int64)
        return self.arr

    def result(self, used: int) -> Any:
        return self.np.concatenate(self.chunks + [self.arr[:used]])


@dataclass
class Stamps:
    """What a compiled run leaves: raw clock stamps (perf_counter_ns after convert()) and its counters."""

    post: Any
    comp: Any
    start: int
    end: int
    completed: int
    received: int
    seq: int

    def convert(self) -> None:
        to_ns = clock().converter()
        self.post, self.comp = to_ns(self.post), to_ns(self.comp)
        self.start, self.end = int(to_ns(self.start)), int(to_ns(self.end))


@dataclass
class WorkCompletion:
    """The failed completion, with the fields check_wc and the describe functions read from a
    pyverbs WC."""

    wr_id: int
    status: int
    vendor_err: int
    qp_num: int


class Failure(Exception):
    """A compiled run stopped on an error status (reraise() turns it into the Python loop's error)."""

    def __init__(self, status: int, run: Run):
        super().__init__(status)
        self.status, self.where, self.end = status, run.where % 8, run.where // 8
        self.err = run.err
        self.wc = WorkCompletion(run.wc_wr_id, run.wc_status, run.wc_vendor_err, run.wc_qp_num)
        self.completed, self.in_flight, self.seq = run.completed, run.in_flight, run.seq


def reraise(f: Failure, V: Any, describe: dict[int, Callable[[Any], dict[str, Any]]],
            timeout: Callable[[Failure], str]) -> None:
    """Raise what the Python loop raises in the same situation: CompletionError naming the WR,
    PollTimeout with the same message, pyverbs' error for a failed verbs call."""
    from rig.rdma.completions import PollTimeout, check_wc
    where = WHERE_NAMES.get(f.where, f"place {f.where}")
    if f.status == WC_ERROR:
        check_wc(V, f.wc, describe.get(f.where, lambda wc: {"wr_id": int(wc.wr_id), "qp_num": wc.qp_num}))
        raise RuntimeError(f"a completion on the {where} for a WR the loop did not post (wr_id {f.wc.wr_id:#x})")
    if f.status == TIMEOUT:
        raise PollTimeout(timeout(f))
    raise V.PyverbsRDMAError(f"{where} failed in the compiled loop", f.err)


def drive(step: Callable[[Any, Any], int], handle: int, *, n_post: int, n_comp: int, growable: bool,
          timeout_s: float, duration_s: float, on_tick: Callable[[int, float], None] | None, tick_s: float,
          seq: int = 0) -> Stamps:
    """Run `step(handle, run)` until it is done: call on_tick when it says a tick is due, hand it
    fresh stamp arrays when they fill (growable runs), raise Failure on an error status. The
    stamps come back raw: stop the CPU window, then Stamps.convert()."""
    ck = clock()
    run = Run()
    posts, comps = StampLog(n_post), StampLog(n_comp)

    def attach() -> None:
        run.post, run.post_cap = posts.arr.ctypes.data, len(posts.arr) if growable else n_post
        run.comp, run.comp_cap = comps.arr.ctypes.data, len(comps.arr) if growable else n_comp

    attach()
    run.timeout_clk = ck.ticks(timeout_s)
    run.seq = seq
    tick_clk, back_clk = ck.ticks(tick_s), ck.ticks(BACK_TO_PYTHON_S)
    run.start = ck.L.rr_clock()
    run.deadline = run.start + ck.ticks(duration_s) if duration_s else 0
    next_tick = run.start + tick_clk if on_tick is not None else NEVER
    run.next_tick = min(next_tick, run.start + back_clk)
    ref = ctypes.byref(run)
    while True:
        status = step(handle, ref)
        if status == DONE:
            break
        if status == TICK:       # Python's signal handlers run here (Ctrl-C, SIGTERM)
            if run.now >= next_tick:
                on_tick(run.completed, (run.now - run.start) / ck.per_ns * 1e-9)
                next_tick = ck.L.rr_clock() + tick_clk
            run.next_tick = min(next_tick, ck.L.rr_clock() + back_clk)
        elif status == FULL and growable:
            posts.grow(run.n_post)
            comps.grow(run.n_comp)
            run.n_post = run.n_comp = 0
            attach()
        else:
            raise Failure(status, run)
    end = ck.L.rr_clock()
    return Stamps(post=posts.result(run.n_post), comp=comps.result(run.n_comp), start=run.start, end=end,
                  completed=run.completed, received=run.received, seq=run.seq)


# ---- the loop's own cost ---------------------------------------------------------------------

def self_cost(wrs: int = 2_000_000, post_list: int = 1, cq_mod: int = 100, tx_depth: int = 128,
              num_qps: int = 1, poll_batch: int = 16) -> dict[str, float]:
    """The bandwidth loop over a device that does nothing (rr_null_*: post_send notes each
    signaled WR, poll_cq hands it back at once): nanoseconds per WR and per post call of the
    loop itself, stamps included. Its ceiling on real hardware is 1e9 / ns_per_wr WRs per second."""
    L = lib()
    mod = max(post_list, min(cq_mod, tx_depth)) // post_list * post_list
    per_qp = -(-wrs // num_qps // mod) * mod
    dev = L.rr_null_new(num_qps, post_list, 1 << 20)
    if not dev:
        raise MemoryError("rr_null_new")
    try:
        qps = pointers([L.rr_null_qp(dev, q) for q in range(num_qps)])
        plain = pointers([L.rr_null_chain(dev, q, 0) for q in range(num_qps)])
        sig = pointers([L.rr_null_chain(dev, q, 1) for q in range(num_qps)])
        h = L.rr_bw_new(num_qps, post_list, mod, tx_depth, poll_batch, 256, per_qp, qps, L.rr_null_cq(dev),
                        plain, sig, None, None, None, 0)
        try:
            st = drive(L.rr_bw_run, h, n_post=per_qp * num_qps // post_list + 1, n_comp=per_qp * num_qps // mod + 1,
                       growable=True, timeout_s=10.0, duration_s=0.0, on_tick=None, tick_s=1.0)
        finally:
            L.rr_bw_free(h)
    finally:
        L.rr_null_free(dev)
    st.convert()
    loop_ns = float(st.comp[-1] - st.post[0])
    return {"wrs": float(st.completed), "ns_per_wr": loop_ns / st.completed,
            "ns_per_post_call": loop_ns / max(1, len(st.post)), "post_list": float(post_list),
            "cq_mod": float(mod), "tx_depth": float(tx_depth), "num_qps": float(num_qps)}
