"""The C kernel of eager CPU draws (regfn.random._native) gives the tensor ciphers' words, bit for bit.

Every case compares the kernel's words with the tensor code's (which the JAX golden vectors, Random123's known
answers and Triton's ``tl.randint`` pin down in test_random*.py): alone, at counters that cross a 2**32
boundary, under ``vmap`` (nested) and ``grad``, in traces; and checks where the kernel is not used (traces made
before it was loaded, CUDA, ``REGFN_NATIVE=0``, no compiler).
"""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

import regfn.random as rr

native = importlib.import_module("regfn.random._native")
sample = importlib.import_module("regfn.random._sample")
threefry = importlib.import_module("regfn.random._threefry")
philox = importlib.import_module("regfn.random._philox")

IMPLS = ["threefry2x32", "philox4x32"]
ROOT = pathlib.Path(__file__).resolve().parents[1]

needs_kernel = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")


def tensor_words(k: torch.Tensor, n: int, start: int = 0) -> torch.Tensor:
    """The tensor cipher's words (low 32 bits, as int64) of key ``k``: what the kernel must give."""
    if k.shape[-1] == 4:
        return philox.words(k, n, start) & 0xFFFFFFFF
    return threefry.bits32(k, n, start).to(torch.int64) & 0xFFFFFFFF


def kernel_words(k: torch.Tensor, n: int, start: int = 0) -> torch.Tensor:
    if k.shape[-1] == 4:
        return torch.ops.regfn.philox_words(philox.key_words(k), n, start) & 0xFFFFFFFF
    return torch.ops.regfn.threefry_bits32(threefry._wrap32(k), n, start).to(torch.int64) & 0xFFFFFFFF


