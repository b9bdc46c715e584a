"""regfn.random's philox4x32 keys against Random123's known answers and Triton's tl.randint; their properties."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import CUDA
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap

import regfn
import regfn.random as rr
from regfn.random import _philox

MASK = 0xFFFFFFFF

# Random123's known answers for philox4x32 with 10 rounds: tests/kat_vectors of
# https://github.com/DEShawResearch/random123 (the three "philox4x32 10" lines;
# columns: counter[4], key[2], expected[4]).
RANDOM123_KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]  # fmt: skip

SEEDS = st.integers(-(2**63), 2**63 - 1)
philox_keys = st.builds(lambda s, d: rr.fold_in(rr.key(s, impl="philox4x32"), d), SEEDS, st.integers(0, 2**32 - 1))


def pkey(seed: int) -> torch.Tensor:
    return rr.key(seed, impl="philox4x32")


# ----------------------------------------------------------------- known answers


@pytest.mark.parametrize(("counter", "cipher_key", "expected"), RANDOM123_KAT)
def test_philox_matches_random123(counter, cipher_key, expected):
    assert rr.philox4x32(torch.tensor(cipher_key), torch.tensor(counter)).tolist() == list(expected)
    # the same block through a key: cipher key (k0, k1), stream (c2, c3), block index c0 + 2**32 c1
    k = torch.tensor([*cipher_key, counter[2], counter[3]])
    if counter[1] == 0:
        assert rr.fold_in(k, counter[0]).tolist() == list(expected)
    if counter[:2] == (0, 0):
        assert rr.split(k, 1)[0].tolist() == rr.bits(k, (1, 4))[0].tolist() == list(expected)


def test_key_words_are_the_seed_halves_and_a_zero_stream():
    assert pkey(0).tolist() == [0, 0, 0, 0]
    assert pkey(2**32 + 7).tolist() == [7, 1, 0, 0]
    assert pkey(-1).tolist() == [MASK, MASK, 0, 0]  # the seed as Triton's uint64
    assert rr.key_impl(pkey(0)) == "philox4x32"
    assert rr.key_impl(rr.key(0)) == "threefry2x32"
    seeds = torch.tensor([0, 5, -3, 2**40 + 1])
    assert torch.equal(rr.key(seeds, impl="philox4x32"), torch.stack([pkey(int(s)) for s in seeds]))
    assert torch.equal(vmap(lambda s: rr.key(s, impl="philox4x32"))(seeds), rr.key(seeds, impl="philox4x32"))
    # the first block of key(0) is Random123's all-zero answer
    assert rr.bits(pkey(0), (4,)).tolist() == list(RANDOM123_KAT[0][2])


# ----------------------------------------------------------------- Triton


def _triton_or_skip():
    triton = pytest.importorskip("triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no CUDA, and Triton's interpreter was not switched on before triton was imported")
    return triton


def _signed64(v: int) -> int:
    return v - 2**64 if v >= 2**63 else v


@pytest.mark.parametrize("seed", [0, 42, 2**31 + 5, 2**32 + 7, -(2**40) - 3, 2**63 - 1])
def test_words_equal_triton_randint(seed):
    """tl.randint(seed, j) is word 4 j, tl.randint4x(seed, j) is block j, and tl.philox draws any key's blocks."""
    triton = _triton_or_skip()
    import triton.language as tl

    @triton.jit
    def draw(seed, child_seed, stream_ptr, one_ptr, four_ptr, child_ptr, N: tl.constexpr):
        j = tl.arange(0, N)
        tl.store(one_ptr + j, tl.randint(seed, j))
        a, b, c, d = tl.randint4x(seed, j)
        tl.store(four_ptr + 4 * j, a)
        tl.store(four_ptr + 4 * j + 1, b)
        tl.store(four_ptr + 4 * j + 2, c)
        tl.store(four_ptr + 4 * j + 3, d)
        s0 = tl.load(stream_ptr + j * 0)
        s1 = tl.load(stream_ptr + 1 + j * 0)
        e, f, g, h = tl.philox(child_seed, j, j * 0, s0, s1)
        tl.store(child_ptr + 4 * j, e.to(tl.int32, bitcast=True))
        tl.store(child_ptr + 4 * j + 1, f.to(tl.int32, bitcast=True))
        tl.store(child_ptr + 4 * j + 2, g.to(tl.int32, bitcast=True))
        tl.store(child_ptr + 4 * j + 3, h.to(tl.int32, bitcast=True))

    n = 64
    device = "cuda" if torch.cuda.is_available() else "cpu"
    child = rr.split(pkey(seed), 3)[2]  # a derived key: all four words nonzero
    k0, k1, s0, s1 = child.tolist()
    one = torch.empty(n, dtype=torch.int32, device=device)
    four = torch.empty(4 * n, dtype=torch.int32, device=device)
    drawn = torch.empty(4 * n, dtype=torch.int32, device=device)
    stream = rr._wrap32(torch.tensor([s0, s1])).to(device)
    draw[(1,)](seed, _signed64(k0 + (k1 << 32)), stream, one, four, drawn, N=n)
    words = rr.bits(pkey(seed), (n, 4))
    assert torch.equal(rr._unsigned(one.cpu()), words[:, 0])
    assert torch.equal(rr._unsigned(four.cpu()).reshape(n, 4), words)
    assert torch.equal(rr._unsigned(drawn.cpu()).reshape(n, 4), rr.bits(child, (n, 4)))


