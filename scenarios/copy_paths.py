"""Copy paths as data: what moving one I/O of file data costs, per byte and per I/O.

A copy path is a row in a table, not a class. It says which copies of the payload happen and
who does them (the serving thread, io_uring async workers, or a DMA engine through which kernel
API), how many system calls, RDMA work requests and hand-offs each I/O costs. The model
(models/copy_paths.py) turns the rows into demand arrays. Adding a path is adding a row, either
here or in a scenario's [[copy_path]] table with the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from scenarios import fields as F
from scenarios import limits as L
from scenarios.errors import InputError
from scenarios.toml_table import TomlTable
from scenarios.units import parse_size

WHO = ("serving", "workers", "dma")
# page-cache: read through the page cache (cold, from DRAM, and a lookup + iterator step per
# folio: copy_to_iter after filemap_read); mapped: the file's pages through a user mapping (cold,
# no page-cache lookups); buffer: reused by the copying core (its cache holds it up to
# cache_per_core); filled: another core, a DMA engine or the NIC just wrote it (its lines come from
# another cache or DRAM: cpu.copy_rate_cross_core)
SOURCES = ("page-cache", "buffer", "filled", "mapped")
TRANSPORTS = ("smbdirect", "tcp", "memory")
# pieces of an I/O's work beyond its copies that a path may move to io_uring's io-wq workers:
# stack: the network send work (TCP segments and checksum, a software RDMA NIC's requester work);
# calls: the kernel work of the operations the calls submit (an IOSQE_ASYNC send runs in the worker)
WORKER_PIECES = ("stack", "calls")

# Kernel APIs through which a copy can reach a DMA engine. Which engine answers which API is a
# platform fact (scenarios/platforms/*.toml, [[dma]] apis):
# - async_memcpy (crypto/async_tx): takes any *public* DMA_MEMCPY channel. I/OAT (ioatdma)
#   registers public channels; the DSA driver (idxd) sets DMA_PRIVATE on its channels (commit
#   c06e424be5f5, Linux 5.11), and so does AMD PTDMA (ptdma-dmaengine.c: "intended to be used
#   with the AMD NTB devices"), so async_memcpy reaches neither.
# - dma_request_channel: a dedicated (private) channel a driver asks for explicitly; reaches DSA
#   work queues, I/OAT and PTDMA.
# - NET_DMA (TCP receive copies offloaded to I/OAT) existed until Linux 3.17, which removed it;
#   it is listed so a scenario that names it gets a clear answer: no engine is reachable.
DMA_APIS = ("async_memcpy", "dma_request_channel", "net_dma")


@dataclass(frozen=True)
class Copy:
    """One copy of every payload byte."""
    who: str            # serving | workers | dma
    source: str         # page-cache (cold: from DRAM) | buffer (a reused buffer of I/O size)


@dataclass(frozen=True)
class CopyPath:
    name: str
    description: str
    transports: tuple[str, ...]
    copies: tuple[Copy, ...]
    dma_api: str = ""               # kernel API the dma copies go through
    dma_descriptor: float = 4096.0  # bytes per DMA descriptor (async_memcpy: one page each)
    syscalls_per_io: float = 0.0
    syscalls_per_chunk: float = 0.0 # extra system calls per `chunk` bytes (splice through a pipe)
    chunk: float = 65536.0          # bytes per chunk (default pipe capacity: 16 pages)
    rdma_wrs_per_io: float = 0.0    # work requests posted + completions reaped per I/O
    handoffs_per_io: float = 0.0    # I/O handed to another core and back
    zc_notifications_per_io: float = 0.0  # MSG_ZEROCOPY / SEND_ZC completion notifications
    workers_take: tuple[str, ...] = ()    # pieces beyond the copies that run on io-wq workers (WORKER_PIECES)
    # memory management, in passes over the I/O's pages per I/O
    maps_per_io: float = 0.0        # map file pages, fault them in, unmap (a mapping made per I/O; TLB flush)
    allocs_per_io: float = 0.0      # fresh anonymous buffer: fault + zero every page, unmap
    pins_per_io: float = 0.0        # pin + unpin the I/O's pages (zero-copy send, MR registration, vmsplice)
    registrations_per_io: float = 0.0  # memory-region registrations (ibv_reg_mr + dereg) per I/O
    dma_per_page: bool = False      # one DMA descriptor per page of the workload (memory batches of pages)
    # where the memory an RDMA WRITE sends from sits, for a NIC that copies it (software RDMA):
    # buffer (the serving thread just filled it), page-cache (zero copy: the file's pages), filled
    # (a worker or a DMA engine wrote it)
    rdma_source: str = "buffer"


def _c(who: str, source: str) -> Copy:
    return Copy(who, source)


ROWS: tuple[CopyPath, ...] = (
    CopyPath(
        name="zero-copy",
        description="RDMA WRITE straight from page-cache pages (registered per I/O); no CPU copy",
        transports=("smbdirect",), copies=(),
        # REG_MR + RDMA WRITE + SEND (response) + LOCAL_INV: a kernel server (ksmbd) maps the page-cache
        # pages with a fast-registration WR; the pages are referenced, not pinned from user space
        syscalls_per_io=0, rdma_wrs_per_io=4, rdma_source="page-cache",
    ),
    CopyPath(
        name="cpu-copy",
        description="copy_to_iter in the serving thread: page cache -> registered send buffer",
        transports=("smbdirect",),
        copies=(_c("serving", "page-cache"),),
        syscalls_per_io=1, rdma_wrs_per_io=2,   # RDMA WRITE from a pre-registered buffer + SEND
    ),
    CopyPath(
        name="async-workers",
        description="io_uring IOSQE_ASYNC: the copy runs on async worker cores, the serving thread waits",
        transports=("smbdirect",),
        copies=(_c("workers", "page-cache"),),
        syscalls_per_io=1, rdma_wrs_per_io=2, handoffs_per_io=1, rdma_source="filled",
    ),
    CopyPath(
        name="dma-offload",
        description="async_memcpy to a DMA engine, one 4 KiB page per descriptor",
        transports=("smbdirect",),
        copies=(_c("dma", "page-cache"),),
        dma_api="async_memcpy", dma_descriptor=4096,
        syscalls_per_io=1, rdma_wrs_per_io=2, rdma_source="filled",
    ),
    CopyPath(
        name="dma-offload-chan",
        description="copy on a dedicated DMA channel (dma_request_channel), one 4 KiB page per descriptor",
        transports=("smbdirect",),
        copies=(_c("dma", "page-cache"),),
        dma_api="dma_request_channel", dma_descriptor=4096,
        syscalls_per_io=1, rdma_wrs_per_io=2, rdma_source="filled",
    ),
    CopyPath(
        name="send-zc",
        description="read() into a buffer, IORING_OP_SENDMSG_ZC sends it without a send-side copy (its pages pinned)",
        transports=("tcp",),
        copies=(_c("serving", "page-cache"),),
        syscalls_per_io=2, zc_notifications_per_io=1, pins_per_io=1,
    ),
    CopyPath(
        name="splice",
        description="splice file -> pipe -> socket: page references, no CPU copy; 2 calls per pipe-full",
        transports=("tcp",), copies=(),
        syscalls_per_io=1, syscalls_per_chunk=2, chunk=65536,
    ),

    # TCP adds the send-side copy into socket buffers to the paths that send from a user buffer
    # with plain send()/write(): the row for TCP differs, so it is its own entry.
    CopyPath(
        name="cpu-copy",
        description="read() page cache -> buffer, send() buffer -> skb: two copies in the serving thread",
        transports=("tcp",),
        copies=(_c("serving", "page-cache"), _c("serving", "buffer")),
        syscalls_per_io=2,
    ),
    CopyPath(
        name="async-workers",
        description="io_uring IOSQE_ASYNC read + send on worker cores: both copies and the send's stack work "
                    "leave the serving thread; the send may run on another worker than the read (the buffer "
                    "comes from another core's cache)",
        transports=("tcp",),
        copies=(_c("workers", "page-cache"), _c("workers", "filled")),
        syscalls_per_io=1, handoffs_per_io=2, workers_take=("stack",),
    ),

    # memory-to-memory: a batch of pages copied by CPU threads or DMA channels, no network
    CopyPath(
        name="cpu-threads",
        description="a batch of pages copied by the serving threads (copy_page: per byte + per page)",
        transports=("memory",),
        copies=(_c("serving", "page-cache"),),
    ),
    CopyPath(
        name="dma-channels",
        description="a batch of pages copied by DMA channels (dma_request_channel), one descriptor per page",
        transports=("memory",),
        copies=(_c("dma", "page-cache"),),
        dma_api="dma_request_channel", dma_per_page=True,
    ),
)


def builtin(name: str, transport: str) -> CopyPath | None:
    """The built-in row for a path name on a transport (cpu-copy copies twice on TCP)."""
    for row in ROWS:
        if row.name == name and transport in row.transports:
            return row
    return None


def builtin_names() -> list[str]:
    return sorted({row.name for row in ROWS})


COUNT_KEYS = ("syscalls_per_io", "syscalls_per_chunk", "rdma_wrs_per_io", "handoffs_per_io", "zc_notifications_per_io")
PAGE_PASS_KEYS = ("maps_per_io", "allocs_per_io", "pins_per_io", "registrations_per_io")
ROW_FIELDS = (
    F.text("name", '"my-path"'), F.text("description", '"..."', default=""),
    F.other("transports"), F.other("copies"), F.other("dma_api"), F.other("workers_take"),
    F.quantity("dma_descriptor", parse_size, "4KiB", L.IO_SIZE, default="4KiB"),
    F.quantity("chunk", parse_size, "64KiB", L.IO_SIZE, default="64KiB"),
    *(F.number(key, L.PER_IO_COUNT, default=0.0) for key in COUNT_KEYS),
    *(F.number(key, L.PAGE_PASSES, default=0.0) for key in PAGE_PASS_KEYS),
    F.flag("dma_per_page", default=False),
    F.choice("rdma_source", SOURCES, default="buffer"),
)
COPY_FIELDS = (F.choice("who", WHO), F.choice("source", SOURCES))


def from_mapping(d: Any, file: str, index: int) -> CopyPath:
    """The `index`-th [[copy_path]] table of a scenario file."""
    section = f"copy_path[{index}]"
    if not isinstance(d, Mapping):
        raise InputError(f"{file}: {section}: must be a table", "write it as a [[copy_path]] table")
    t = TomlTable(d, file, section)
    values, _ = F.read_section(t, ROW_FIELDS)
    transports = d.get("transports", list(TRANSPORTS))
    if not isinstance(transports, list) or not transports or not all(x in TRANSPORTS for x in transports):
        raise t.error("transports", f"{transports!r} is not a list of transports", f"use a list of {', '.join(TRANSPORTS)}")
    copies = d.get("copies", [])
    if not isinstance(copies, list):
        raise t.error("copies", f"{copies!r} is not a list", 'write it like [{who = "serving", source = "page-cache"}]')
    rows = []
    for i, c in enumerate(copies):
        if not isinstance(c, Mapping):
            raise t.error(f"copies[{i}]", f"{c!r} is not a table", 'write it like {who = "serving", source = "page-cache"}')
        rows.append(Copy(**F.read_section(TomlTable(c, file, f"{section}.copies[{i}]"), COPY_FIELDS)[0]))
    api = d.get("dma_api", "")
    if "dma_api" in d and api not in DMA_APIS:
        raise t.error("dma_api", f"unknown API {api!r}", f"use one of {', '.join(DMA_APIS)}")
    if any(c.who == "dma" for c in rows) and not api:
        raise t.error("dma_api", "missing field: a path with a dma copy names its kernel API",
                      f"add `dma_api = ` one of {', '.join(DMA_APIS)}")
    take = d.get("workers_take", [])
    if not isinstance(take, list) or not all(x in WORKER_PIECES for x in take):
        raise t.error("workers_take", f"{take!r} is not a list of pieces", f"use a list of {', '.join(WORKER_PIECES)}")
    return CopyPath(transports=tuple(transports), copies=tuple(rows), dma_api=api, workers_take=tuple(take), **values)