def without_kernel(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(native, "usable", lambda k: False)
        return fn()


@needs_kernel
@settings(max_examples=25, deadline=None)
@given(
    impl=st.sampled_from(IMPLS),
    seed=st.integers(0, 2**63 - 1),
    n=st.integers(0, 3000),
    start=st.sampled_from([0, 4, 2**32 - 8, 2**32, 2**33 + 4, 2**40 - 4]),
)
def test_kernel_words_are_the_tensor_ciphers(impl, seed, n, start):
    k = rr.fold_in(rr.key(seed % 2**32, impl=impl), seed >> 32)
    assert torch.equal(kernel_words(k, n, start), tensor_words(k, n, start))


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_samplers_give_the_same_numbers_with_and_without_the_kernel(impl, monkeypatch):
    k = rr.key(11, impl=impl)
    draws = {
        "bits": lambda: rr.bits(k, (7, 33)),
        "uniform": lambda: rr.uniform(k, (5000,)),
        "uniform16": lambda: rr.uniform(k, (129,), dtype=torch.bfloat16),
        "bernoulli": lambda: rr.bernoulli(k, 0.3, (64, 17)),
        "normal": lambda: rr.normal(k, (1001,)),
        "permutation": lambda: rr.permutation(k, 300),
    }
    for name, draw in draws.items():
        assert torch.equal(draw(), without_kernel(monkeypatch, draw)), name


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_vmapped_and_nested_draws_equal_the_loop(impl):
    keys = rr.split(rr.key(3, impl=impl), 6)
    once = vmap(lambda k: rr.bernoulli(k, 0.6, (40, 9)))(keys)
    assert torch.equal(once, torch.stack([rr.bernoulli(k, 0.6, (40, 9)) for k in keys]))
    grid = keys.reshape(2, 3, -1)
    nested = vmap(vmap(lambda k: rr.uniform(k, (70,))))(grid)
    assert torch.equal(nested, torch.stack([torch.stack([rr.uniform(k, (70,)) for k in row]) for row in grid]))
    moved = vmap(lambda k: rr.bits(k, (5,)), in_dims=1)(keys.T.contiguous())
    assert torch.equal(moved, torch.stack([rr.bits(k, (5,)) for k in keys]))


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_vmapped_splits_folds_and_float64_draws_equal_the_tensor_code(impl, monkeypatch):
    keys = rr.split(rr.key(9, impl=impl), 5)

    def derive():
        return (
            vmap(lambda k: rr.split(k, 3))(keys),
            vmap(lambda k: rr.fold_in(k, 2**32 - 1))(keys),
            vmap(lambda k: rr.fold_in(k, -7))(keys),
            vmap(lambda k: rr.fold_in(k, torch.tensor(2**32 + 5)))(keys),  # a plain counter beside vmapped keys
            vmap(rr.fold_in)(keys, torch.arange(-2, 3)),  # a vmapped counter: the tensor cipher either way
            vmap(lambda k: rr.uniform(k, (9,), dtype=torch.float64))(keys),
            rr.uniform(keys[0], (11,), dtype=torch.float64),
        )

    for got, want in zip(derive(), without_kernel(monkeypatch, derive), strict=True):
        assert torch.equal(got, want)
    folded = vmap(lambda k: rr.fold_in(k, 6))(keys)
    assert torch.equal(folded[2], rr.fold_in(keys[2], 6))  # the host path's words
    assert torch.equal(vmap(lambda k: rr.fold_in(k, torch.tensor(6)))(keys), folded)
    assert torch.equal(vmap(lambda k: rr.fold_in(k, torch.tensor(-7)))(keys), vmap(lambda k: rr.fold_in(k, -7))(keys))
    assert torch.equal(folded, vmap(lambda k: rr.split(k, 7)[6])(keys))


@needs_kernel
def test_a_vmapped_gradient_through_dropout_equals_the_loop():
    w = torch.linspace(-1, 1, 12)

    def loss(w, k):
        keep = rr.bernoulli(k, 0.5, (12,))
        return (torch.where(keep, w / 0.5, 0.0) ** 2).sum()

    keys = rr.split(rr.key(5), 4)
    batched = vmap(grad(loss), in_dims=(None, 0))(w, keys)
    assert torch.equal(batched, torch.stack([grad(loss)(w, k) for k in keys]))


def regfn_ops(fn, *args) -> set[str]:
    from torch.fx.experimental.proxy_tensor import make_fx

    graph = make_fx(fn)(*args).graph
    return {str(node.target) for node in graph.nodes if node.op == "call_function" and "regfn." in str(node.target)}


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_traces_call_the_kernel_once_loaded_and_the_tensor_cipher_before(impl, monkeypatch):
    k = rr.key(4, impl=impl)
    rr.bits(k, (2,))  # an eager draw loads the kernel
    expected = {"regfn.philox_words.default"} if impl == "philox4x32" else {"regfn.threefry_bits32.default"}
    assert regfn_ops(lambda k: rr.bits(k, (8,)), k) == expected
    compiled = torch.compile(lambda k: rr.uniform(k, (9,)), backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(k), rr.uniform(k, (9,)))
    monkeypatch.setattr(native, "_LOADED", False)  # a trace before any eager draw: nothing is built inside it
    assert regfn_ops(lambda k: rr.bits(k, (8,)), k) == set()
    assert not native._LOADED


def test_cuda_and_meta_keys_never_use_the_kernel():
    assert not native.usable(rr.key(0).to("meta"))
    assert not native.usable(rr.key(0, impl="philox4x32").to("meta"))


@needs_kernel
def test_the_operators_have_fake_shapes_for_tracers():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        kw = torch.zeros(3, 2, dtype=torch.int32)
        out = torch.ops.regfn.threefry_bits32(kw, 10, 0)
        assert out.shape == (3, 10)
        assert out.dtype == torch.int32
        out = torch.ops.regfn.philox_words(torch.zeros(4, dtype=torch.int64), 6, 0)
        assert out.shape == (6,)
        assert out.dtype == torch.int64


def run_fresh(env: dict[str, str]) -> list[str]:
    code = (
        "import regfn.random as rr, regfn.random._native as n; "
        "print(n.status()); print(rr.bits(rr.key(0), (3,)).tolist())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.split("\n")[:2]


def test_without_a_compiler_or_when_turned_off_the_tensor_cipher_draws(tmp_path):
    golden = "[4070199207, 4202968722, 1427181096]"  # jax.random.bits(PRNGKey(0), (3,))
    assert run_fresh({"REGFN_NATIVE": "0"}) == ["off: REGFN_NATIVE=0", golden]
    broken = run_fresh({"CC": "false", "REGFN_CACHE_DIR": str(tmp_path)})
    if broken[0].startswith("off: torch.library"):
        pytest.skip(broken[0])
    assert broken == ["off: no C compiler built the kernel", golden]
    assert not list(tmp_path.glob("*.so"))


@needs_kernel
def test_the_kernel_is_built_once_into_the_cache(tmp_path):
    golden = "[4070199207, 4202968722, 1427181096]"
    assert run_fresh({"REGFN_CACHE_DIR": str(tmp_path)}) == ["on", golden]
    built = list(tmp_path.glob("random_kernel_*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert run_fresh({"REGFN_CACHE_DIR": str(tmp_path)}) == ["on", golden]
    assert built[0].stat().st_mtime_ns == stamp
    assert list(tmp_path.glob("*")) == built


def tensor_fold(k: torch.Tensor, d: int) -> torch.Tensor:
    """The tensor cipher's ``fold_in(k, d)`` (what the kernel's fold operators must give)."""
    data = threefry._wrap32(torch.tensor(d))
    return philox.fold_in(k, data) if k.shape[-1] == 4 else threefry.fold_in(k, data)


GRAPHS: list[torch.fx.GraphModule] = []


def _capture(gm: torch.fx.GraphModule, example_inputs: list) -> object:
    GRAPHS.append(gm)
    return gm.forward


# compiled once (hypothesis's examples reuse them: a new function per example would hit dynamo's recompile limit)
FOLD_ONE = torch.compile(lambda k, d: rr.fold_in(k, d), backend=_capture, dynamic=False)
FOLD_OVER_KEYS = torch.compile(vmap(lambda k, d: rr.fold_in(k, d), in_dims=(0, None)), backend=_capture, dynamic=False)
FOLD_OVER_BOTH = torch.compile(vmap(lambda k, d: rr.fold_in(k, d)), backend=_capture, dynamic=False)


@needs_kernel
@settings(max_examples=20, deadline=None)
@given(
    impl=st.sampled_from(IMPLS),
    seed=st.integers(0, 2**31 - 1),
    fold=st.integers(0, 2**32 - 1),
    data=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3),
)
def test_a_fold_with_a_tensor_counter_is_one_operator_call_with_the_cipher_words(impl, seed, fold, data):
    """Traced, ``fold_in(key, tensor)`` (a compiled step's epoch and batch) calls ``regfn::<impl>_fold`` instead
    of tracing the cipher's rounds, and gives its words: alone, over vmapped keys, over vmapped counters."""
    rr.uniform(rr.key(0), (2,))  # an eager draw loads the kernel, as a sweep's initial weights do
    k = rr.fold_in(rr.key(seed, impl=impl), fold)
    keys = torch.stack([rr.fold_in(k, i) for i in range(3)])
    d = torch.tensor(data)
    assert torch.equal(FOLD_ONE(k, d[0]), tensor_fold(k, data[0]))
    assert torch.equal(FOLD_OVER_KEYS(keys, d[1]), torch.stack([tensor_fold(kk, data[1]) for kk in keys]))
    want = torch.stack([tensor_fold(kk, x) for kk, x in zip(keys, data, strict=True)])
    assert torch.equal(FOLD_OVER_BOTH(keys, d), want)
    name = "philox_fold" if impl == "philox4x32" else "threefry_fold"
    called = [str(node.target) for g in GRAPHS for node in g.graph.nodes if node.op == "call_function"]
    assert any(name in target for target in called)
    assert not any("xor" in target for target in called)  # no cipher rounds traced
