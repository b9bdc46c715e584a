"""regfn._unbatch.unbatched: a function of plain tensors under (nested) vmap equals the same computation vmapped."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from regfn._unbatch import peelable, unbatched


def plain_product(x, w, dims):
    """What the kernel side sees: plain tensors with the batch dimensions in front (``w`` one value per batch)."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    assert not wrapped(x)
    assert not wrapped(w)
    assert w.shape == x.shape[:dims]
    return x * w.reshape(*w.shape, *[1] * (x.ndim - dims)), x.reshape(*x.shape[:dims], -1).sum(-1)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), shape=st.sampled_from([(), (3,), (2, 5)]), data=st.data()
)
def test_nested_vmap_equals_the_plain_computation(sizes, shape, data):
    """At each level x is batched at a random dimension (or not at all), w at dimension 0."""
    physical, dims = list(shape), []
    for size in reversed(sizes):  # innermost level first: where its batch dimension sits in the level's input
        dim = data.draw(st.one_of(st.none(), st.integers(0, len(physical))))
        if dim is not None:
            physical.insert(dim, size)
        dims.insert(0, dim)
    gen = torch.Generator().manual_seed(len(physical))
    x, w = torch.randn(physical, generator=gen), torch.randn(sizes, generator=gen)

    def fn(x, w):
        return unbatched(plain_product, (x, w))

    def ref(x, w):
        return x * w, x.sum()

    for dim in reversed(dims):
        fn, ref = vmap(fn, in_dims=(dim, 0)), vmap(ref, in_dims=(dim, 0))
    for a, b in zip(fn(x, w), ref(x, w), strict=True):
        torch.testing.assert_close(a, b)


def test_plain_arguments_and_passthrough_values():
    x = torch.arange(4.0)
    assert torch.equal(unbatched(lambda t, k, dims: t * k + dims, (x, 3)), x * 3)
    got = vmap(lambda r: unbatched(lambda t, k, dims: t * k + dims, (r, 2)))(x.reshape(2, 2))
    assert torch.equal(got, x.reshape(2, 2) * 2 + 1)


def test_peelable_refuses_other_transforms():
    x = torch.randn(3)
    assert peelable(x)
    assert not peelable(3.0)
    seen = []
    vmap(lambda r: seen.append(peelable(r)) or r)(x)
    grad(lambda r: seen.append(peelable(r)) or r.sum())(x)
    assert seen == [True, False]


def test_integers_inside_grad_levels_are_taken_apart_and_lifted_back():
    """Under vmap(grad(...)) an integer tensor's grad wrapper is dropped, the result lifted back (so that the
    differentiated function may update it in place); a grad level below a vmap level is refused (None)."""
    from regfn._unbatch import unbatched_under_grad

    ints = torch.arange(12).reshape(3, 4)
    seen = []

    def f(x, k):
        words = k * 2  # computed inside grad: wrapped at its level
        got = unbatched_under_grad(lambda w, dims: w + 100 * dims, (words,))
        got += 1  # in place: the result belongs to the grad level again
        seen.append(got)
        return (x * got.float()).sum()

    gx = vmap(grad(f))(torch.ones(3, 4), ints)
    assert torch.equal(gx, ints * 2 + 100 + 1)
    assert torch.equal(unbatched_under_grad(lambda w, dims: w * 3, (ints,)), ints * 3)  # no transform at all

    refused = []

    def outer(x):
        def per_row(k):
            refused.append(unbatched_under_grad(lambda w, d: w, (k * 1,)))
            return k

        vmap(per_row)(ints)
        return x.sum()

    grad(outer)(torch.ones(2))
    assert refused == [None]  # the grad level lies below the vmap level: left to the caller's fallback
