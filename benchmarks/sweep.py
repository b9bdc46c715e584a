"""The tutorial's workload, K configurations at once: regfn vs the tutorial's loop vs JAX.

Workload: MLP 8-6-4-1, ReLU, dropout 0.5 after both hidden layers, sigmoid
output, BCE plus an L2 penalty, SGD lr 0.01, full batch on the standardized
diabetes table (768 x 8; a synthetic table of the same shape when the CSV is
not found), E epochs, K configurations (L2 strengths x seeds).

* regfn: ``regfn.sweep`` (vmapped, compiled; CUDA graphs on GPU). The model
  outputs logits and the loss is BCE-with-logits, the same function as
  sigmoid + BCE.
* seq: the tutorial's own loop, an ``nn.Module`` with ``F.dropout`` and
  ``torch.optim.SGD(weight_decay=l2)``, one configuration after another; a
  few configurations are timed and the time is scaled to K.
* jax: ``jit(vmap(train))`` with ``lax.scan`` over epochs, ``jax.random``
  dropout and plain SGD (when jax is importable).

Warm-up and compilation are timed separately (``*_compile_s``). One JSON
object per K is printed on its own line.

    python benchmarks/sweep.py --device cpu --ks 64 --epochs 200
    python benchmarks/sweep.py --device cuda --ks 64,1024,4096 --epochs 2000
    python benchmarks/sweep.py --device cuda --inductor coordinate_descent_tuning=True
    python benchmarks/sweep.py --device cuda --ks 64,1024,4096 --epochs 2000 --triton --triton-tiles 32x2,128x4

``--triton`` also times ``regfn.sweep(engine="triton")``, the fused kernel
(``triton_*`` keys, and the largest relative difference of its final losses
from the vmap engine's).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

import regfn

DEFAULT_CSV = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "diabetes.csv"
LR = 0.01
P = 0.5


def load_data(csv: str | None, device: str) -> regfn.data.Dataset:
    path = pathlib.Path(csv) if csv else DEFAULT_CSV
    if path.exists():
        data = regfn.data.load_csv(path)
    else:  # a stand-in with the table's shape and scales
        data = regfn.data.synthetic_diabetes(regfn.random.key(0))
    (data, _stats) = regfn.data.standardize(data)
    return data.to(device)


def configs(k: int) -> list[dict]:
    seeds = max(1, k // 16) if k >= 16 else 1
    strengths = k // seeds
    l2s = [10 ** (-5 + 4 * i / max(1, strengths - 1)) for i in range(strengths)]
    return [{"l2": s, "seed": seed, "p": P, "lr": LR} for s in l2s for seed in range(seeds)][:k]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------- regfn


def time_regfn(data, cfgs, epochs, device, threads, compile=True, linear="matmul", engine="vmap"):
    model = regfn.mlp((8, 6, 4, 1), output="logits", linear=linear)
    kw = {
        "epochs": epochs,
        "log_every": epochs,
        "chunk_size": None,
        "quiet": True,
        "device": device,
        "threads": threads,
        "compile": compile,
        "engine": engine,
    }
    first = regfn.sweep(model, data, cfgs, **kw)
    second = regfn.sweep(model, data, cfgs, **kw)
    if second.engine != engine:
        raise RuntimeError(f"regfn.sweep fell back from engine={engine!r} to {second.engine!r}")
    return second.timings["run_s"], first.timings["compile_s"], second


def time_triton(data, cfgs, epochs, device, tiles, reference):
    """regfn.sweep(engine="triton"): seconds, compile seconds, the largest relative difference of the
    final losses from the vmap engine's ``reference`` result, and seconds per extra ``"RxW"`` tile."""
    import importlib

    kernels = importlib.import_module("regfn._sweep._triton_mlp")
    default = (kernels.BLOCK_ROWS, kernels.NUM_WARPS)
    per_tile = {}
    for tile in tiles:
        kernels.BLOCK_ROWS, kernels.NUM_WARPS = (int(v) for v in tile.split("x"))
        try:
            per_tile[tile] = round(time_regfn(data, cfgs, epochs, device, None, engine="triton")[0], 4)
        finally:
            kernels.BLOCK_ROWS, kernels.NUM_WARPS = default
    seconds, compile_s, result = time_regfn(data, cfgs, epochs, device, None, engine="triton")
    ref = torch.tensor([r["loss"] for r in reference.rows])
    got = torch.tensor([r["loss"] for r in result.rows])
    rel = float(((got - ref).abs() / ref.abs().clamp_min(1e-12)).max())
    return seconds, compile_s, rel, per_tile


