"""The digits MLP step's 8 batched matmuls alone: torch.bmm against JAX's batched dot (issue #22).

A compiled step of the speed issue's digits MLP (64-256-128-10, K = 32,
batches of 128) spends about 40% of its time in ``aten::bmm``
(``profile_epoch.py --kernel-profile``). This times the same 8 products
outside the step, one thread, to tell the matmul kernels apart from how the
step calls them: ``torch`` (contiguous inputs, reused: hot in cache),
``torch_transposed`` (the right operand a transposed view, as a vmapped
``linear``'s weight), ``torch_rotating`` (8 copies of the inputs in turn, so
they are not hot in cache) and ``jax`` (``jit(einsum)``, when jax is importable).
One JSON line, milliseconds for all 8 products.

    taskset -c 0 python benchmarks/bmm_shapes.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch

K, B = 32, 128
SHAPES = [  # (left, right) of the forward, weight-gradient and input-gradient products
    ((K, B, 64), (K, 64, 256)),
    ((K, B, 256), (K, 256, 128)),
    ((K, B, 128), (K, 128, 10)),
    ((K, 256, B), (K, B, 64)),
    ((K, 128, B), (K, B, 256)),
    ((K, 10, B), (K, B, 128)),
    ((K, B, 10), (K, 10, 128)),
    ((K, B, 128), (K, 128, 256)),
]


def per_call_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def rotating(left: tuple[int, ...], right: tuple[int, ...]) -> Callable[[], torch.Tensor]:
    pairs = [(torch.randn(left), torch.randn(right)) for _ in range(8)]
    turn = [0]

    def call() -> torch.Tensor:
        turn[0] = (turn[0] + 1) % len(pairs)
        return torch.bmm(*pairs[turn[0]])

    return call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args(argv)
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    torch.set_num_threads(1)
    totals = {"torch": 0.0, "torch_transposed": 0.0, "torch_rotating": 0.0}
    jax_total: float | None = None
    if not args.no_jax:
        try:
            import jax
            import jax.numpy as jnp

            product = jax.jit(lambda a, b: jnp.einsum("kij,kjl->kil", a, b))
            jax_total = 0.0
        except ImportError:
            pass
    for left, right in SHAPES:
        a, b = torch.randn(left), torch.randn(right)
        b_view = torch.randn(right[0], right[2], right[1]).transpose(1, 2)
        totals["torch"] += per_call_ms(lambda a=a, b=b: torch.bmm(a, b), args.repeats)
        totals["torch_transposed"] += per_call_ms(lambda a=a, b=b_view: torch.bmm(a, b), args.repeats)
        totals["torch_rotating"] += per_call_ms(rotating(left, right), args.repeats)
        if jax_total is not None:
            ja, jb = jnp.asarray(a.numpy()), jnp.asarray(b.numpy())
            jax_total += per_call_ms(lambda ja=ja, jb=jb: product(ja, jb).block_until_ready(), args.repeats)
    line = {name: round(ms, 2) for name, ms in totals.items()}
    line["jax"] = None if jax_total is None else round(jax_total, 2)
    print(json.dumps({"products": len(SHAPES), "K": K, "batch": B, "ms": line, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
