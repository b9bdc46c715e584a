"""Eager CPU draws made in cache-sized pieces give the words of one draw, bit for bit, vmapped or not.

The pieces are the fallback where the C kernel of :mod:`regfn.random._native` is not used; these tests turn it off.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap

import regfn.random as rr

eager = importlib.import_module("regfn.random._eager")
sample = importlib.import_module("regfn.random._sample")

IMPLS = ["threefry2x32", "philox4x32"]


@pytest.fixture(autouse=True)
def without_the_kernel(monkeypatch):
    monkeypatch.setattr(importlib.import_module("regfn.random._native"), "usable", lambda k: False)


def drawn_whole(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(sample, "piece_size", lambda *a, **k: None)
        return fn()


@settings(max_examples=12, deadline=None)
@given(
    impl=st.sampled_from(IMPLS),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5000),
    piece=st.sampled_from([1, 4, 12, 1024]),
    batch=st.integers(1, 3),
)
def test_pieces_are_the_words_of_one_draw(impl, seed, n, piece, batch):
    keys = torch.stack([rr.key(seed + i, impl=impl) for i in range(batch)])
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(sample, "piece_size", lambda *a, **k: None)
        whole = vmap(lambda k: rr.bits(k, (n,)))(keys)
        floats = vmap(lambda k: rr.uniform(k, (n,)))(keys)
        mp.setattr(sample, "piece_size", lambda key, m, align=1: max(align, piece - piece % align))
        assert torch.equal(vmap(lambda k: rr.bits(k, (n,)))(keys), whole)
        assert torch.equal(vmap(lambda k: rr.uniform(k, (n,)))(keys), floats)
        assert torch.equal(rr.bits(keys[0], (n,)), whole[0])
    finally:
        mp.undo()


@pytest.mark.parametrize("impl", IMPLS)
def test_a_large_mask_is_cut_and_equals_the_whole_draw(impl, monkeypatch):
    keys = torch.stack([rr.key(s, impl=impl) for s in range(8)])

    def masks():
        return vmap(lambda k: rr.bernoulli(k, 0.7, (128, 600)))(keys)

    assert eager.piece_size(keys[0], 128 * 600) is None  # one configuration alone: under the threshold, one draw
    sizes = []
    real = eager.piece_size

    def recording(key, n, align=1):
        sizes.append(real(key, n, align))
        return sizes[-1]

    monkeypatch.setattr(sample, "piece_size", recording)
    cut = masks()
    assert sizes == [eager.PIECE_WORDS // 8]  # the vmap batch of 8 counted
    assert torch.equal(cut, drawn_whole(monkeypatch, masks))


def test_only_eager_cpu_draws_are_cut():
    key = rr.key(0)
    assert eager.piece_size(key, 2**20) == eager.PIECE_WORDS
    assert eager.piece_size(key, 2**20, align=4) == eager.PIECE_WORDS
    assert eager.piece_size(key, 1000) is None
    assert eager.piece_size(key.to("meta"), 2**20) is None
    seen = []
    torch.compile(lambda k: seen.append(eager.piece_size(k, 2**20)) or k, backend="eager", fullgraph=False)(key)
    assert seen == [None]


def test_the_vmapped_batch_is_counted_through_nested_transforms():
    seen = []

    def look(k):
        seen.append(eager._vmapped_batch(k))
        return k

    vmap(vmap(look))(torch.zeros(3, 4, 2, dtype=torch.int64))
    vmap(look, in_dims=1)(torch.zeros(2, 5, dtype=torch.int64))
    assert seen == [12, 5]
    assert eager._vmapped_batch(torch.zeros(2)) == 1
