"""Keyed randomness: threefry2x32 vs philox4x32 keys vs torch.rand, eager and compiled; and a sweep epoch.

Dropout masks come from ``regfn.random.bernoulli`` (``uniform < keep``); this
times the draws for each key implementation side by side, in one process.
Prints one JSON line per (size, implementation, mode):

    taskset -c 0 python benchmarks/random_uniform.py --device cpu --threads 1 --sizes 1e4,3e5,1e6
    python benchmarks/random_uniform.py --device cuda --sizes 1e6,1e8

``masks_per_s`` is mask elements (``bernoulli(key, 0.75, (n,))``) per second;
``ratio`` is regfn's uniform time over eager ``torch.rand``'s for the same size
(below 1: regfn faster). Eager threefry runs ~130 separate integer ops, so eager
timings on CPU are skipped above ``--eager-max`` elements.

``--sweep-epochs E`` also times an eager ``regfn.sweep`` (``compile=False``) of
the digits MLP 64-256-128-10 with dropout 0.25 after both hidden layers, Adam
lr 1e-3, mini-batches of 128, K = 4 l2 x 8 seeds (the workload of issue #22),
for each implementation, alternating, best of ``--repeats``; it needs
scikit-learn (``regfn[digits]``).
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import torch

import regfn
import regfn.random as rr


def timed(fn, device: str, repeats: int) -> float:
    """Best wall time of ``repeats`` calls, after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def draws(args: argparse.Namespace, name: str) -> None:
    device = args.device
    for n in (int(float(s)) for s in args.sizes.split(",")):
        rand_s = timed(functools.partial(torch.rand, n, device=device), device, args.repeats)
        for impl in args.impls.split(","):
            key = rr.fold_in(rr.key(0, impl=impl, device=device), 1)
            compiled = torch.compile(functools.partial(rr.uniform, shape=(n,)))
            compiled_mask = torch.compile(functools.partial(rr.bernoulli, p=0.75, shape=(n,)))
            t = time.perf_counter()
            compiled(key)
            compile_s = time.perf_counter() - t
            rows = [("compiled", compiled, compiled_mask)]
            if device.startswith("cuda") or n <= args.eager_max:
                eager = functools.partial(rr.uniform, shape=(n,))
                rows.insert(0, ("eager", eager, functools.partial(rr.bernoulli, p=0.75, shape=(n,))))
            for mode, uniform, mask in rows:
                ours = timed(functools.partial(uniform, key), device, args.repeats)
                mask_s = timed(functools.partial(mask, key), device, args.repeats)
                row = {"n": n, "impl": impl, "mode": mode, "device": name, "regfn_s": round(ours, 6)}
                row.update({"mask_s": round(mask_s, 6), "masks_per_s": round(n / mask_s)})
                row.update({"torch_rand_s": round(rand_s, 6), "ratio": round(ours / rand_s, 2)})
                row.update({"compile_s": round(compile_s, 2) if mode == "compiled" else None})
                print(json.dumps({**row, "torch": torch.__version__}), flush=True)


def sweep_epochs(args: argparse.Namespace, name: str) -> None:
    data = regfn.data.digits(flat=True)
    model = regfn.mlp((64, 256, 128, 10), output="logits")
    configs = regfn.grid(l2=[0.0, 1e-5, 1e-4, 1e-3], p=[0.25], seed=range(8))
    best = {impl: float("inf") for impl in args.impls.split(",")}
    for _ in range(args.repeats):
        for impl in best:
            t = time.perf_counter()
            regfn.sweep(
                model,
                data,
                [{**c, "lr": 1e-3} for c in configs],
                loss="cross_entropy",
                optimizer="adam",
                epochs=args.sweep_epochs,
                batch_size=128,
                compile=False,
                threads=None,
                chunk_size=None,
                quiet=True,
                key_impl=impl,
            )
            best[impl] = min(best[impl], time.perf_counter() - t)
    for impl, seconds in best.items():
        row = {"workload": "digits MLP 64-256-128-10 sweep, eager", "impl": impl, "K": len(configs)}
        row.update({"epochs": args.sweep_epochs, "seconds": round(seconds, 3), "device": name})
        print(json.dumps({**row, "per_epoch_s": round(seconds / args.sweep_epochs, 3)}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="1e6,1e8")
    parser.add_argument("--impls", default=",".join(rr.IMPLS), help="key implementations, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's setting)")
    parser.add_argument("--eager-max", type=float, default=1e7, help="largest size timed eagerly on CPU")
    parser.add_argument("--sweep-epochs", type=int, default=0, help="also time an eager digits sweep of E epochs")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    if args.sizes:
        draws(args, name)
    if args.sweep_epochs:
        sweep_epochs(args, name)


if __name__ == "__main__":
    main()
