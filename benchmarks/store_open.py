"""Benchmark: what opening a result store costs (quick_check, bounded by CHECK_BUDGET_S), and
what `results list` and `results export` read, on a store of N records; prints the figures.

    python benchmarks/store_open.py [--records 10000] [--repeat 5] [--dir /var/tmp]

Records are shaped like `measure copy` socket records (30 summary figures, 3 repetitions, a
tenth with 2,000 latency samples as verbs latency records carry), ~6.7 kB each on average.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import store as store_mod  # noqa: E402
from results.record import Record  # noqa: E402
from results.store import Store  # noqa: E402


def build(path: Path, n: int) -> None:
    recs = [Record(kind="measured", name="copy.socket",
                   params={"io_size_bytes": 65536 << (i % 8), "path": "rw", "source": "tmpfs", "via": "loopback"},
                   summary={f"figure{j}_gbytes_per_s": float(i + j) for j in range(30)},
                   samples={"gbytes_per_s": [1.0, 1.1, 0.9],
                            "latency_s": [1e-6 * j for j in range(2000 if i % 10 == 0 else 100)]},
                   provenance={"host": "bench", "kernel": "6.1", "cpu": "x" * 200})
            for i in range(n)]
    with Store(path) as st:
        st.insert_many(recs)


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to build the store (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.sqlite"
        t0 = time.perf_counter()
        build(path, args.records)
        print(f"store: {args.records} records, {os.path.getsize(path) / 1e6:.1f} MB, built in "
              f"{time.perf_counter() - t0:.1f} s  ({path})")

        def quick_check() -> None:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            assert db.execute("PRAGMA quick_check(5)").fetchall() == [("ok",)]
            db.close()

        def open_and_count() -> None:
            with Store(path) as st:
                st.count()
                assert st.checked_whole, "quick_check ran over its budget"

        def list_newest() -> None:
            with Store(path) as st:
                st.query(limit=50)
                st.count()

        def read_all() -> None:
            with Store(path) as st:
                assert len(st.query()) == args.records

        print(f"CHECK_BUDGET_S = {store_mod.CHECK_BUDGET_S} s")
        for what, fn in (("PRAGMA quick_check alone", quick_check),
                         ("Store open: quick_check + count", open_and_count),
                         ("`results list` (newest 50 + count)", list_newest),
                         ("`results export` (every record parsed)", read_all)):
            med, worst = timed(fn, args.repeat)
            print(f"{what:42s} median {med * 1e3:8.1f} ms   max {worst * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