def profile_regfn(data, cfgs, epochs, device, threads, path, linear="matmul"):
    """Kernel-level profile of one (already compiled) sweep, sorted by device time."""
    from torch.profiler import ProfilerActivity, profile

    model = regfn.mlp((8, 6, 4, 1), output="logits", linear=linear)
    kw = {
        "epochs": epochs,
        "log_every": epochs,
        "chunk_size": None,
        "quiet": True,
        "device": device,
        "threads": threads,
    }
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        regfn.sweep(model, data, cfgs, **kw)
    sort = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25)
    pathlib.Path(path).write_text(f"K={len(cfgs)} epochs={epochs} device={device}\n{table}\n")


# ----------------------------------------------------------------- the tutorial's loop


class TutorialNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 6)
        self.fc2 = torch.nn.Linear(6, 4)
        self.fc3 = torch.nn.Linear(4, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=P)
        x = F.relu(self.fc2(x))
        x = F.dropout(x, p=P)
        return torch.sigmoid(self.fc3(x))


def time_seq(data, cfgs, epochs, device, n_timed):
    x, y = data.x, data.y
    per_config = []
    for cfg in cfgs[:n_timed]:
        torch.manual_seed(cfg["seed"])  # the tutorial's global RNG (benchmark only)
        model = TutorialNet().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=cfg["l2"])
        loss_fn = torch.nn.BCELoss()
        sync(device)
        t = time.perf_counter()
        for _ in range(epochs):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        sync(device)
        per_config.append(time.perf_counter() - t)
    return sum(per_config) / len(per_config) * len(cfgs)


# ----------------------------------------------------------------- JAX


def time_jax(data, cfgs, epochs, device):
    # JAX would otherwise reserve most of the GPU's memory for itself, next to torch's.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None, None
    platform = "gpu" if device.startswith("cuda") else "cpu"
    try:
        dev = jax.devices(platform)[0]
    except RuntimeError:
        return None, None
    x = jax.device_put(jnp.asarray(data.x.cpu().numpy()), dev)
    y = jax.device_put(jnp.asarray(data.y.cpu().numpy()), dev)
    l2s = jax.device_put(jnp.asarray([c["l2"] for c in cfgs], jnp.float32), dev)
    seeds = jax.device_put(jnp.asarray([c["seed"] for c in cfgs], jnp.uint32), dev)

    def init(key):
        params = {}
        for i, (fan_in, fan_out) in enumerate(((8, 6), (6, 4), (4, 1))):
            key, kw, kb = jax.random.split(key, 3)
            bound = 1.0 / fan_in**0.5
            params[f"w{i}"] = jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound)
            params[f"b{i}"] = jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)
        return params

    def dropout(key, h):
        keep = 1.0 - P
        return jnp.where(jax.random.bernoulli(key, keep, h.shape), h / keep, 0.0)

    def loss_fn(params, key, l2):
        k1, k2 = jax.random.split(key)
        h = dropout(k1, jax.nn.relu(x @ params["w0"] + params["b0"]))
        h = dropout(k2, jax.nn.relu(h @ params["w1"] + params["b1"]))
        logits = h @ params["w2"] + params["b2"]
        bce = jnp.mean(jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits))))
        return bce + l2 / 2 * sum(jnp.sum(w**2) for w in params.values())

    def train(seed, l2):
        key = jax.random.PRNGKey(seed)
        init_key, drop_key = jax.random.split(key)
        params = init(init_key)

        def epoch(params, e):
            loss, grads = jax.value_and_grad(loss_fn)(params, jax.random.fold_in(drop_key, e), l2)
            return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss

        params, losses = jax.lax.scan(epoch, params, jnp.arange(epochs))
        return losses[-1]

    run = jax.jit(jax.vmap(train))
    t = time.perf_counter()
    run(seeds, l2s).block_until_ready()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    run(seeds, l2s).block_until_ready()
    return time.perf_counter() - t, compile_s


# ----------------------------------------------------------------- main


