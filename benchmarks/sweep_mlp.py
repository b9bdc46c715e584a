"""Wider MLPs with mini-batches: regfn's sweep vs the torch loop vs JAX, side by side (issue #22, targets 1 and 4).

Two workloads, each an MLP with ReLU and dropout ``p`` after every hidden
layer, cross-entropy, Adam (lr 1e-3) with an L2 penalty ``l2`` (torch's
coupled ``weight_decay`` in the loop and in JAX: the same objective,
``sweep_cnn.py``'s ``l2_check`` shows it), K configurations of
``sweep_cnn.py``'s grid (l2 in {0, 1e-4, 1e-3, 1e-2} x p in {0, 0.1, 0.25,
0.5} x seeds), the data split 80/20 by ``regfn.data.train_val_split`` and
standardized with the training split's statistics:

* ``digits``: issue #22's MLP 64-256-128-10 on scikit-learn's 8x8 digits
  (1,437 training images), mini-batches of 128;
* ``cancer``: an MLP 30-512-256-128-2 on scikit-learn's breast cancer table
  (455 training rows), mini-batches of 64.

Contenders, one after another in one process, each on ``--threads`` threads:
``regfn.sweep`` (``regfn.mlp``, vmap engine, ``--chunk-size`` as regfn's
``chunk_size``, ``auto`` by default; compiled unless
``--no-compile``, its step compiled by a first call and timed by ``run_s``
of a second), the plain torch loop (an ``nn.Module`` with regfn's initial
weights and batch order, ``torch.optim.Adam``; ``--seq-configs`` of the K
timed, scaled to K) and JAX (``jit(vmap)`` of a Flax MLP trained by
``lax.scan``; needs jax, flax, optax). One JSON line per workload and K.

    taskset -c 0 python benchmarks/sweep_mlp.py --workload digits --K 32 --epochs 20
    taskset -c 0 python benchmarks/sweep_mlp.py --workload cancer --K 32 --epochs 20 --no-compile
    python benchmarks/sweep_mlp.py --device cuda --K 1024 --epochs 20 --seq-configs 2   # issue #22's target 6
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_cnn  # the shared grid, regfn timing and torch loop

import regfn
import regfn.random as rr

WORKLOADS = {"digits": ((64, 256, 128, 10), 128), "cancer": ((30, 512, 256, 128, 2), 64)}


class MLP(nn.Module):
    """``regfn.mlp(sizes, output="logits")`` as an ``nn.Module`` (the same ``fc{i}`` names), torch's dropout."""

    def __init__(self, sizes: tuple[int, ...], p: float):
        super().__init__()
        self.p = p
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            self.add_module(f"fc{i + 1}", nn.Linear(fan_in, fan_out))
        self.layers = len(sizes) - 1

    def forward(self, x):
        for i in range(1, self.layers):
            x = F.dropout(F.relu(getattr(self, f"fc{i}")(x)), self.p, self.training)
        return getattr(self, f"fc{self.layers}")(x)


def load_data(name: str) -> tuple[regfn.data.Dataset, regfn.data.Dataset]:
    if name == "digits":
        digits = regfn.data.digits()
        data = regfn.data.Dataset(digits.x.flatten(1), digits.y)
    else:
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        data = regfn.data.Dataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    train, val = regfn.data.train_val_split(rr.key(0), data, 0.2)
    train, val, _ = regfn.data.standardize(train, val)
    return train, val


def time_jax(train, val, cfgs, epochs, sizes, batch):
    """JAX's ``jit(vmap)`` of a Flax MLP over the K configurations: (seconds, first call seconds, best val acc)."""
    try:
        import flax.linen as fnn
        import jax
        import jax.numpy as jnp
        import optax  # noqa: F401 - sweep_cnn.time_flax's
    except ImportError:
        return None
    x, y = jnp.asarray(train.x.cpu().numpy()), jnp.asarray(train.y.cpu().numpy())
    xv, yv = jnp.asarray(val.x.cpu().numpy()), jnp.asarray(val.y.cpu().numpy())

    class Net(fnn.Module):
        @fnn.compact
        def __call__(self, h, key=None, p=0.0):
            for i, width in enumerate(sizes[1:-1]):
                h = fnn.relu(fnn.Dense(width)(h))
                if key is not None:
                    keep = 1.0 - p
                    mask = jax.random.bernoulli(jax.random.fold_in(key, i), keep, h.shape)
                    h = jnp.where(mask, h / keep, 0.0)
            return fnn.Dense(sizes[-1])(h)

    return sweep_cnn.time_flax(Net(), x, y, xv, yv, cfgs, epochs, batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits", choices=sorted(WORKLOADS))
    parser.add_argument("--K", default="32", help="comma-separated numbers of configurations")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every timed part")
    parser.add_argument("--device", default="cpu", help="where regfn and the torch loop train (JAX: its default)")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="regfn eager")
    parser.add_argument("--seq-configs", type=int, default=4, help="configurations of the torch loop to time")
    parser.add_argument(
        "--chunk-size", default="auto", type=sweep_cnn.chunk_arg, help="regfn's chunk_size: auto, none or N"
    )
    args = parser.parse_args(argv)
    if args.threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    torch.set_num_threads(args.threads)
    sizes, batch = WORKLOADS[args.workload]
    train, val = (d.to(args.device) for d in load_data(args.workload))
    model = regfn.mlp(sizes, output="logits")

    def make_net(p: float) -> nn.Module:
        return MLP(sizes, p)

    for k in (int(s) for s in args.K.split(",")):
        cfgs = sweep_cnn.configs(k)
        result, regfn_compile_s = sweep_cnn.time_regfn(
            model,
            train,
            val,
            cfgs,
            args.epochs,
            args.threads,
            not args.no_compile,
            batch_size=batch,
            chunk_size=args.chunk_size,
        )
        regfn_s = result.timings["run_s"]
        best = max(result.rows, key=lambda r: r["val_acc"])
        seq_per_config = sweep_cnn.time_seq(
            model, train, cfgs, args.epochs, min(args.seq_configs, k), make_net=make_net, batch_size=batch
        )
        seq_s = seq_per_config * k
        jax = None if args.no_jax else time_jax(train, val, cfgs, args.epochs, sizes, batch)
        row = {
            "workload": f"{args.workload}: MLP {'-'.join(map(str, sizes))}, batches of {batch}",
            "K": k,
            "epochs": args.epochs,
            "device": f"{args.device} ({torch.get_num_threads()} threads)"
            if args.device == "cpu"
            else torch.cuda.get_device_name(args.device),
            "regfn_compiled": result.settings["compile"],
            "regfn_chunk_size": result.settings["chunk_size"],
            "regfn_s": round(regfn_s, 3),
            "seq_s": round(seq_s, 3),
            "jax_s": None if jax is None else round(jax[0], 3),
            "seq_vs_regfn": round(seq_s / regfn_s, 3),
            "regfn_vs_jax": None if jax is None else round(regfn_s / jax[0], 3),
            "regfn_compile_s": round(regfn_compile_s, 2),
            "jax_compile_s": None if jax is None else round(jax[1] - jax[0], 2),
            "regfn_best_val_acc": round(best["val_acc"], 4),
            "jax_best_val_acc": None if jax is None else round(jax[2], 4),
            "diverged": len(result.diverged),
            "torch": torch.__version__,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
