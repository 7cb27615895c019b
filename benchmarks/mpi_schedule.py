"""Benchmark: the schedules of `measure verbs --mpi` at 10,000 ranks (prints the figures).

    python benchmarks/mpi_schedule.py [--ranks 10000] [--partners 16] [--verify]

What each rank computes at start (its own partners, O(rounds)), what the coordinator lists per
step (one round's pairs, O(N)), the whole all-pairs schedule (every round's partner table, numpy)
and the sampled one; --verify checks the whole all-pairs schedule (every pair exactly once, no
rank twice in a round) with an N x N bit table (~100 MB at 10,000 ranks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.launch.schedule import Schedule  # noqa: E402


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<64} {time.perf_counter() - t0:8.3f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=10_000)
    ap.add_argument("--partners", type=int, default=16)
    ap.add_argument("--verify", action="store_true")
    a = ap.parse_args()
    n = a.ranks
    s = timed(f"all-pairs schedule object, {n} ranks", lambda: Schedule("all-pairs", n))
    print(f"  {s.rounds} rounds, {s.pairs_expected()} pairs")
    timed("one rank's partners in every round (what a rank computes)",
          lambda: [s.partner(n // 3, r) for r in range(s.rounds)])
    timed("one round's pairs (what the coordinator lists per step)", lambda: s.round_pairs(s.rounds // 2))
    timed(f"whole all-pairs schedule: {s.rounds} partner tables (numpy)",
          lambda: sum(int(s.partner_table(r)[0]) for r in range(s.rounds)))
    k = min(a.partners, s.rounds)
    sampled = timed(f"sampled schedule object, {k} partners per rank", lambda: Schedule("sampled", n, k, seed=1))
    timed(f"whole sampled schedule: {k} partner tables", lambda: [sampled.partner_table(r) for r in range(k)])
    if a.verify:
        import numpy as np

        def verify() -> None:
            seen = np.zeros((n, n), dtype=bool)
            idx = np.arange(n)
            for r in range(s.rounds):
                p = s.partner_table(r)
                live = p >= 0
                assert (p[p[live]] == idx[live]).all(), r              # a matching: nobody twice in a round
                assert not seen[idx[live], p[live]].any(), r           # no pair twice
                seen[idx[live], p[live]] = True
            assert seen.sum() == n * (n - 1)                           # every ordered pair: each pair once
        timed("verify: every pair exactly once, no rank twice in a round", verify)


if __name__ == "__main__":
    main()
