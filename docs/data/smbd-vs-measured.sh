#!/bin/sh
# One guest session: the parts (rdma part probes, measure verbs, measure copy) and the whole
# (measure smbd), rounds interleaved, for `rdmarig plan smbdirect-this-host --vs-measured` (docs/smbd.md).
#   rdmarig guest run --timeout 75min --store S -- sh docs/data/smbd-vs-measured.sh
# (2026-12-01 16:59 UTC: 55 min, with 5 rxe stalls of 10 s and the 2-8 MiB points at 6 s;
# 2026-12-02 08:26 UTC, a quiet host, no stall: 28 min, before the pinned points)
R=.venv/bin/rdmarig
P=.venv/bin/python
V="--device rxe1 --peer-device rxe0 --op write"
for round in 1 2; do
  echo "== round $round parts: rdma_parts $(date -u +%T)"
  # mrreg, exchange, crc32, pread (the cpu-copy server's pread alone, beside a WRITE chain, and
  # posting that chain itself) and handoff (the async-workers server's io-wq hand-off, since 2026-12-02)
  $P -m rig.copy.rdma_parts --sizes 64KiB..8MiB --depths 1,8,32 --exchanges 500 --repetitions 3
  echo "== round $round parts: measure verbs $(date -u +%T)"
  $R measure verbs $V --size 64,256,1KiB,4KiB,16KiB,64KiB,256KiB,1MiB --duration 2s
  echo "== round $round parts: measure verbs --events at the whole's WRs in flight $(date -u +%T)"
  # a poster that sleeps on completion events, 2 QPs, each size at the in-flight I/Os per connection
  # of the measure smbd point below: where the kernel runs the chain of a sleeping poster's WRs
  # (these records stay out of the soft-NIC fit); 6 s: at 8 MiB a 2 s run held 10-14 WRs, too few
  # hand-overs for their mean (per run 2.7-65 ms on 2026-12-01)
  for point in 64KiB:128 128KiB:64 256KiB:32 512KiB:16 1MiB:8 2MiB:4 4MiB:2 8MiB:2; do
    $R measure verbs $V --events --qps 2 --tx-depth ${point#*:} --cq-mod 1 --size ${point%:*} --duration 6s
  done
  echo "== round $round whole: measure smbd $(date -u +%T)"
  # one command per point: a point rxe stalls on ends its command, not the rest of the sweep (in
  # the 2026-12-01 sessions rxe stalled at 128 KiB with 64 requests outstanding 1-3 times a session)
  # 6 s from 2 MiB up: at 8 MiB 3 s held 15-25 I/Os, and the serving threads' kernel time per I/O
  # swung 16-55 ms between two rounds
  for copy in cpu-copy async-workers zero-copy; do
    for point in 64KiB:3s 128KiB:3s 256KiB:3s 512KiB:3s 1MiB:3s 2MiB:6s 4MiB:6s 8MiB:6s; do
      $R measure smbd --op read --io-size ${point%:*} --copy $copy --duration ${point#*:}
    done
  done
  echo "== round $round whole: measure smbd --serving-cpus 0,1 $(date -u +%T)"
  # the same points with connection i's serving process pinned to CPU i: the model counts every
  # CPU-second usable, and unpinned runs at 8 MiB left a vCPU idle up to a fifth of the time
  # (2026-12-02 09:02 UTC: 1.61-1.95 CPUs busy unpinned, 1.97-1.99 pinned; docs/smbd.md)
  for copy in cpu-copy async-workers zero-copy; do
    for point in 64KiB:3s 256KiB:3s 1MiB:3s 8MiB:6s; do
      $R measure smbd --op read --io-size ${point%:*} --copy $copy --duration ${point#*:} --serving-cpus 0,1
    done
  done
  if [ "$round" = 1 ]; then
    echo "== round $round whole: measure smbd --register per-io $(date -u +%T)"
    $R measure smbd --op read --io-size 64KiB,1MiB,8MiB --copy zero-copy --register per-io --duration 3s
    echo "== round $round parts: measure copy $(date -u +%T)"
    $R measure copy --probe memcpy --sizes 64KiB..64MiB --repetitions 3
    $R measure copy --probe fault,pin,pagecopy --sizes 16MiB --repetitions 3
    $R measure copy --probe socket --paths rw,sendfile --sizes 64KiB,1MiB,8MiB --repetitions 3
  fi
done
echo "== done $(date -u +%T)"
