"""Keyed uniform (threefry2x32) vs torch.rand, eager and under torch.compile.

Dropout masks come from ``regfn.random.uniform``; this checks that drawing them
does not dominate a training step. Prints one JSON line per (size, mode):

    python benchmarks/random_uniform.py --device cpu --sizes 1e6,1e8
    python benchmarks/random_uniform.py --device cuda --sizes 1e6,1e8

``ratio`` is regfn's time over eager ``torch.rand``'s for the same size (below
1: regfn faster); compiled ``torch.rand`` is listed too. Eager threefry runs ~130 separate integer ops, so eager timings
on CPU are skipped above ``--eager-max`` elements.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import torch

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="1e6,1e8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eager-max", type=float, default=1e7, help="largest size timed eagerly on CPU")
    args = parser.parse_args(argv)
    device = args.device
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    key = rr.key(0, device=device)
    for n in (int(float(s)) for s in args.sizes.split(",")):
        rand_s = timed(functools.partial(torch.rand, n, device=device), device, args.repeats)
        compiled_rand = torch.compile(functools.partial(torch.rand, n, device=device))
        rand_c = timed(compiled_rand, device, args.repeats)
        compiled = torch.compile(functools.partial(rr.uniform, shape=(n,)))
        t = time.perf_counter()
        compiled(key)
        compile_s = time.perf_counter() - t
        rows = [("compiled", timed(functools.partial(compiled, key), device, args.repeats))]
        if device.startswith("cuda") or n <= args.eager_max:
            rows.insert(0, ("eager", timed(functools.partial(rr.uniform, key, (n,)), device, args.repeats)))
        for mode, ours in rows:
            print(
                json.dumps(
                    {
                        "n": n,
                        "mode": mode,
                        "device": name,
                        "regfn_s": round(ours, 6),
                        "torch_rand_s": round(rand_s, 6),
                        "torch_rand_compiled_s": round(rand_c, 6),
                        "ratio": round(ours / rand_s, 2),
                        "compile_s": round(compile_s, 2) if mode == "compiled" else None,
                        "torch": torch.__version__,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
