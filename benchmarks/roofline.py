"""How fast could any sweep of the wider MLPs be on this machine? The matmuls alone, against the torch loop (issue #22).

A training step of an MLP needs, per linear layer of a batch of ``b`` rows,
three matrix products: the forward ``x @ W``, the weight gradient
``g.T @ x`` and (for every layer but the first) the input gradient
``g @ W.T``. Whatever fuses the rest away (inductor, XLA, a hand-written
kernel), a sweep of K configurations still does these products, and on one
CPU core their time is a floor under any implementation that calls the same
matmul library: a loop over configurations (``torch.mm``, one configuration's
shapes) or one vmapped program (``torch.bmm`` over K).

This script times exactly those products for ``sweep_mlp.py``'s two
workloads (the same sizes, batch size, training rows and validation rows, E
epochs) and, side by side in the same process, the plain torch loop of
``sweep_mlp.py`` (``sweep_cnn.time_seq``). The ratio ``loop_s / bmm_floor_s``
is the most any vmapped implementation can be faster than the loop while its
matmuls run at torch's speed; issue #22's target 1 asks for 4x.

    taskset -c 0 python benchmarks/roofline.py --workload digits --K 32 --epochs 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_cnn
import sweep_mlp

import regfn


def shapes(sizes: tuple[int, ...], rows: int, backward: bool) -> list[tuple[int, int, int]]:
    """``(m, k, n)`` of each ``(m x k) @ (k x n)`` product of one step (``backward``) or one forward."""
    out = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        out.append((rows, fan_in, fan_out))  # x @ W
        if backward:
            out.append((fan_out, rows, fan_in))  # the weight gradient g.T @ x
            if i > 0:
                out.append((rows, fan_out, fan_in))  # the input gradient g @ W.T
    return out


def products(sizes: tuple[int, ...], rows: int, k: int | None, backward: bool) -> list[tuple[torch.Tensor, ...]]:
    """Operand pairs of :func:`shapes`' products; ``k`` None: unbatched, else K configurations each."""
    lead = () if k is None else (k,)
    return [(torch.randn(*lead, m, kk), torch.randn(*lead, kk, n)) for m, kk, n in shapes(sizes, rows, backward)]


def seconds_per_call(fn: Callable[[], object], min_s: float = 0.3) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_s:
        fn()
        calls += 1
    return elapsed / calls


def matmul_seconds(sizes, rows: int, k: int, batched: bool, backward: bool) -> float:
    """Seconds for one step's (or forward's) products of all K configurations: one bmm each, or K mms each."""
    pairs = products(sizes, rows, k if batched else None, backward)
    matmul = torch.bmm if batched else torch.mm
    seconds = seconds_per_call(lambda: [matmul(a, b) for a, b in pairs])
    return seconds if batched else seconds * k


def flops(sizes, rows: int, backward: bool) -> int:
    return sum(2 * m * kk * n for m, kk, n in shapes(sizes, rows, backward))


def floor(sizes, batch: int, n_train: int, n_val: int, k: int, epochs: int, batched: bool) -> float:
    full, rest = divmod(n_train, batch)
    per_epoch = full * matmul_seconds(sizes, batch, k, batched, True)
    if rest:
        per_epoch += matmul_seconds(sizes, rest, k, batched, True)
    per_epoch += matmul_seconds(sizes, n_val, k, batched, False)
    return per_epoch * epochs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits", choices=sorted(sweep_mlp.WORKLOADS))
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seq-configs", type=int, default=2, help="configurations of the torch loop to time")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes, batch = sweep_mlp.WORKLOADS[args.workload]
    train, val = sweep_mlp.load_data(args.workload)
    n_train, n_val, k, epochs = len(train), len(val), args.K, args.epochs
    bmm_s = floor(sizes, batch, n_train, n_val, k, epochs, batched=True)
    mm_s = floor(sizes, batch, n_train, n_val, k, epochs, batched=False)
    model = regfn.mlp(sizes, output="logits")
    cfgs = sweep_cnn.configs(k)
    loop_s = k * sweep_cnn.time_seq(
        model, train, cfgs, epochs, args.seq_configs, make_net=lambda p: sweep_mlp.MLP(sizes, p), batch_size=batch
    )
    work = epochs * k * (flops(sizes, n_train, True) + flops(sizes, n_val, False))
    big = torch.randn(1024, 1024)
    peak_s = seconds_per_call(lambda: torch.mm(big, big))
    print(
        json.dumps(
            {
                "workload": f"{args.workload}: MLP {'-'.join(map(str, sizes))}, batches of {batch}",
                "K": k,
                "epochs": epochs,
                "device": "cpu (1 thread)",
                "gflop": round(work / 1e9, 1),
                "bmm_floor_s": round(bmm_s, 3),
                "mm_floor_s": round(mm_s, 3),
                "loop_s": round(loop_s, 3),
                "loop_matmul_share": round(mm_s / loop_s, 3),
                "best_loop_vs_vmapped": round(loop_s / bmm_s, 2),
                "bmm_gflops": round(work / bmm_s / 1e9, 1),
                "mm_1024_gflops": round(2 * 1024**3 / peak_s / 1e9, 1),
                "best_loop_vs_any_at_1024_speed": round(loop_s / (work / (2 * 1024**3 / peak_s)), 2),
                "steps_per_epoch": math.ceil(n_train / batch),
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
