#!/bin/sh
# When rxe (the guest's 6.1 kernel) stalls an SMB Direct READ connection: sizes around 128 packets
# per response at RoCE MTU 1024 with 64 requests in flight, then fewer in flight, then RoCE MTU 4096
# (128 KiB = 32 packets; 512/516 KiB = 128/129 packets again). Partial records in S are the stalls;
# the counters printed are completer_retry_err/retry_exceeded_err per device.
#   rdmarig guest run --timeout 60min --store S -- sh docs/data/smbd-rxe-stall.sh
# (its three parts ran on 2026-12-01 23:05-23:47 UTC in three guest boots, 15 + 6 + 6 min, docs/smbd.md;
# this file as a whole has not been run end to end)
R=.venv/bin/rdmarig
ctr() { for d in rxe0 rxe1; do
  printf "%s:%s/%s " "$d" "$(cat /sys/class/infiniband/$d/ports/1/hw_counters/completer_retry_err)" \
    "$(cat /sys/class/infiniband/$d/ports/1/hw_counters/retry_exceeded_err)"; done; }
run() {   # size, try, extra options
  s=$(date +%s)
  $R measure smbd --op read --io-size "$1" --copy zero-copy --duration 3s $3 > /tmp/o.txt 2>&1; rc=$?
  e=$(date +%s)
  echo "mtu $(cat /sys/class/net/veth0/mtu) size $1 $3 try $2 rc=$rc $((e-s))s $(ctr)| $(grep -m1 'rdmarig: error' /tmp/o.txt | cut -c1-160)"
}
for i in 1 2 3 4 5; do
  for size in 128KiB 127.5KiB 132KiB; do run $size $i; done
done
for i in 1 2 3 4 5; do run 128KiB $i "--in-flight 16"; run 128KiB $i "--in-flight 4"; done
ip link set dev veth0 mtu 4500 && ip link set dev veth1 mtu 4500 || exit 1
sleep 1
for d in rxe0 rxe1; do ibv_devinfo -d $d -i 1 | grep active_mtu; done
for i in 1 2 3 4 5; do run 128KiB $i; run 512KiB $i; run 516KiB $i; done
echo "== done $(date -u +%T)"
