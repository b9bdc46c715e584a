"""Cold compile vs a second process that finds inductor's cache warm (issue #22, target 3).

The workload is the speed issue's digits MLP (64-256-128-10, dropout after both
hidden layers, Adam, mini-batches of 128, K = 4 l2 x 4 p x 2 seeds = 32), one
epoch, ``compile=True``. The script starts a fresh Python process twice with
the same, initially empty ``TORCHINDUCTOR_CACHE_DIR``: the first compiles cold,
the second finds the FX-graph and AOTAutograd caches warm. Each child prints
its import time, the sweep's wall time and its ``timings``; the parent prints
one JSON line with both. ``--precompile`` also sets ``TORCH_CACHING_PRECOMPILE=1``
(torch's experimental cache of dynamo's own output), ``--no-compile`` runs
eagerly (a smoke test of the plumbing).

    taskset -c 0 python benchmarks/second_process.py
    taskset -c 0 python benchmarks/second_process.py --precompile
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
start = time.perf_counter()
import torch
import regfn
torch.set_num_threads(1)
imported = time.perf_counter()
digits = regfn.data.digits()
data = regfn.data.Dataset(digits.x.flatten(1), digits.y)
configs = regfn.grid(l2=[0.0, 1e-4, 1e-3, 1e-2], p=[0.0, 0.1, 0.25, 0.5], seed=[0, 1])
result = regfn.sweep(regfn.mlp((64, 256, 128, 10)), data, configs, optimizer="adam", epochs=1, batch_size=128,
                     compile=COMPILE, threads=1, quiet=True)
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "sweep_s": done - imported, **result.timings}))
"""


def run_child(compile_: bool, env: dict[str, str]) -> dict[str, float]:
    """One fresh process; its JSON line."""
    code = CHILD.replace("COMPILE", str(compile_))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precompile", action="store_true", help="also set TORCH_CACHING_PRECOMPILE=1")
    parser.add_argument("--no-compile", action="store_true", help="eager (a smoke test)")
    args = parser.parse_args(argv)
    root = pathlib.Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(root)}
        if args.precompile:
            env["TORCH_CACHING_PRECOMPILE"] = "1"
        cold = run_child(not args.no_compile, env)
        warm = run_child(not args.no_compile, env)
    line = {"precompile": args.precompile, "compile": not args.no_compile, "cold": cold, "warm": warm}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