def parse_inductor_options(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    """``["a.b=1", ...]`` -> ``{"a.b": 1}``, checked against ``torch._inductor.config``."""
    import ast

    import torch._inductor.config as inductor_config

    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in inductor_config.get_config_copy():
            parser.error(f"--inductor: expected OPTION=VALUE with a torch._inductor.config option, got {item!r}")
        try:
            options[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parser.error(f"--inductor: {name}'s value must be a Python literal, got {text!r}")
    return options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", default="64", help="comma-separated numbers of configurations")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument(
        "--csv", default=None, help="the tutorial's diabetes.csv (default: ../shared/data/diabetes.csv, else synthetic)"
    )
    parser.add_argument("--seq-configs", type=int, default=2, help="configurations of the tutorial's loop to time")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for regfn's sweep (default: torch's)")
    parser.add_argument("--linear", default="matmul", choices=["matmul", "broadcast"], help="regfn.mlp's layer kind")
    parser.add_argument("--no-compile", action="store_true", help="run regfn eagerly (a smoke test, not a benchmark)")
    parser.add_argument(
        "--triton",
        action="store_true",
        help="also time regfn.sweep(engine='triton') (CUDA; on CPU only under TRITON_INTERPRET=1, as a smoke test)",
    )
    parser.add_argument(
        "--triton-tiles", default="", help="with --triton, also time these ROWSxWARPS kernel tiles, e.g. 32x2,128x4"
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="write a torch.profiler kernel table of regfn's sweep at the first K to this file",
    )
    parser.add_argument(
        "--inductor",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="set a torch._inductor.config option for regfn's compile, e.g. coordinate_descent_tuning=True (repeatable)",
    )
    args = parser.parse_args(argv)
    inductor = parse_inductor_options(parser, args.inductor)
    with torch._inductor.config.patch(inductor):
        run(args, inductor)


def run(args: argparse.Namespace, inductor: dict) -> None:
    """Time every K of ``args`` and print one JSON line each."""
    data = load_data(args.csv, args.device)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    )
    for k in (int(s) for s in args.ks.split(",")):
        cfgs = configs(k)
        regfn_s, regfn_compile_s, result = time_regfn(
            data, cfgs, args.epochs, args.device, args.threads, not args.no_compile, args.linear
        )
        if args.profile:
            profile_regfn(data, cfgs, min(args.epochs, 200), args.device, args.threads, args.profile, args.linear)
            args.profile = None
        triton = None
        if args.triton:
            tiles = [t for t in args.triton_tiles.split(",") if t]
            triton = time_triton(data, cfgs, args.epochs, args.device, tiles, result)
        seq_s = time_seq(data, cfgs, args.epochs, args.device, min(args.seq_configs, k))
        jax_s, jax_compile_s = (None, None) if args.no_jax else time_jax(data, cfgs, args.epochs, args.device)
        row = {
            "K": k,
            "epochs": args.epochs,
            "device": device_name,
            "regfn_s": round(regfn_s, 4),
            "seq_s": round(seq_s, 4),
            "jax_s": None if jax_s is None else round(jax_s, 4),
            "regfn_vs_jax": None if jax_s is None else round(regfn_s / jax_s, 3),
            "seq_vs_regfn": round(seq_s / regfn_s, 1),
            "regfn_compile_s": round(regfn_compile_s, 2),
            "jax_compile_s": None if jax_compile_s is None else round(jax_compile_s, 2),
            "diverged": len(result.diverged),
            "regfn_threads": (args.threads or torch.get_num_threads()) if args.device == "cpu" else None,
            "linear": args.linear,
            "inductor": inductor,
            "torch": torch.__version__,
        }
        if triton is not None:
            triton_s, triton_compile_s, rel, per_tile = triton
            row.update(
                {
                    "triton_s": round(triton_s, 4),
                    "triton_vs_jax": None if jax_s is None else round(triton_s / jax_s, 3),
                    "triton_vs_regfn": round(triton_s / regfn_s, 3),
                    "seq_vs_triton": round(seq_s / triton_s, 1),
                    "triton_compile_s": round(triton_compile_s, 2),
                    "triton_loss_max_rel_diff": rel,  # final losses against the vmap engine's
                    "triton_tiles_s": per_tile,
                }
            )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
