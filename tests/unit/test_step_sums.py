"""A step's attention sums computed once and handed on (workloads.seqs.step_sums, SeqArrays.sums, the
remembered tuple forms in sim/attention.py): the array form of every sum equals the tuple form step by
step, a remembered answer equals a fresh one, and the steps the serving path prices through them equal
the per-op cost model's whole graph (rel 1e-9) on random steps (docs/performance.md, issue 17)."""

import pickle

import numpy as np

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodels import load_system
from sim.attention import _padded_pairs, visible_fraction
from sim.step import StepCoster
from workloads.opdata import AttentionShape
from workloads.seqs import KVPairs, SeqArrays, seq_blocks, seq_max_second, seq_tokens, step_sums

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pairs_st = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 5000)), min_size=1, max_size=6)


@SETTINGS
@given(steps=st.lists(pairs_st, min_size=1, max_size=5), window=st.sampled_from([None, 64, 1000]),
       bq=st.sampled_from([1, 16, 64, 128]), bkv=st.sampled_from([16, 128]), group=st.sampled_from([1, 4]))
def test_array_sums_equal_the_tuple_form_step_by_step(steps, window, bq, bkv, group):
    width = max(len(s) for s in steps)
    rows = [s + [(0, 0)] * (width - len(s)) for s in steps]  # absent requests are (0, 0) pairs
    arr = SeqArrays([[n for n, _ in r] for r in rows], [[c for _, c in r] for r in rows])
    pairs, rect, cached, tokens, kv = step_sums(arr, window)
    again = step_sums(arr, window)  # remembered: the same objects
    assert again[0] is pairs and again[3] is tokens
    for k, s in enumerate(steps):
        t = tuple(s)
        p1, r1, c1, n1, kv1 = step_sums(t, window)
        assert (pairs[k], rect[k], cached[k], tokens[k]) == (p1, r1, c1, n1)
        assert seq_blocks(arr, bq)[k] == seq_blocks(t, bq)
        assert seq_max_second(kv)[k] == seq_max_second(kv1)
        assert _padded_pairs(kv, bq, bkv, group)[k] == _padded_pairs(kv1, bq, bkv, group)
        a_arr = AttentionShape("mixed", "flash", 8, 2, 64, 64, kv, True, "bf16", window)
        a_one = AttentionShape("mixed", "flash", 8, 2, 64, 64, kv1, True, "bf16", window)
        assert visible_fraction(a_arr)[k] == visible_fraction(a_one)
        # the pairs step_sums hands on carry its sums: the same answers as the plain tuple's
        plain = tuple(kv1)
        assert type(kv1) is KVPairs and kv1 == plain and hash(kv1) == hash(plain)
        a_plain = AttentionShape("mixed", "flash", 8, 2, 64, 64, plain, True, "bf16", window)
        assert a_plain == a_one and visible_fraction(a_plain) == visible_fraction(a_one)
        assert seq_blocks(plain, bq) == seq_blocks(kv1, bq)
        assert _padded_pairs(plain, bq, bkv, group) == _padded_pairs(kv1, bq, bkv, group)
        assert pickle.loads(pickle.dumps(kv1)) == plain
    # the (new, kv length) form hands its sums back: cached() is the object it came from
    assert kv.cached() is arr and seq_tokens(kv) is tokens
    # a list of pairs (not a tuple) reads the same sums, not remembered
    assert step_sums(list(steps[0]), window) == step_sums(tuple(steps[0]), window)


@pytest.fixture(scope="module")
def costers():
    h100 = load_system("h100-sxm")
    return {"llama": StepCoster("llama-3.1-8b", h100, stack="vllm"),
            "gemma": StepCoster("gemma-2-27b", h100, stack="ideal")}


run_st = st.lists(st.tuples(st.integers(1, 9000), st.integers(1, 12)), min_size=1, max_size=9)


@SETTINGS
@given(run=run_st, steps=st.integers(2, 12), which=st.sampled_from(["llama", "gemma"]),
       ahead=st.booleans())
