#!/bin/sh
# rxe stall at 128 KiB: does it go with the 128-PSN unacked window (RXE_MAX_UNACKED_PSNS; a 128 KiB
# response = 128 WRITE packets + 1 SEND at MTU 1024)? Sizes around it at MTU 1024, then 128 KiB at MTU 4096
# (the records land in S: partial ones stalled; counters: completer_retry_err/retry_exceeded_err).
# run from the checkout: rdmarig guest run --store S -- sh docs/data/smbd-rxe-stall.sh (15 min on 2026-12-01)
R=.venv/bin/rdmarig
ctr() { for d in rxe0 rxe1; do printf "%s:%s/%s " $d $(cat /sys/class/infiniband/$d/ports/1/hw_counters/completer_retry_err) $(cat /sys/class/infiniband/$d/ports/1/hw_counters/retry_exceeded_err); done; }
run() {
  s=$(date +%s)
  $R measure smbd --op read --io-size $1 --copy zero-copy --duration 3s > /tmp/o.txt 2>&1; rc=$?
  e=$(date +%s)
  echo "mtu $(cat /sys/class/net/veth0/mtu) size $1 try $2 rc=$rc $((e-s))s $(ctr) | $(grep -m1 'rdmarig: error' /tmp/o.txt | cut -c1-160)"
}
for i in 1 2 3 4 5; do
  for size in 128KiB 127.5KiB 132KiB; do run $size $i; done
done
ip link set dev veth0 mtu 4500 && ip link set dev veth1 mtu 4500
sleep 1
for d in rxe0 rxe1; do ibv_devinfo -d $d -i 1 | grep -i active_mtu; done
for i in 1 2 3 4 5; do run 128KiB $i; done
echo "== done $(date -u +%T)"
