"""Cross-validation's cost: k folds in one vmapped sweep against the folds one by one and the plain loop.

Workload: the tutorial's MLP 8-6-4-1 (ReLU, dropout after both hidden
layers, BCE with logits, SGD, full batch) on the standardized diabetes table
(a synthetic table of the same shape when the CSV is not found), K
configurations (l2 x p x seed), k-fold cross-validation, E epochs. Three ways,
side by side in one process, one thread:

* ``cv``: ``regfn.sweep(..., cv=folds)``: K x k rows in one vmapped program;
* ``folds``: ``regfn.sweep`` once per fold (K rows each) on ``folds.split(data, f)``:
  the same numbers (checked: the largest difference of a per-fold validation loss
  is printed), k programs;
* ``loop``: what a scikit-learn-style CV loop does: for every configuration and
  fold, the tutorial's own loop (``nn.Module`` with ``F.dropout``,
  ``torch.optim.SGD``), K x k sequential runs (``--loop-configs`` of them timed,
  scaled to K).

With ``--halving``, it times instead the search question of issue #16 under
cross-validation: the grid of ``benchmarks/search.py`` (l2 x p x lr x seed, N = 81)
with ``cv=k``, against successive halving over the same 81 (``min_epochs=E // 27``,
``eta=3``) ranked by the fold mean of ``val_loss`` and of ``val_acc``: seconds and
the best mean validation accuracy over the folds (every held-out row counts, so one
example moves it by ``1 / (k * (n // k))``).

One JSON object per method is printed on its own line.

    python benchmarks/cv.py --k 5 --epochs 300
    python benchmarks/cv.py --halving --epochs 270
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any

import torch
import torch.nn.functional as F

import regfn

DEFAULT_CSV = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "diabetes.csv"
GRID = {"l2": [0.0, 1e-4, 1e-3, 1e-2], "p": [0.0, 0.1, 0.25, 0.5], "seed": [0, 1], "lr": [0.1]}
SEARCH_GRID = {"l2": [0.0, 1e-3, 1e-2], "p": [0.0, 0.25, 0.5], "lr": [0.01, 0.1, 1.0], "seed": [0, 1, 2]}


def load(csv: str | None) -> tuple[regfn.data.Dataset, str]:
    path = pathlib.Path(csv) if csv else DEFAULT_CSV
    if path.exists():
        data, name = regfn.data.load_csv(path), f"diabetes ({path.name})"
    else:
        data, name = regfn.data.synthetic_diabetes(regfn.random.key(0)), "synthetic diabetes"
    data, _ = regfn.data.standardize(data)
    return data, name


class TutorialNet(torch.nn.Module):
    """The tutorial's network: 8-6-4-1, ReLU, dropout after both hidden layers, one logit."""

    def __init__(self, p: float):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 4), torch.nn.Linear(4, 1)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.fc1(x)), self.p, self.training)
        x = F.dropout(F.relu(self.fc2(x)), self.p, self.training)
        return self.fc3(x)


def loop_run(config: dict[str, Any], train: regfn.data.Dataset, val: regfn.data.Dataset, epochs: int) -> float:
    """One configuration on one fold, the tutorial's way; returns its validation accuracy."""
    torch.manual_seed(config["seed"])
    net = TutorialNet(config["p"])
    opt = torch.optim.SGD(net.parameters(), lr=config["lr"], weight_decay=config["l2"], foreach=False)
    for _ in range(epochs):
        net.train()
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(train.x), train.y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return float(((net(val.x) > 0).float() == val.y).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=None)
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--configs", type=int, default=None, help="the first N configurations of the grid (32)")
    parser.add_argument("--loop-configs", type=int, default=4, help="configurations the plain loop times")
    parser.add_argument("--halving", action="store_true", help="time the grid against successive halving, under cv")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data, name = load(args.csv)
    if args.halving:
        halving(data, name, args)
        return
    configs = regfn.grid(**GRID)[: args.configs]
    folds = regfn.data.kfold(regfn.random.key(0), data, args.k)
    model = regfn.mlp((8, 6, 4, 1), output="logits")
    run = {"epochs": args.epochs, "compile": False, "threads": 1, "quiet": True}
    common = {"data": name, "rows": len(data), "folds": args.k, "configs": len(configs), "epochs": args.epochs}
    common.update(device="cpu", torch=torch.__version__, threads=1)

    regfn.sweep(model, data, configs[:2], cv=folds, **{**run, "epochs": 2})  # warm-up: first calls, allocations
    t0 = time.perf_counter()
    together = regfn.sweep(model, data, configs, cv=folds, **run)
    cv_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    per_fold = []
    for f in range(args.k):
        train, val = folds.split(data, f)
        per_fold.append(regfn.sweep(model, train, configs, val=val, **run))
    folds_s = time.perf_counter() - t0
    gap = max(
        abs(row["val_loss_folds"][f] - per_fold[f].rows[i]["val_loss"])
        for i, row in enumerate(together.rows)
        for f in range(args.k)
    )

    timed = configs[: args.loop_configs]
    t0 = time.perf_counter()
    for config in timed:
        for f in range(args.k):
            loop_run(config, *folds.split(data, f), args.epochs)
    loop_s = (time.perf_counter() - t0) * len(configs) / len(timed)

    best = together.best(1, by="val_acc")[0]
    print(json.dumps({"method": "cv", "seconds": cv_s, "best": {n: best[n] for n in GRID}, **common}))
    print(json.dumps({"method": "folds", "seconds": folds_s, "max_val_loss_gap": gap, **common}))
    print(json.dumps({"method": "loop", "seconds": loop_s, "timed_configs": len(timed), **common}))
    print(json.dumps({"ratio_cv_over_folds": cv_s / folds_s, "ratio_cv_over_loop": cv_s / loop_s, **common}))


def halving(data: regfn.data.Dataset, name: str, args: argparse.Namespace) -> None:
    """The grid and its successive halvings (by the fold mean of val_loss, of val_acc), all cross-validated."""
    from regfn.search import successive_halving

    folds = regfn.data.kfold(regfn.random.key(0), data, args.k)
    model = regfn.mlp((8, 6, 4, 1), output="logits")
    grid = regfn.grid(**SEARCH_GRID)
    run = {"cv": folds, "epochs": args.epochs, "compile": False, "threads": 1, "quiet": True}
    common = {"data": name, "rows": len(data), "folds": args.k, "configs": len(grid), "epochs": args.epochs}
    common.update(device="cpu", torch=torch.__version__, threads=1)
    regfn.sweep(model, data, grid[:2], **{**run, "epochs": 2})  # warm-up: first calls, allocations
    rung = max(1, args.epochs // 27)
    methods = [("grid", None)] + [
        (f"halving {metric}", successive_halving(metric, min_epochs=rung, eta=3)) for metric in ("val_loss", "val_acc")
    ]
    grid_s = None
    for method, schedule in methods:
        t0 = time.perf_counter()
        result = regfn.sweep(model, data, grid, schedule=schedule, **run)
        seconds = time.perf_counter() - t0
        grid_s = grid_s or seconds
        best = result.best(1, by="val_acc")[0]
        row = {"method": method, "seconds": seconds, "share_of_grid": seconds / grid_s, "best_val_acc": best["val_acc"]}
        row.update(best_val_acc_std=best["val_acc_std"], best={n: best[n] for n in SEARCH_GRID})
        row["config_fold_epochs"] = result.settings.get("config_epochs", len(grid) * args.k * args.epochs)
        print(json.dumps({**row, **common}))


if __name__ == "__main__":
    main()
