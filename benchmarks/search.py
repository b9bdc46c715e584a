"""Search under a clock: best validation accuracy against wall-clock time.

Workload: the tutorial's MLP 8-6-4-1 (ReLU, dropout after both hidden
layers, BCE, SGD, full batch) on the standardized diabetes table (a
synthetic table of the same shape when the CSV is not found), split 80/20
into training and validation data, E epochs. Four ways to search:

* ``grid``: ``regfn.sweep`` over the full grid of N configurations
  (l2 x p x lr x seed, 3 values each: N = 81);
* ``halving``: the same N with ``schedule=successive_halving("val_acc",
  min_epochs=E // 27, eta=3)``;
* ``random``: ``regfn.search.sample`` of N configurations from the
  continuous space (loguniform lr and l2, uniform p, random seeds), one sweep;
* ``optuna``: Optuna's TPE sampler and median pruner driving the tutorial's
  own sequential torch loop (``nn.Module`` with ``F.dropout``,
  ``torch.optim.SGD(weight_decay=l2)``), one trial at a time, reporting the
  validation accuracy every E // 27 epochs, for a time budget (default: the
  grid's time).

Every regfn method gives one point (its time, its best validation accuracy);
Optuna gives a curve (the best so far after each trial). One JSON object per
method is printed on its own line; ``--figure`` draws them.

    python benchmarks/search.py --epochs 270 --figure benchmarks/search.png
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
from regfn.search import loguniform, randint, sample, successive_halving, uniform

DEFAULT_CSV = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "diabetes.csv"
GRID = {"l2": [0.0, 1e-3, 1e-2], "p": [0.0, 0.25, 0.5], "lr": [0.01, 0.1, 1.0], "seed": [0, 1, 2]}
SPACE = {"lr": loguniform(1e-3, 1.0), "l2": loguniform(1e-5, 1e-1), "p": uniform(0.0, 0.6)}


def load(csv: str | None) -> tuple[regfn.data.Dataset, regfn.data.Dataset]:
    path = pathlib.Path(csv) if csv else DEFAULT_CSV
    data = regfn.data.load_csv(path) if path.exists() else regfn.data.synthetic_diabetes(regfn.random.key(0))
    data, _ = regfn.data.standardize(data)
    return regfn.data.train_val_split(regfn.random.key(1), data, val_fraction=0.2)


def best_acc(result: regfn.SweepResult) -> float:
    return max(r["val_acc"] for r in result.rows if not r["diverged"])


def run_regfn(name: str, train, val, configs, epochs: int, threads: int, **kw: Any) -> dict[str, Any]:
    model = regfn.mlp((8, 6, 4, 1), output="logits")
    t0 = time.perf_counter()
    result = regfn.sweep(
        model, train, configs, val=val, epochs=epochs, compile=False, threads=threads, quiet=True, **kw
    )
    seconds = time.perf_counter() - t0
    best = result.best(1, by="val_acc")[0]
    return {
        "method": name,
        "configs": len(configs),
        "seconds": seconds,
        "best_val_acc": best_acc(result),
        "best": {k: best[k] for k in ("lr", "l2", "p", "seed")},
        "settings": {k: v for k, v in result.settings.items() if k != "padded"},
    }


class TutorialNet(torch.nn.Module):
    """The tutorial's network: 8-6-4-1, ReLU, dropout after both hidden layers, sigmoid output."""

    def __init__(self, p: float):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 4), torch.nn.Linear(4, 1)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.fc1(x)), self.p, self.training)
        x = F.dropout(F.relu(self.fc2(x)), self.p, self.training)
        return torch.sigmoid(self.fc3(x))


def run_optuna(train, val, epochs: int, budget: float, report_every: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=report_every),
    )
    x, y, vx, vy = train.x, train.y, val.x, val.y
    curve: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        l2 = trial.suggest_float("l2", 1e-5, 1e-1, log=True)
        p = trial.suggest_float("p", 0.0, 0.6)
        torch.manual_seed(trial.number)
        net = TutorialNet(p)
        opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=l2)
        acc = 0.0
        for epoch in range(1, epochs + 1):
            net.train()
            opt.zero_grad()
            F.binary_cross_entropy(net(x), y).backward()
            opt.step()
            if epoch % report_every == 0 or epoch == epochs:
                net.eval()
                with torch.no_grad():
                    acc = float(((net(vx) > 0.5).float() == vy).float().mean())
                trial.report(acc, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned
        return acc

    def track(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        values = [t.value for t in study.trials if t.value is not None] + [
            t.intermediate_values[max(t.intermediate_values)] for t in study.trials if t.intermediate_values
        ]
        curve.append((time.perf_counter() - t0, max(values) if values else 0.0))

    study.optimize(objective, timeout=budget, callbacks=[track])
    return {
        "method": "optuna",
        "trials": len(study.trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "seconds": time.perf_counter() - t0,
        "best_val_acc": study.best_value,
        "best": study.best_params,
        "curve": curve,
    }


def figure(rows: list[dict[str, Any]], path: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.4), dpi=110, layout="constrained")
    ax = fig.subplots()
    for row in rows:
        if row["method"] == "optuna":
            ts, accs = zip(*row["curve"], strict=True) if row["curve"] else ((), ())
            ax.step(ts, accs, where="post", color="0.3", label=f"Optuna TPE + median pruner ({row['trials']} trials)")
        else:
            ax.plot(
                [row["seconds"]], [row["best_val_acc"]], "o", ms=8, label=f"regfn {row['method']} ({row['configs']})"
            )
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel("best validation accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("search on the tutorial's MLP (diabetes), one CPU process")
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=None)
    parser.add_argument("--epochs", type=int, default=270)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--optuna-budget", type=float, default=None, help="seconds (default: the grid's time)")
    parser.add_argument("--no-optuna", action="store_true")
    parser.add_argument("--figure", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, val = load(args.csv)
    epochs, rung = args.epochs, max(1, args.epochs // 27)
    grid = regfn.grid(**GRID)
    sampled = sample(regfn.random.key(0), len(grid), seed=randint(0, 2**31), **SPACE)
    halving = successive_halving("val_acc", min_epochs=rung)
    rows = [
        run_regfn("grid", train, val, grid, epochs, args.threads),
        run_regfn("halving", train, val, grid, epochs, args.threads, schedule=halving),
        run_regfn("random", train, val, sampled, epochs, args.threads),
        run_regfn("random+halving", train, val, sampled, epochs, args.threads, schedule=halving),
    ]
    if not args.no_optuna:
        budget = args.optuna_budget if args.optuna_budget is not None else rows[0]["seconds"]
        rows.append(run_optuna(train, val, epochs, budget, rung))
    for row in rows:
        row.update(epochs=epochs, threads=args.threads, device="cpu")
        print(json.dumps(row))
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
