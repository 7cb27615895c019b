"""Host copy-cost probes: user-space memcpy bandwidth, file -> TCP socket paths, and the per-page
costs of user memory (page faults, pinning, page copies) and of the TCP checksum.

Modules:
  buffers     page-aligned buffers (mmap) and the alignment check every probe records
  hugepages   THP settings, mappings backed by 4 KiB pages or THP, what the kernel actually gave
  child       forked probe children: signals, result pipe, one function run in a pinned child
  outcome     what every sweep shares: outcome, plan step, summary, noise watch
  memcpy      memcpy bandwidth by size and process count
  sources     where the bytes come from: tmpfs page cache, disk page cache, anonymous memory
  senders     the send loops, one per path (rw, sendfile, splice, vmsplice, msg-zerocopy, uring-*)
  uring       a small io_uring driver on raw syscalls (ctypes), buffer registration included
  netns       a veth pair between two network namespaces, created and removed by the probe
  transfer    sender + receiver processes, one measured transfer
  faults      page-fault cost: touching a fresh mapping (4 KiB pages or THP)
  pins        pin cost: io_uring buffer registration, vmsplice
  pagecopy    copy cost per page vs per byte: tmpfs file read as 4 KiB or 2 MiB folios
  csum        TCP send on a veth pair with checksum offload off vs on
  runs        sweeps of memcpy and socket probes into records, stored one by one; leftovers
  page_runs   sweeps of the fault, pin and pagecopy probes into records
The CPU accounting they share is rig/accounting.py.
"""