def test_decode_runs_equal_the_per_op_model_on_random_steps(costers, run, steps, which, ahead):
    """A decode run priced through the shared sums (one evaluation, a run ahead in the same arrays when
    asked) equals each step priced alone bit for bit and the whole graph (per-op cost model) to 1e-9."""
    sc = costers[which]
    ctx = [c for c, _ in run]
    stays = [min(n, steps) for _, n in run]
    stays[0] = steps  # a run holds at least one request to its end (the replica's runs end at the last finish)
    nxt = ([c + steps + 5 for c in ctx], [3] * len(ctx), 3)
    for k in range(steps):  # every request count's (T, R) part known first
        if any(n > k for n in stays):
            sc.step(tuple((1, c + k + 20_000) for c, n in zip(ctx, stays) if n > k))
    sc.step(tuple((1, c + 20_000) for c in nxt[0]))
    got = sc.decode_steps(ctx, steps, stays, (nxt,) if ahead else ())
    assert got is not None
    for k in range(steps):
        seqs = tuple((1, c + k) for c, n in zip(ctx, stays) if n > k)
        if not seqs:
            continue
        one, exact = sc.step(seqs), sc.exact(seqs)
        assert tuple(v[k] for v in got) == (one.time_s, one.energy_j, one.flops, one.bytes_main)
        for v, w in zip(got, (exact.time_s, exact.energy_j, exact.flops, exact.bytes_main)):
            assert v[k] == pytest.approx(w, rel=1e-9)
    if ahead:  # the run ahead is answered from the same evaluation, equal to its own
        later = sc.decode_steps(nxt[0], nxt[2], nxt[1])
        for k in range(nxt[2]):
            seqs = tuple((1, c + k) for c in nxt[0])
            exact = sc.exact(seqs)
            assert later[0][k] == pytest.approx(exact.time_s, rel=1e-9)


mixed_st = st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 6000)), min_size=1, max_size=8)


@SETTINGS
@given(pre=mixed_st, dec=st.lists(st.integers(1, 9000), max_size=8), which=st.sampled_from(["llama", "gemma"]))
def test_mixed_steps_equal_the_per_op_model_on_random_steps(costers, pre, dec, which):
    """A step holding prefills or chunks beside decodes (the flash op built and priced through the one-pass
    sums, remembered per shape) equals the whole graph to 1e-9, the first time and when asked again."""
    sc = costers[which]
    seqs = tuple(pre) + tuple((1, c) for c in dec)
    sc.step(seqs)  # its (T, R) part known (a whole graph the first time)
    bkey = (sum(n for n, _ in seqs), len(seqs))
    base, kernels = sc._base[bkey], sc._base_kernels[bkey]
    fresh = sc._decomposed(seqs, base, kernels)  # the step's sums computed
    again = sc._decomposed(tuple(seqs), base, kernels)  # and read back where remembered
    exact = sc.exact(seqs)
    assert again == fresh
    got = sc._wall(fresh, seqs)
    for v, w in zip((got.time_s, got.energy_j, got.flops, got.bytes_main),
                    (exact.time_s, exact.energy_j, exact.flops, exact.bytes_main)):
        assert v == pytest.approx(w, rel=1e-9)


def test_split_puts_absent_requests_on_the_side_they_take_part_in():
    """SeqArrays.split: a request absent from some steps (the pair (0, 0), with a per-step count) stays on the
    side of the steps it is in; a run of decodes is all decode side (the object itself), and a mixed one gives
    each side its own per-step count."""
    first = np.array([[1, 1, 1], [1, 0, 1], [1, 0, 0]])
    second = np.array([[10, 20, 30], [11, 0, 31], [12, 0, 0]])
    run = SeqArrays(first, second, np.array([3, 2, 1]))
    pre, dec = run.split()
    assert pre == () and dec is run
    mixed = SeqArrays(np.array([[5, 1, 1], [5, 0, 1]]), np.array([[0, 20, 30], [7, 0, 31]]), np.array([3, 2]))
    pre, dec = mixed.split()
    assert pre.first.tolist() == [[5], [5]] and pre.count.tolist() == [1, 1]
    assert dec.second.tolist() == [[20, 30], [0, 31]] and dec.count.tolist() == [2, 1]
    with pytest.raises(ValueError):  # a request that decodes in one step and prefills in another
        SeqArrays(np.array([[1], [4]]), np.array([[9], [10]]), np.array([1, 1])).split()
