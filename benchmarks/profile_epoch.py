"""Where a compiled sweep epoch goes: torch.profiler over the speed issue's digits MLP (issue #22).

Workload (PERF.md): MLP 64-256-128-10 on scikit-learn's 8x8 digits (80/20
keyed split, standardized), cross-entropy, Adam lr 1e-3 with weight decay
1e-4, mini-batches of 128, K = 4 l2 x 8 seeds = 32 configurations, one dropout
rate ``--p`` after both hidden layers. It compiles (or not, ``--eager``),
times ``--epochs`` epochs, then profiles ``--profile-epochs`` more and prints
the operators by self CPU time: ``aten::bmm`` (the batched matmuls) against
the inductor-generated kernels (``CompiledFxGraph``) and eager key work.

    taskset -c 0 python benchmarks/profile_epoch.py --p 0.25
    taskset -c 0 python benchmarks/profile_epoch.py --p 0 --eager --epochs 3
    taskset -c 0 python benchmarks/profile_epoch.py --p 0.25 --epochs 2 --profile-epochs 5 --kernel-profile
    taskset -c 0 python benchmarks/profile_epoch.py --workload cancer --eager   # sweep_mlp.py's wide MLP
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile

import regfn
import regfn.random as rr


def workload(p: float, name: str) -> tuple[regfn.nn.Model, regfn.data.Dataset, regfn.data.Dataset, list[dict], int]:
    """The model, data, configurations and batch size: the digits grid below, or a ``sweep_mlp.py`` workload."""
    if name != "digits":  # sweep_mlp.py's workload and grid (its own p values: --p is not read)
        import sweep_cnn
        import sweep_mlp

        sizes, batch = sweep_mlp.WORKLOADS[name]
        train, val = sweep_mlp.load_data(name)
        return regfn.mlp(sizes, output="logits"), train, val, sweep_cnn.configs(32), batch
    digits = regfn.data.digits()
    data = regfn.data.Dataset(digits.x.flatten(1), digits.y)
    train, val = regfn.data.train_val_split(rr.key(0), data, 0.2)
    train, val, _ = regfn.data.standardize(train, val)
    model = regfn.mlp((64, 256, 128, 10), output="logits")
    configs = regfn.grid(l2=[0.0, 1e-4, 1e-3, 1e-2], seed=list(range(8)), lr=[1e-3], weight_decay=[1e-4], p=[p])
    return model, train, val, configs, 128


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=float, default=0.25, help="the dropout rate after both hidden layers")
    parser.add_argument(
        "--workload",
        default="digits",
        choices=("digits", "cancer"),
        help="digits (this grid, --p) or sweep_mlp.py's cancer workload (its grid)",
    )
    parser.add_argument("--eager", action="store_true", help="profile the eager step instead")
    parser.add_argument("--epochs", type=int, default=20, help="epochs timed after the compile")
    parser.add_argument("--profile-epochs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=30, help="operators to print")
    parser.add_argument(
        "--kernel-profile",
        action="store_true",
        help="name each inductor kernel in the profile (cpp.enable_kernel_profile)",
    )
    args = parser.parse_args(argv)
    if args.kernel_profile:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # changes the generated code: a compile of its own
    torch.set_num_threads(1)
    model, train, val, configs, batch = workload(args.p, args.workload)
    kw = {
        "val": val,
        "loss": "cross_entropy",
        "optimizer": "adam",
        "batch_size": batch,
        "chunk_size": None,
        "quiet": True,
        "threads": 1,
        "compile": not args.eager,
    }
    t = time.perf_counter()
    regfn.sweep(model, train, configs, epochs=1, log_every=1, **kw)
    first_s = time.perf_counter() - t
    run = regfn.sweep(model, train, configs, epochs=args.epochs, log_every=args.epochs, **kw)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        regfn.sweep(model, train, configs, epochs=args.profile_epochs, log_every=args.profile_epochs, **kw)
    summary = {
        "p": args.p,
        "compiled": run.settings["compile"],
        "first_call_s": round(first_s, 2),
        "epochs": args.epochs,
        "run_s": round(run.timings["run_s"], 3),
        "per_epoch_s": round(run.timings["run_s"] / args.epochs, 4),
        "torch": torch.__version__,
        "kernel_profile": args.kernel_profile,
    }
    print(json.dumps(summary))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
