"""The patterns as pure schedules: every pair exactly once (all-pairs), at most once (sampled),
no rank twice in a round, the lower rank initiating; the vectorised table agrees with the
per-rank formula."""

from __future__ import annotations

import itertools

import pytest

from rig.launch.mpi import local_ranks, rank_device
from rig.launch.schedule import BYE, Schedule, ScheduleError

SIZES = list(range(2, 34)) + [64, 101, 128]


def _rounds(s: Schedule) -> list[list[tuple[int, int]]]:
    return [s.round_pairs(r) for r in range(s.rounds)]


def _check_rounds(s: Schedule) -> list[tuple[int, int]]:
    """No rank twice in a round; initiator < target; partner/role agree with the pairs."""
    every = []
    for r, pairs in enumerate(_rounds(s)):
        ranks = [x for pair in pairs for x in pair]
        assert len(ranks) == len(set(ranks)), (s, r)
        table = s.partner_table(r)
        for a, b in pairs:
            assert a < b and s.partner(a, r) == b and s.partner(b, r) == a
            assert s.role(a, r) == "initiator" and s.role(b, r) == "target"
            assert table[a] == b and table[b] == a
        idle = set(range(s.ranks)) - set(ranks)
        assert all(s.partner(x, r) == BYE and s.role(x, r) == "idle" and table[x] == BYE for x in idle)
        every += pairs
    return every


@pytest.mark.parametrize("n", SIZES)
def test_all_pairs_every_pair_exactly_once(n):
    s = Schedule("all-pairs", n)
    assert s.rounds == (n - 1 if n % 2 == 0 else n)
    every = _check_rounds(s)
    assert sorted(every) == list(itertools.combinations(range(n), 2))
    assert s.pairs_expected() == len(every) == n * (n - 1) // 2
    if n % 2 == 0:
        assert all(len(p) == n // 2 for p in _rounds(s))          # nobody idle
    else:
        byes = [x for r in range(s.rounds) for x in range(n) if s.partner(x, r) == BYE]
        assert sorted(byes) == list(range(n))                    # each rank sits out exactly once


@pytest.mark.parametrize("n", [2, 3, 4, 7, 8, 9, 64])
def test_pairs_is_i_with_i_plus_half(n):
    s = Schedule("pairs", n)
    assert s.rounds == 1
    assert s.round_pairs(0) == [(i, i + n // 2) for i in range(n // 2)]
    _check_rounds(s)
    assert s.pairs_expected() == n // 2
    if n % 2:
        assert s.role(n - 1, 0) == "idle"


@pytest.mark.parametrize("n", [2, 3, 9])
def test_incast_clients_against_rank_0(n):
    s = Schedule("incast", n)
    assert s.round_pairs(0) == [(c, 0) for c in range(1, n)] and s.pairs_expected() == n - 1
    assert s.role(0, 0) == "target" and all(s.role(c, 0) == "initiator" and s.partner(c, 0) == 0 for c in range(1, n))
    assert s.clients() == list(range(1, n))


@pytest.mark.parametrize("n,k", [(2, 1), (5, 3), (8, 7), (9, 9), (40, 5), (101, 12)])
def test_sampled_k_distinct_partners_each_pair_at_most_once(n, k):
    s = Schedule("sampled", n, k, seed=n * 31 + k)
    assert s.rounds == k
    every = _check_rounds(s)
    assert len({tuple(sorted(p)) for p in every}) == len(every) == s.pairs_expected()
    for rank in range(n):
        partners = [s.partner(rank, r) for r in range(k)]
        met = [p for p in partners if p != BYE]
        assert len(met) == len(set(met)) and len(met) >= k - 1     # k, or k-1 in the round of its bye
        assert len(met) == k or n % 2 == 1


def test_sampled_is_seeded():
    a, b, c = (Schedule("sampled", 50, 4, seed=s) for s in (1, 1, 2))
    assert _rounds(a) == _rounds(b) and _rounds(a) != _rounds(c)


def test_sampled_with_every_round_is_all_pairs():
    s = Schedule("sampled", 12, 11, seed=5)
    assert sorted(tuple(sorted(p)) for p in _check_rounds(s)) == list(itertools.combinations(range(12), 2))


def test_ten_thousand_ranks_one_round_table_matches_the_formula():
    """The benchmark computes all 9,999 rounds (benchmarks/mpi_schedule.py); here one round each."""
    for s in (Schedule("all-pairs", 10_000), Schedule("sampled", 10_000, 8, seed=3)):
        table = s.partner_table(s.rounds - 1)
        assert sorted(table.tolist()) == list(range(10_000))      # a perfect matching
        assert all(table[i] == s.partner(i, s.rounds - 1) for i in range(0, 10_000, 97))


@pytest.mark.parametrize("args,fragment", [
    (("ring", 4), "pattern 'ring' is not one of"),
    (("pairs", 1), "1 rank(s): a pattern needs 2.."),
    (("all-pairs", 0), "needs 2.."),
    (("sampled", 6, 0), "0 partners per rank: 6 ranks allow 1..5"),
    (("sampled", 6, 6), "6 partners per rank"),
    (("sampled", 7, 8), "7 ranks allow 1..7"),
    (("pairs", 4, 2), "partners per rank apply to the sampled pattern"),
])
def test_impossible_schedules_say_why(args, fragment):
    with pytest.raises(ScheduleError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Schedule(*args)


def test_partner_outside_the_schedule():
    s = Schedule("all-pairs", 4)
    for rank, rnd in ((4, 0), (-1, 0), (0, 3)):
        with pytest.raises(IndexError):
            s.partner(rank, rnd)


def test_local_ranks_and_devices():
    hosts = {0: "a", 1: "b", 2: "a", 3: "a", 4: "b"}
    assert local_ranks(hosts) == {0: 0, 1: 0, 2: 1, 3: 2, 4: 1}
    assert [rank_device(("rxe0", "rxe1"), lr) for lr in range(4)] == ["rxe0", "rxe1", "rxe0", "rxe1"]
    assert [rank_device((), lr, lambda: ["mlx5_0"]) for lr in range(3)] == ["mlx5_0"] * 3   # two ranks, one device
    from scenarios.errors import InputError
    with pytest.raises(InputError, match="no RDMA device with an ACTIVE port"):
        rank_device((), 0, lambda: [])