# ----------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(philox_keys, st.integers(0, 40), st.integers(0, 40))
def test_split_fold_in_and_bits_agree_and_streams_have_prefixes(k, n, m):
    keys = rr.split(k, n)
    assert keys.shape == (n, 4)
    assert torch.equal(keys, rr.bits(k, (n, 4)))
    for i in (0, n - 1) if n else ():
        assert torch.equal(keys[i], rr.fold_in(k, i))
    longer = rr.bits(k, (n + m,))
    assert torch.equal(rr.bits(k, (n,)), longer[:n])  # odd sizes cut the last block
    assert bool(((longer >= 0) & (longer <= MASK)).all())
    assert torch.equal(rr.bits(k.to(torch.uint32), (n,)), longer[:n])  # uint32 keys: the same words


@settings(max_examples=30, deadline=None)
@given(philox_keys, st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]), st.integers(0, 33))
def test_floats_follow_jax_rules_over_philox_words(k, dtype, n):
    u = rr.uniform(k, (n,), dtype)
    assert u.dtype == dtype
    assert bool(((u >= 0) & (u < 1)).all())
    w = rr.bits(k, (n,))
    if dtype == torch.float32:
        assert torch.equal(u, (w >> 9).to(torch.float32) * 2.0**-23)
    elif dtype == torch.float16:
        assert torch.equal(u, ((w & 0xFFFF) >> 6).to(torch.float16) * 2.0**-10)
    elif dtype == torch.bfloat16:
        assert torch.equal(u, ((w & 0xFF) >> 1).to(torch.bfloat16) * 2.0**-7)
    else:  # two words per float64: (w[2i] << 20) | (w[2i + 1] >> 12)
        pairs = rr.bits(k, (n, 2))
        assert torch.equal(u, ((pairs[:, 0] << 20) | (pairs[:, 1] >> 12)).to(torch.float64) * 2.0**-52)
    assert torch.equal(rr.bernoulli(k, 0.3, (n,)), rr.uniform(k, (n,)) < 0.3)
    z = rr.normal(k, (n,), dtype)
    assert z.dtype == dtype
    assert bool(torch.isfinite(z).all())


def test_threefry_and_philox_draw_different_words():
    assert not torch.equal(rr.bits(rr.key(3), (8,)), rr.bits(pkey(3), (8,)))
    assert not torch.equal(rr.split(pkey(3), 2)[0], rr.split(pkey(4), 2)[0])


def test_vmap_over_philox_keys_equals_loop():
    keys = rr.split(pkey(1), 5)
    ps = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    for fn in (
        lambda k: rr.uniform(k, (3, 5)),
        lambda k: rr.uniform(k, (3,), torch.float64),
        lambda k: rr.normal(k, (7,)),
        lambda k: rr.bits(k, (6,)),
        lambda k: rr.split(k, 3),
        lambda k: rr.fold_in(k, 9),
        lambda k: rr.permutation(k, 10),
        lambda k: regfn.dropout(k, torch.ones(4, 3), 0.5),
    ):
        assert torch.equal(vmap(fn)(keys), torch.stack([fn(k) for k in keys]))
    fn = lambda k, p: rr.bernoulli(rr.fold_in(k, torch.tensor(2)), p, (65,))
    assert torch.equal(vmap(fn)(keys, ps), torch.stack([fn(k, p) for k, p in zip(keys, ps, strict=True)]))


def test_compiled_equals_eager():
    k = rr.fold_in(pkey(7), 1)
    fn = lambda k, p: (rr.uniform(k, (301, 3)), rr.bernoulli(rr.fold_in(k, 1), p, (50,)), rr.split(k, 3))
    compiled = torch.compile(vmap(fn), fullgraph=True)
    keys, ps = torch.stack([k, pkey(2**40)]), torch.tensor([0.3, 0.6])
    for got, want in zip(compiled(keys, ps), vmap(fn)(keys, ps), strict=True):
        assert torch.equal(got, want)


