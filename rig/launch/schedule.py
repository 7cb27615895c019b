"""Who measures with whom, and when: the patterns of a run under mpirun/srun as pure schedules.

A schedule is a list of rounds; a round is a list of (initiator, target) rank pairs that run at
the same time. Every pattern but incast has each rank in at most one pair per round.

    pairs      rank i with i + N/2, all at once (IMB's pairing): one round, N/2 pairs; odd N
               leaves the last rank out
    all-pairs  round robin (the circle method): N-1 rounds for even N, N for odd N (each rank
               sits out one round, the "bye"); every pair exactly once: a full matrix
    sampled    k rounds of the round robin, picked at random, over ranks shuffled at random
               (seeded): each rank meets k distinct partners (k-1 in the round of its bye),
               every pair at most once, k*N/2 pairs instead of N(N-1)/2
    incast     N-1 clients (ranks 1..N-1) against one server (rank 0), all at once: one round

In a pair the lower rank initiates (writes, reads or sends; in incast the client). A rank needs
only its own partners: `partner(rank, round)` is O(1) (and O(1) per rank after an O(N)
shuffle for sampled), so no rank ever holds the N(N-1)/2 pairs of a large run; the coordinator
lists one round at a time (`round_pairs`). `partner_table` gives a whole round for all ranks at
once (numpy, for checks and the benchmark).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

PATTERNS = ("pairs", "all-pairs", "sampled", "incast")
MAX_RANKS = 1 << 20
INCAST_SERVER = 0
BYE = -1


class ScheduleError(ValueError):
    """A pattern that cannot be laid out for this many ranks: `cause` and `fix`."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}; {fix}")
        self.cause, self.fix = cause, fix


