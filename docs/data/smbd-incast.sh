#!/bin/sh
# rdmarig guest run --store S -- sh docs/data/smbd-incast.sh   (records: docs/data/smbd-incast.jsonl, docs/mpi.md)
# SMB Direct incast in the guest: rank 0 serves N-1 clients (docs/mpi.md), READ 1 MiB cpu-copy, 1 connection per client
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
for n in 2 3 4; do
  echo "== incast -n $n $(date -u +%T)"
  mpirun --allow-run-as-root --oversubscribe -n $n .venv/bin/rdmarig measure smbd --mpi --pattern incast --device rxe0,rxe1 \
    --io-size 1MiB --connections 1 --copy cpu-copy --duration 3s
done
