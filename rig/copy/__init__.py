"""Host copy-cost probes: user-space memcpy bandwidth and file -> TCP socket paths.

Modules:
  buffers     page-aligned buffers (mmap) and the alignment check every probe records
  accounting  CPU accounting: rusage per process, /proc/stat per CPU, ksoftirqd schedstat
  memcpy      memcpy bandwidth by size and process count
  sources     where the bytes come from: tmpfs page cache, disk page cache, anonymous memory
  senders     the send loops, one per path (rw, sendfile, splice, vmsplice, msg-zerocopy, uring-*)
  uring       a small io_uring driver on raw syscalls (ctypes)
  netns       a veth pair between two network namespaces, created and removed by the probe
  transfer    sender + receiver processes, one measured transfer
  runs        sweeps of probes into records, stored one by one
"""