@dataclass(frozen=True)
class Schedule:
    pattern: str
    ranks: int
    partners: int = 0            # sampled: k partners per rank
    seed: int = 0                # sampled: the draw
    _order: tuple[int, ...] = field(default=(), repr=False, compare=False)     # sampled: shuffled ranks
    _where: tuple[int, ...] = field(default=(), repr=False, compare=False)     # their inverse
    _picked: tuple[int, ...] = field(default=(), repr=False, compare=False)    # the round-robin rounds drawn

    def __post_init__(self) -> None:
        check(self.pattern, self.ranks, self.partners)
        if self.pattern == "sampled":
            rng = random.Random(self.seed)
            order = list(range(self.ranks))
            rng.shuffle(order)
            where = [0] * self.ranks
            for pos, rank in enumerate(order):
                where[rank] = pos
            picked = rng.sample(range(_rr_rounds(self.ranks)), self.partners)
            object.__setattr__(self, "_order", tuple(order))
            object.__setattr__(self, "_where", tuple(where))
            object.__setattr__(self, "_picked", tuple(picked))

    @property
    def rounds(self) -> int:
        if self.pattern == "all-pairs":
            return _rr_rounds(self.ranks)
        if self.pattern == "sampled":
            return self.partners
        return 1

    def partner(self, rank: int, rnd: int) -> int:
        """The rank's partner in round `rnd`, or BYE. Incast: the server's partner is every client
        (use `clients`); a client's is the server."""
        if not 0 <= rank < self.ranks or not 0 <= rnd < self.rounds:
            raise IndexError(f"rank {rank} / round {rnd} outside {self.ranks} ranks / {self.rounds} rounds")
        n = self.ranks
        if self.pattern == "pairs":
            half = n // 2
            return rank + half if rank < half else rank - half if rank < 2 * half else BYE
        if self.pattern == "incast":
            return INCAST_SERVER if rank != INCAST_SERVER else BYE
        if self.pattern == "all-pairs":
            return _rr_partner(n, rank, rnd)
        p = _rr_partner(n, self._where[rank], self._picked[rnd])
        return BYE if p == BYE else self._order[p]

    def role(self, rank: int, rnd: int) -> str:
        """'initiator', 'target' or 'idle' in round `rnd` (the incast server is the target)."""
        if self.pattern == "incast":
            return "target" if rank == INCAST_SERVER else "initiator"
        p = self.partner(rank, rnd)
        return "idle" if p == BYE else "initiator" if rank < p else "target"

    def clients(self) -> list[int]:
        """Incast: the ranks that initiate against the server."""
        return [r for r in range(self.ranks) if r != INCAST_SERVER]

    def round_pairs(self, rnd: int) -> list[tuple[int, int]]:
        """The (initiator, target) pairs of round `rnd`, by initiator rank."""
        if self.pattern == "incast":
            return [(c, INCAST_SERVER) for c in self.clients()]
        pairs = []
        for rank in range(self.ranks):
            p = self.partner(rank, rnd)
            if p != BYE and rank < p:
                pairs.append((rank, p))
        return pairs

    def pairs_expected(self) -> int:
        n = self.ranks
        if self.pattern == "pairs":
            return n // 2
        if self.pattern == "incast":
            return n - 1
        if self.pattern == "all-pairs":
            return n * (n - 1) // 2
        return self.partners * (n // 2)          # every round-robin round holds floor(N/2) pairs

    def describe(self) -> dict[str, Any]:
        d = {"pattern": self.pattern, "ranks": self.ranks, "rounds": self.rounds}
        if self.pattern == "sampled":
            d.update(partners=self.partners, seed=self.seed)
        return d

    def partner_table(self, rnd: int) -> Any:
        """numpy int array: partner of every rank in round `rnd` (BYE = -1); all-pairs and
        sampled vectorised, the others from `partner`."""
        import numpy as np

        if self.pattern not in ("all-pairs", "sampled"):
            return np.array([self.partner(r, rnd) for r in range(self.ranks)])
        n = self.ranks
        if self.pattern == "all-pairs":
            return _rr_table(np, n, rnd)
        order = np.asarray(self._order)
        slots = _rr_table(np, n, self._picked[rnd])          # partner slot of every slot
        out = np.full(n, BYE, dtype=slots.dtype)
        out[order] = np.where(slots == BYE, BYE, order[np.maximum(slots, 0)])
        return out


def check(pattern: str, ranks: int, partners: int = 0) -> None:
    """ScheduleError naming what is wrong and what would work."""
    if pattern not in PATTERNS:
        raise ScheduleError(f"pattern {pattern!r} is not one of {', '.join(PATTERNS)}", "pick one of those")
    if not 2 <= ranks <= MAX_RANKS:
        raise ScheduleError(f"{ranks} rank(s): a pattern needs 2..{MAX_RANKS} ranks",
                            "launch at least 2 ranks (mpirun -n N, srun -n N)")
    if pattern == "sampled":
        most = _rr_rounds(ranks)
        if not 1 <= partners <= most:
            raise ScheduleError(f"{partners} partners per rank: {ranks} ranks allow 1..{most}",
                                f"use --partners 1..{most} ({most} is every pair: --pattern all-pairs)")
    elif partners:
        raise ScheduleError(f"partners per rank apply to the sampled pattern, not {pattern}",
                            "drop the partners, or use the sampled pattern")


def _rr_rounds(n: int) -> int:
    return n - 1 if n % 2 == 0 else n


def _rr_partner(n: int, rank: int, rnd: int) -> int:
    """Circle method: with m = N-1 (N made even with a phantom rank), rank i meets (2r - i) mod m;
    the one rank that would meet itself (i = r) meets the fixed rank m instead."""
    even = n + n % 2
    m = even - 1
    if rank == m:
        p = rnd
    else:
        p = (2 * rnd - rank) % m
        if p == rank:
            p = m
    return BYE if p >= n else p


def _rr_table(np: Any, n: int, rnd: int) -> Any:
    even = n + n % 2
    m = even - 1
    dtype = np.int32 if even < (1 << 31) else np.int64
    i = np.arange(even, dtype=dtype)
    p = (2 * rnd - i) % m
    p[i == p] = m
    p[m] = rnd
    p = p[:n]
    p[p >= n] = BYE
    return p