_FOLD = torch.compile(lambda k, d: rr.fold_in(rr.fold_in(k, d), d + 1), fullgraph=True)
_WORDS = torch.compile(lambda k: _philox.words(k, 12, 8), fullgraph=True)  # the tensor cipher itself


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4), st.integers(0, 2**31 - 1))
def test_the_compiled_tensor_cipher_equals_the_host_for_any_key(words, d):
    """Compiled Philox once gave other words than eager for keys with large words (a folded key):
    int64 products overflowing in inductor's C++ (undefined behaviour there); now no product reaches 2**63."""
    k = torch.tensor(words, dtype=torch.int64)
    want = rr.fold_in(rr.fold_in(k, d), d + 1)  # a plain key and ints: Python integers
    assert torch.equal(_FOLD(k, torch.tensor(d)), want)
    host = torch.stack([rr.fold_in(k, j) for j in (2, 3, 4)]).reshape(-1)  # split(k, n)[j] is block j: words 8..19
    assert torch.equal(_WORDS(k) & 0xFFFFFFFF, host)


@pytest.mark.slow
def test_a_compiled_philox_sweep_equals_the_eager_one():
    data = regfn.data.quadrants(rr.key(0), 96)
    configs = regfn.grid(p=[0.0, 0.3], seed=[0, 1])
    kw = {"epochs": 3, "batch_size": 32, "quiet": True, "threads": 1, "key_impl": "philox4x32", "log_every": 1}
    model = regfn.mlp((2, 7, 5, 1), output="logits")
    compiled = regfn.sweep(model, data, configs, compile=True, **kw)
    eager = regfn.sweep(model, data, configs, compile=False, **kw)
    torch.testing.assert_close(compiled.curves["loss"], eager.curves["loss"], rtol=1e-5, atol=1e-6)


def test_models_train_with_philox_keys():
    data = regfn.data.quadrants(rr.key(0), 32)
    model = regfn.mlp((2, 6, 1), output="logits")
    params = model.init(pkey(0))
    assert params["fc1.weight"].shape == (6, 2)
    a = regfn.train(model, data, optimizer=regfn.optim.sgd(0.1), p=0.5, key=pkey(1), epochs=3, batch_size=8)
    b = regfn.train(model, data, optimizer=regfn.optim.sgd(0.1), p=0.5, key=pkey(1), epochs=3, batch_size=8)
    c = regfn.train(model, data, optimizer=regfn.optim.sgd(0.1), p=0.5, key=rr.key(1), epochs=3, batch_size=8)
    assert a.metrics == b.metrics
    assert a.metrics != c.metrics


@CUDA
def test_cuda_equals_cpu():
    for seed in (0, 2**40 + 3):
        k, kc = pkey(seed), rr.key(seed, impl="philox4x32", device="cuda")
        for shape in ((), (5,), (513, 7)):
            assert torch.equal(rr.bits(kc, shape).cpu(), rr.bits(k, shape))
            assert torch.equal(rr.uniform(kc, shape).cpu(), rr.uniform(k, shape))
            assert torch.equal(rr.bernoulli(kc, 0.3, shape).cpu(), rr.bernoulli(k, 0.3, shape))
        assert torch.equal(rr.split(kc, 3).cpu(), rr.split(k, 3))
        assert torch.equal(rr.fold_in(kc, 5).cpu(), rr.fold_in(k, 5))
        compiled = torch.compile(lambda k: rr.uniform(k, (4096,)))
        assert torch.equal(compiled(kc).cpu(), rr.uniform(k, (4096,)))


BAD = [
    ("unknown impl", lambda: rr.key(0, impl="rbg"), ValueError, "impl must be one of"),
    ("key of 3 words", lambda: rr.bits(torch.zeros(3, dtype=torch.int64), (2,)), ValueError, "shape (2,)"),
    ("batched philox keys", lambda: rr.uniform(rr.split(pkey(0)), (2,)), ValueError, "vmap"),
    ("philox key to threefry2x32", lambda: rr.threefry2x32(pkey(0), torch.tensor([1, 2])), ValueError, "(2,)"),
    ("counter of 3 words", lambda: rr.philox4x32(torch.tensor([0, 0]), torch.zeros(3)), TypeError, "integer"),
    ("counter shape", lambda: rr.philox4x32(torch.tensor([0, 0]), torch.tensor([1, 2, 3])), ValueError, "(..., 4)"),
]


@pytest.mark.parametrize(("name", "call", "error", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises(name, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call()
