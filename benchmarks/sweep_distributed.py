"""One sweep on 1 process vs N processes (torch.distributed): time, and whether the rows are the same bits.

Workload: the tutorial's (benchmarks/sweep.py): MLP 8-6-4-1, ReLU, dropout 0.5,
BCE-with-logits plus an L2 penalty, SGD lr 0.01, full batch on the standardized
diabetes table (768 x 8), E epochs, K configurations (L2 strengths x seeds).

The script launches its own ranks (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, as
torchrun sets them): world size 1, then world size N. Each rank initialises the
process group (gloo on CPU, NCCL on CUDA), waits at a barrier, and times
``regfn.sweep`` (on CPU one thread per rank and eager, unless ``--compile``);
rank 0 writes its rows. Both runs use the same chunk size (``--chunk-size``,
default K / N), so the chunks are the same. One JSON line:
``world1_s``, ``worldN_s`` (the sweep call on rank 0, gathering included),
``speedup``, ``rows_equal`` (rows and curves, bit for bit) and each launch's wall time.

    python benchmarks/sweep_distributed.py --nproc 2 --K 256 --epochs 200
    python benchmarks/sweep_distributed.py --device cuda --nproc 8 --K 8192 --epochs 2000 --compile
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import torch

import regfn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sweep import configs, load_data  # the same workload as benchmarks/sweep.py

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """One rank: initialise the group, time the sweep, rank 0 writes the result."""
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if args.device == "cuda" else torch.device("cpu")
    if size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    data = load_data(args.csv, str(device))
    model = regfn.mlp((data.n_features, 6, 4, 1), output="logits")
    cfgs = configs(args.K)
    kwargs = {"epochs": args.epochs, "chunk_size": args.chunk_size, "compile": args.compile, "quiet": True}
    if device.type == "cpu":
        kwargs["threads"] = 1
    if args.compile:  # compile (and warm) outside the timing: the same sweep once
        regfn.sweep(model, data, cfgs, **kwargs)
    if size > 1:
        dist.barrier()
    t0 = time.perf_counter()
    result = regfn.sweep(model, data, cfgs, **kwargs)
    seconds = time.perf_counter() - t0
    if result is not None:
        d = result.to_dict()
        out = {"seconds": seconds, "rows": d["rows"], "curves": d["curves"], "settings": result.settings}
        pathlib.Path(args.worker).write_text(json.dumps(out))
    if size > 1:
        dist.barrier()  # every rank done with its collectives before any tears its connections down
        dist.destroy_process_group()


def launch(args: argparse.Namespace, nproc: int, out: pathlib.Path) -> float:
    """Run ``nproc`` ranks of this script; the launch's wall time."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    base = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if args.device == "cpu":
        base["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, __file__, "--worker", str(out), *sys.argv[1:]]
    t0 = time.perf_counter()
    procs = []
    for rank in range(nproc):
        env = {**base, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank)}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"world size {nproc}: exit statuses {codes}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="the world size compared with 1")
    parser.add_argument("--K", type=int, default=256, help="configurations")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=None, help="configurations per chunk (default: K / nproc)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", action="store_true", help="compile the step (warmed before timing)")
    parser.add_argument("--csv", default=None, help="the diabetes CSV (default: shared/data, else a stand-in)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk_size is None:
        args.chunk_size = -(-args.K // args.nproc)
    if args.worker is not None:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        one, many = pathlib.Path(tmp, "one.json"), pathlib.Path(tmp, "many.json")
        wall1 = launch(args, 1, one)
        walln = launch(args, args.nproc, many)
        r1, rn = json.loads(one.read_text()), json.loads(many.read_text())
    print(
        json.dumps(
            {
                "K": args.K,
                "epochs": args.epochs,
                "device": args.device,
                "nproc": args.nproc,
                "chunk_size": args.chunk_size,
                "compile": args.compile,
                "world1_s": round(r1["seconds"], 3),
                "worldN_s": round(rn["seconds"], 3),
                "speedup": round(r1["seconds"] / rn["seconds"], 2),
                "rows_equal": r1["rows"] == rn["rows"] and r1["curves"] == rn["curves"],
                "world1_wall_s": round(wall1, 2),
                "worldN_wall_s": round(walln, 2),
                "settingsN": rn["settings"],
            }
        )
    )


if __name__ == "__main__":
    main()
