"""What checkpoints cost: the same sweep with and without ``checkpoint=DIR``, side by side in one process.

Workload: the tutorial's MLP (``regfn.mlp((8, 6, 4, 1), output="logits")``)
on ``regfn.data.synthetic_diabetes(regfn.random.key(0))`` (768 x 8), full
batch, K configurations (l2 x p x seeds), E epochs, eager (``compile=False``:
the same program both ways), saved every N epochs into a fresh directory.
The two runs alternate ``--repeats`` times; one JSON line reports the
median seconds of each, the overhead ratio ``checkpoint / plain - 1``, the
spread (min, max) and the checkpoint files' size.

    python benchmarks/checkpoint.py                       # K=4096, E=300, every 100
    python benchmarks/checkpoint.py --k 256 --epochs 50 --every 10 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import tempfile
import time

import torch

import regfn
from regfn._sweep._checkpoint import Checkpoint

SAVING = [0.0]  # seconds spent in Checkpoint.save_state / save_done (the cost itself, free of the run's noise)


def _timed(method):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            SAVING[0] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4096, help="configurations")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--every", type=int, default=100, help="checkpoint_every")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the sweep's own choice: 'auto')")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = regfn.data.synthetic_diabetes(regfn.random.key(0))
    train, val = regfn.data.train_val_split(regfn.random.key(1), data, 0.2)
    train, val, _ = regfn.data.standardize(train, val)
    model = regfn.mlp((8, 6, 4, 1), output="logits")
    seeds = max(1, args.k // 64)
    configs = regfn.grid(l2=[0.0, *torch.logspace(-5, -1, 15).tolist()], p=[0.0, 0.1, 0.3, 0.5], seed=range(seeds))
    configs = configs[: args.k]
    kw = {
        "val": val,
        "epochs": args.epochs,
        "compile": False,
        "threads": args.threads,
        "quiet": True,
        "device": args.device,
    }
    Checkpoint.save_state = _timed(Checkpoint.save_state)  # type: ignore[method-assign]
    Checkpoint.save_done = _timed(Checkpoint.save_done)  # type: ignore[method-assign]
    regfn.sweep(model, train, configs, **{**kw, "epochs": 2})  # warm-up: allocations, first calls
    times: dict[str, list[float]] = {"plain": [], "checkpoint": []}
    size, saving = 0, []
    for _ in range(args.repeats):
        for name in ("plain", "checkpoint"):
            directory = tempfile.mkdtemp(prefix="regfn-ckpt-bench-")
            extra = {"checkpoint": directory, "checkpoint_every": args.every} if name == "checkpoint" else {}
            t0, SAVING[0] = time.perf_counter(), 0.0
            result = regfn.sweep(model, train, configs, **kw, **extra)
            times[name].append(time.perf_counter() - t0)
            if name == "checkpoint":
                saving.append(SAVING[0] / times[name][-1])
                size = sum(p.stat().st_size for p in pathlib.Path(directory).iterdir())
            shutil.rmtree(directory)
    plain, ckpt = statistics.median(times["plain"]), statistics.median(times["checkpoint"])
    print(
        json.dumps(
            {
                "bench": "checkpoint",
                "device": args.device,
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "threads": args.threads,
                "torch": torch.__version__,
                "k": len(configs),
                "epochs": args.epochs,
                "every": args.every,
                "chunk_size": result.settings["chunk_size"],
                "plain_s": round(plain, 3),
                "checkpoint_s": round(ckpt, 3),
                "overhead": round(ckpt / plain - 1, 4),
                "plain_range_s": [round(min(times["plain"]), 3), round(max(times["plain"]), 3)],
                "checkpoint_range_s": [round(min(times["checkpoint"]), 3), round(max(times["checkpoint"]), 3)],
                "files_bytes": size,
                "saving_fraction": round(statistics.median(saving), 5),
            }
        )
    )


if __name__ == "__main__":
    main()
