"""fold_in on Python integers (readable CPU keys) gives the tensor cipher's words, for both implementations."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import grad, vmap

import regfn.random as rr

host = importlib.import_module("regfn.random._host")
threefry = importlib.import_module("regfn.random._threefry")
philox = importlib.import_module("regfn.random._philox")

IMPLS = ["threefry2x32", "philox4x32"]
WORD = st.integers(0, 2**32 - 1)


def tensor_fold_in(k: torch.Tensor, d: int) -> torch.Tensor:
    """The tensor code's fold_in (what compiles and vmaps)."""
    words = threefry._wrap32(torch.tensor(d, dtype=torch.int64))
    return philox.fold_in(k, words) if k.shape[0] == 4 else threefry.fold_in(k, words)


@given(impl=st.sampled_from(IMPLS), words=st.lists(WORD, min_size=4, max_size=4), d=st.integers(-(2**31), 2**32 - 1))
def test_host_fold_in_is_the_tensor_cipher(impl, words, d):
    k = torch.tensor(words[: 4 if impl == "philox4x32" else 2], dtype=torch.int64)
    expected = tensor_fold_in(k, d)
    for data in (d, torch.tensor(d, dtype=torch.int64)):
        got = rr.fold_in(k, data)
        assert got.dtype == expected.dtype == torch.int64
        assert torch.equal(got, expected)


def test_known_answers_of_the_integer_ciphers():
    """Random123's philox4x32-10 and JAX's threefry2x32 known-answer vectors, on Python integers."""
    assert host.philox_block((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), 0xA4093822, 0x299F31D0) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1,
    )  # fmt: skip
    assert host.philox_block((0, 0, 0, 0), 0, 0) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert host.threefry_pair(0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3) == (0xC4923A9C, 0x483DF7A0)
    assert host.threefry_pair(0, 0, 0, 0) == (0x6B200159, 0x99BA4EFE)


@pytest.mark.parametrize("impl", IMPLS)
def test_vmapped_grad_and_compiled_fold_ins_take_the_tensor_path_and_agree(impl):
    keys = torch.stack([rr.key(s, impl=impl) for s in range(5)])
    one_by_one = torch.stack([rr.fold_in(k, 7) for k in keys])
    assert not host.readable(*[torch.empty(0)]) or host.readable(keys)
    assert torch.equal(vmap(lambda k: rr.fold_in(k, 7))(keys), one_by_one)
    assert torch.equal(vmap(lambda k, d: rr.fold_in(k, d))(keys, torch.full((5,), 7)), one_by_one)

    def uses_key(x: torch.Tensor) -> torch.Tensor:
        seen.append(host.readable(x))
        return x.sum() * rr.fold_in(keys[0], 7).double().sum()

    seen: list[bool] = []
    grad(uses_key)(torch.ones(2, dtype=torch.float64))
    assert seen == [False]  # inside a transform: a wrapped tensor is never read
    compiled = torch.compile(lambda k: rr.fold_in(k, 7), backend="eager", fullgraph=True)
    assert torch.equal(compiled(keys[1]), one_by_one[1])


def test_only_plain_cpu_tensors_are_readable():
    assert host.readable(torch.zeros(2, dtype=torch.int64))
    assert not host.readable(torch.zeros(2, device="meta"))
    seen = []
    vmap(lambda k: seen.append(host.readable(k)) or k)(torch.zeros(3, 2, dtype=torch.int64))
    assert seen == [False]


@pytest.mark.parametrize("impl", IMPLS)
def test_make_fx_traces_the_cipher_not_a_constant(impl):
    """Under make_fx's dispatch mode the key's value is not read: the traced graph serves any key."""
    from torch.fx.experimental.proxy_tensor import make_fx

    graph = make_fx(lambda k: rr.fold_in(k, 3))(rr.key(0, impl=impl))
    for seed in (1, 2):
        k = rr.key(seed, impl=impl)
        assert torch.equal(graph(k), rr.fold_in(k, 3))
