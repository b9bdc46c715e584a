"""A user's first ``regfn.sweep`` call with the defaults against the plain torch loop (issue #22, target 3).

Each workload runs in a fresh process with an empty inductor cache (a
temporary ``TORCHINDUCTOR_CACHE_DIR``), as a new user's first call would:
``regfn.sweep`` with its defaults (``compile="auto"``, ``threads="auto"``,
automatic chunks, a log point every ``epochs // 20`` epochs), its whole call
timed; then, in the same process and on the threads the sweep chose, the
plain torch loop (``sweep_cnn.py``'s: an ``nn.Module`` with regfn's initial
weights and batch orders, the ``torch.optim`` optimizer of the same
settings) over ``--seq-configs`` of the K configurations, scaled to K,
twice, after one untimed epoch (torch.optim's first step imports
``torch._dynamo``, a cost the loop pays once, not once per configuration):

* ``loop_s``: training only, nothing evaluated (what the earlier first-call
  figures compared with);
* ``loop_logged_s``: the same loop computing what the sweep's result holds:
  the validation loss and accuracy with dropout off at the sweep's log
  points, and the training loss and accuracy at the end.

The workloads: ``cnn`` (``sweep_cnn.py``'s digits CNN, K = 64, 10 epochs,
batches of 64, Adam), ``digits`` and ``cancer`` (``sweep_mlp.py``'s MLPs
64-256-128-10 and 30-512-256-128-2, K = 32, 20 epochs, batches of 128 and 64,
Adam) and ``table`` (issue #22's fourth: an ``nn.Module`` MLP 30-64-32-2 with
dropout on the breast-cancer table, K = 72 (l2 x p x 6 seeds), 200 epochs,
full-batch SGD, lr 0.1). One JSON line per workload::

    taskset -c 0 python benchmarks/first_call.py                    # all four, one fresh process each
    taskset -c 0 python benchmarks/first_call.py --workloads cnn
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_cnn
import sweep_mlp

import regfn

WORKLOADS = ("cnn", "digits", "cancer", "table")


@dataclasses.dataclass
class Workload:
    """What one workload trains: the sweep's arguments and the loop's own (``optimizer``: the sweep's name;
    ``make_opt(params, cfg)``: the loop's ``torch.optim`` optimizer; ``batch``: ``None`` for full batch)."""

    model: regfn.nn.Model
    train: regfn.data.Dataset
    val: regfn.data.Dataset
    cfgs: list[dict]
    epochs: int
    batch: int | None
    make_net: Callable[[float], torch.nn.Module]
    optimizer: str
    make_opt: Callable[[object, dict], torch.optim.Optimizer]


def _sgd(params: object, cfg: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg["lr"], weight_decay=cfg["l2"])  # type: ignore[arg-type]


def _table_net(p: float) -> torch.nn.Module:
    """The breast-cancer table's MLP 30-64-32-2 as a plain ``nn.Module`` (dropout ``p`` after both hidden layers)."""
    return torch.nn.Sequential(
        torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Dropout(p),
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(p), torch.nn.Linear(32, 2),
    )  # fmt: skip


def setup(name: str, k: int | None, epochs: int | None) -> Workload:
    """A workload (``k`` and ``epochs``: the workload's own where ``None``)."""
    if name == "cnn":
        train, val = sweep_cnn.load_data()
        model = regfn.from_module(sweep_cnn.DigitsCNN())
        return Workload(model, train, val, sweep_cnn.configs(k or 64), epochs or 10, 64, sweep_cnn.DigitsCNN,
                        "adam", sweep_cnn.adam)  # fmt: skip
    if name == "table":  # issue #22's fourth workload: an nn.Module MLP, 72 configurations, full-batch SGD
        train, val = sweep_mlp.load_data("cancer")
        grid = regfn.grid(l2=[0.0, 1e-4, 1e-3, 1e-2], p=[0.0, 0.25, 0.5], seed=range(6), lr=[0.1])
        return Workload(regfn.from_module(_table_net(0.25)), train, val, grid[: k or 72], epochs or 200, None,
                        _table_net, "sgd", _sgd)  # fmt: skip
    sizes, batch = sweep_mlp.WORKLOADS[name]
    train, val = sweep_mlp.load_data(name)

    def make_net(p: float) -> torch.nn.Module:
        return sweep_mlp.MLP(sizes, p)

    model = regfn.mlp(sizes, output="logits")
    return Workload(
        model, train, val, sweep_cnn.configs(k or 32), epochs or 20, batch, make_net, "adam", sweep_cnn.adam
    )


def metrics(net: torch.nn.Module, data: regfn.data.Dataset) -> tuple[float, float]:
    """Loss and accuracy with dropout off (the net is left in training mode)."""
    net.eval()
    with torch.no_grad():
        out = net(data.x)
        result = float(F.cross_entropy(out, data.y)), float((out.argmax(1) == data.y).float().mean())
    net.train()
    return result


def loop_seconds(w: Workload, n_timed: int, log_every: int | None) -> float:
    """The torch loop's seconds per configuration over the grid (``sweep_cnn.grid_mean`` of ``n_timed``
    configurations of ``sweep_cnn.timed_configs``); with ``log_every``, evaluating as the sweep's result does."""
    seconds = []
    n = len(w.train)
    timed = sweep_cnn.timed_configs(w.cfgs, n_timed)
    for i, cfg in enumerate(timed):
        torch.manual_seed(i)
        batch = n if w.batch is None else w.batch  # full batch: every row, in the data's order
        net, orders = sweep_cnn.seq_setup(w.model, cfg, n, w.epochs, make_net=w.make_net, batch_size=batch)
        if w.batch is None:
            orders = [torch.arange(n)[None]] * w.epochs

        def log(epoch: int, net: torch.nn.Module = net, every: int = log_every or 1) -> None:  # the sweep's log points
            if epoch % every == 0 or epoch == w.epochs:
                metrics(net, w.val)

        t = time.perf_counter()
        after_epoch = log if log_every is not None else None
        sweep_cnn.seq_train(net, cfg, w.train, orders, make_opt=w.make_opt, after_epoch=after_epoch)
        if log_every is not None:
            metrics(net, w.train)
        seconds.append(time.perf_counter() - t)
    return sweep_cnn.grid_mean(w.cfgs, timed, seconds)


def measure(name: str, n_timed: int, k: int | None = None, epochs: int | None = None) -> dict:
    """One workload, in this process: the sweep's first call, then the loop without and with evaluation."""
    w = setup(name, k, epochs)
    t = time.perf_counter()
    result = regfn.sweep(w.model, w.train, w.cfgs, val=w.val, loss="cross_entropy", optimizer=w.optimizer,
                         batch_size=w.batch, epochs=w.epochs, quiet=True)  # fmt: skip
    first = time.perf_counter() - t
    log_every = int(result.provenance["arguments"]["log_every"])
    torch.set_num_threads(int(result.settings["threads"]))  # the loop on the threads the sweep chose
    # One untimed epoch first: torch.optim's first step imports torch._dynamo (a second or two), which the
    # timed configurations, scaled to K, would otherwise multiply; the loop's figures leave it out.
    loop_seconds(dataclasses.replace(w, epochs=1), 1, None)
    k = len(w.cfgs)
    loop = loop_seconds(w, n_timed, None) * k
    logged = loop_seconds(w, n_timed, log_every) * k
    return {
        "workload": name,
        "K": k,
        "epochs": w.epochs,
        "log_every": log_every,
        "compiled": result.settings["compile"],
        "chunk_size": result.settings["chunk_size"],
        "threads": result.settings["threads"],
        "regfn_first_s": round(first, 2),
        "compile_s": round(result.timings.get("compile_s", 0.0), 2),
        "loop_s": round(loop, 2),
        "loop_logged_s": round(logged, 2),
        "first_vs_loop": round(first / loop, 3),
        "first_vs_loop_logged": round(first / logged, 3),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS, help="which to measure")
    parser.add_argument(
        "--seq-configs", type=int, default=4, help="configurations of the torch loop to time (one rate after another)"
    )
    parser.add_argument("--K", type=int, default=None, help="configurations (default: the workload's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the workload's)")
    parser.add_argument("--here", action="store_true", help="measure in this process (one workload; no fresh cache)")
    args = parser.parse_args(argv)
    names = args.workloads
    if args.here:
        if len(names) != 1:
            parser.error("--here measures one workload")
        print(json.dumps(measure(names[0], args.seq_configs, args.K, args.epochs)), flush=True)
        return
    for name in names:  # a fresh process and an empty inductor cache each
        with tempfile.TemporaryDirectory(prefix="regfn-first-call-") as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            cmd = [sys.executable, os.path.abspath(__file__), "--here", "--workloads", name]
            cmd += ["--seq-configs", str(args.seq_configs)]
            cmd += [
                a for flag, v in (("--K", args.K), ("--epochs", args.epochs)) if v is not None for a in (flag, str(v))
            ]
            subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
