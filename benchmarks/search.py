"""Search under a clock: best validation accuracy against wall-clock time, regfn vs Optuna.

Two tasks, each split into training and validation data with a keyed,
stratified split (``regfn.data.train_val_split``), full batch, SGD, E epochs:

* ``diabetes``: the tutorial's MLP 8-6-4-1 (ReLU, dropout after both hidden
  layers, BCE) on the standardized diabetes table (a synthetic table of the
  same shape when the CSV is not found), 614 / 154 rows;
* ``digits``: an MLP 64-32-10 (ReLU, dropout after the hidden layer,
  cross-entropy) on scikit-learn's 8x8 digits as 64 standardized pixels
  (statistics of the training split), 1,438 / 359 images.

The same grid and space for both: the grid is l2 {0, 1e-3, 1e-2} x p {0,
0.25, 0.5} x lr {0.01, 0.1, 1} x seed {0, 1, 2} (N = 81); sampled
configurations draw lr loguniform(1e-3, 1), l2 loguniform(1e-5, 1e-1), p
uniform(0, 0.6) and a random seed (``regfn.search.sample`` from fixed keys).
regfn runs eagerly (``compile=False``: a compile costs more than these
searches) on ``--threads`` threads. With ``r = E // 27``:

* ``grid``: the N configurations, every epoch;
* ``1 configuration``: one sampled configuration alone, every epoch: the
  least time any regfn search of E epochs takes (an eager epoch has a
  fixed cost, whatever the number of configurations);
* ``halving ...``: successive halving over the same N, four variants:
  ranked by ``val_acc`` or ``val_loss``, first rung at ``r`` or ``3 r``
  epochs, eta = 3;
* ``random``: N sampled configurations, every epoch;
* ``random M + halving``: M = 81 and ``--samples`` (243, 729) sampled
  configurations halved down (``val_loss``, first rung ``r``, eta 3);
* ``anytime ...``: regfn as an anytime search, batches of fresh samples until
  the time budget is spent, the best so far after each batch: 27 at a time
  trained fully, or 81 at a time halved (as above);
* ``optuna``: Optuna's ``TPESampler(seed=0)`` with ``MedianPruner
  (n_startup_trials=5, n_warmup_steps=r)`` suggesting lr, l2 and p from the
  same ranges for a plain torch loop (an ``nn.Module`` with ``F.dropout``,
  ``torch.optim.SGD(weight_decay=l2)``, which is regfn's ``l2`` penalty; the
  tutorial's own loop on diabetes), one trial at a time, reporting the
  validation accuracy every r epochs, for a time budget (default: the
  grid's time).

"Best so far" counts every trained model where it ended, on both sides: a
configuration that ran every epoch, one that halving stopped, a trial Optuna
pruned (its last reported accuracy), and never a diverged one. Before any
timing, both sides run once untimed (imports, first calls).

One JSON object per method and task is printed on its own line, then one
``summary`` object per task: each halving's gap to the grid's best and its
share of the grid's time, each regfn method's time to reach Optuna's final
best and its ratio to Optuna's time. ``--figure`` draws one panel per task.

    python benchmarks/search.py --figure benchmarks/search.png
    python benchmarks/search.py --tasks diabetes --epochs 27 --samples 243 --optuna-budget 2
    python benchmarks/search.py --replot out.jsonl --figure benchmarks/search.png  # from saved output
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import regfn
from regfn.search import loguniform, randint, sample, successive_halving, uniform

DEFAULT_CSV = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "diabetes.csv"
GRID = {"l2": [0.0, 1e-3, 1e-2], "p": [0.0, 0.25, 0.5], "lr": [0.01, 0.1, 1.0], "seed": [0, 1, 2]}
SPACE = {"lr": loguniform(1e-3, 1.0), "l2": loguniform(1e-5, 1e-1), "p": uniform(0.0, 0.6)}
EPOCHS = {"diabetes": 270, "digits": 135}
ANYTIME = ((27, False), (81, True))  # (configurations per batch, halved)


# ----------------------------------------------------------------- the tasks


class TutorialNet(nn.Module):
    """The tutorial's network: 8-6-4-1, ReLU, dropout after both hidden layers, sigmoid output."""

    def __init__(self, p: float):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 6), nn.Linear(6, 4), nn.Linear(4, 1)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        x = F.dropout(F.relu(self.fc1(x)), self.p, self.training)
        x = F.dropout(F.relu(self.fc2(x)), self.p, self.training)
        return torch.sigmoid(self.fc3(x))


class DigitsNet(nn.Module):
    """64-32-10, ReLU, dropout after the hidden layer, logits: ``regfn.mlp((64, 32, 10), output="logits")``."""

    def __init__(self, p: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.dropout(F.relu(self.fc1(x)), self.p, self.training))


@dataclass(frozen=True)
class Task:
    """One search problem, for regfn (``sizes``, ``loss``) and for the torch loop (``net``, ``torch_loss``, ``hits``)."""

    name: str
    train: regfn.data.Dataset
    val: regfn.data.Dataset
    sizes: tuple[int, ...]
    loss: str
    epochs: int
    net: Callable[[float], nn.Module]
    torch_loss: Callable[[Tensor, Tensor], Tensor]
    hits: Callable[[Tensor, Tensor], Tensor]  # (output, targets) -> correct predictions

    @property
    def rung(self) -> int:
        return max(1, self.epochs // 27)


def diabetes(csv: str | None, epochs: int) -> Task:
    path = pathlib.Path(csv) if csv else DEFAULT_CSV
    data = regfn.data.load_csv(path) if path.exists() else regfn.data.synthetic_diabetes(regfn.random.key(0))
    data, _ = regfn.data.standardize(data)
    train, val = regfn.data.train_val_split(regfn.random.key(1), data, val_fraction=0.2)
    return Task(
        "diabetes",
        train,
        val,
        (8, 6, 4, 1),
        "bce_logits",
        epochs,
        TutorialNet,
        F.binary_cross_entropy,
        lambda out, y: ((out > 0.5).to(y.dtype) == y).reshape(-1),
    )


def digits(epochs: int) -> Task:
    data = regfn.data.digits(flat=True)
    train, val = regfn.data.train_val_split(regfn.random.key(1), data, val_fraction=0.2)
    train, val, _ = regfn.data.standardize(train, val)
    return Task(
        "digits",
        train,
        val,
        (64, 32, 10),
        "cross_entropy",
        epochs,
        DigitsNet,
        F.cross_entropy,
        lambda out, y: out.argmax(1) == y,
    )


# ----------------------------------------------------------------- regfn


def best_acc(result: regfn.SweepResult) -> float:
    """The best validation accuracy of the rows, each where it ended (diverged rows left out)."""
    accs = [r["val_acc"] for r in result.rows if not r["diverged"] and math.isfinite(r["val_acc"])]
    return max(accs, default=0.0)


def sweep(task: Task, configs: Sequence[dict[str, Any]], threads: int, **kw: Any) -> tuple[float, regfn.SweepResult]:
    model = regfn.mlp(task.sizes, output="logits")
    t0 = time.perf_counter()
    result = regfn.sweep(
        model,
        task.train,
        configs,
        val=task.val,
        loss=task.loss,
        epochs=task.epochs,
        compile=False,
        threads=threads,
        quiet=True,
        **kw,
    )
    return time.perf_counter() - t0, result


def point(name: str, task: Task, configs: Sequence[dict[str, Any]], threads: int, **kw: Any) -> dict[str, Any]:
    """One sweep (optionally with a schedule): its time and best validation accuracy."""
    load0 = os.getloadavg()[0]
    seconds, result = sweep(task, configs, threads, **kw)
    best = max((r for r in result.rows if not r["diverged"]), key=lambda r: r["val_acc"], default=result.rows[0])
    schedule = kw.get("schedule")
    return {
        "method": name,
        "configs": len(configs),
        "seconds": seconds,
        "best_val_acc": best_acc(result),
        "best": {k: best[k] for k in ("lr", "l2", "p", "seed")},
        "config_epochs": result.settings.get("config_epochs", len(configs) * task.epochs),
        "schedule": repr(schedule) if schedule is not None else None,
        "load": [load0, os.getloadavg()[0]],
    }


def sampled(key: Tensor, n: int) -> list[dict[str, Any]]:
    return sample(key, n, seed=randint(0, 2**31), **SPACE)


def anytime(task: Task, batch: int, halved: bool, budget: float, threads: int) -> dict[str, Any]:
    """Batches of fresh samples (keys fold_in(key(2), b)) until ``budget`` seconds; the best after each batch."""
    schedule = successive_halving("val_loss", min_epochs=task.rung, eta=3) if halved else None
    curve: list[tuple[float, float]] = []
    best, elapsed, b, config_epochs = 0.0, 0.0, 0, 0
    load0 = os.getloadavg()[0]
    while elapsed < budget:
        configs = sampled(regfn.random.fold_in(regfn.random.key(2), b), batch)
        seconds, result = sweep(task, configs, threads, schedule=schedule)
        elapsed += seconds
        best = max(best, best_acc(result))
        config_epochs += result.settings.get("config_epochs", batch * task.epochs)
        curve.append((elapsed, best))
        b += 1
    return {
        "method": f"anytime {batch}" + (" + halving" if halved else ""),
        "configs": batch * b,
        "batches": b,
        "seconds": elapsed,
        "best_val_acc": best,
        "config_epochs": config_epochs,
        "curve": curve,
        "load": [load0, os.getloadavg()[0]],
    }


def halving_variants(task: Task) -> list[tuple[str, Any]]:
    r = task.rung
    return [
        (f"halving {metric} r={first} eta=3", successive_halving(metric, min_epochs=first, eta=3))
        for first in (r, 3 * r)
        for metric in ("val_acc", "val_loss")
    ]


# ----------------------------------------------------------------- Optuna driving a plain torch loop


def run_optuna(task: Task, budget: float) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    every = task.rung
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=every),
    )
    x, y, vx, vy = task.train.x, task.train.y, task.val.x, task.val.y
    curve: list[tuple[float, float]] = []
    ended: list[float] = []  # each finished or pruned trial's last validation accuracy
    epochs_trained = [0]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        l2 = trial.suggest_float("l2", 1e-5, 1e-1, log=True)
        p = trial.suggest_float("p", 0.0, 0.6)
        torch.manual_seed(trial.number)
        net = task.net(p)
        opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=l2)
        acc = 0.0
        for epoch in range(1, task.epochs + 1):
            net.train()
            opt.zero_grad()
            loss = task.torch_loss(net(x), y)
            loss.backward()
            opt.step()
            epochs_trained[0] += 1
            if not math.isfinite(loss.item()):
                return math.nan  # Optuna records a failed trial; it counts for nobody's best
            if epoch % every == 0 or epoch == task.epochs:
                net.eval()
                with torch.no_grad():
                    acc = float(task.hits(net(vx), vy).to(torch.float64).mean())
                trial.report(acc, epoch)
                if trial.should_prune():
                    ended.append(acc)
                    raise optuna.TrialPruned
        ended.append(acc)
        return acc

    def track(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        curve.append((time.perf_counter() - t0, max(ended, default=0.0)))

    study.optimize(objective, timeout=budget, callbacks=[track])
    seconds = time.perf_counter() - t0
    return {
        "method": "optuna",
        "trials": len(study.trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials),
        "seconds": seconds,
        "best_val_acc": max(ended, default=0.0),
        "best_complete": study.best_value if any(t.value is not None for t in study.trials) else None,
        "best": study.best_params,
        "config_epochs": epochs_trained[0],
        "curve": curve,
        "load": [load0, os.getloadavg()[0]],
    }


def warm_up(task: Task, threads: int) -> None:
    """Imports and first calls of both sides, untimed."""
    configs = regfn.grid(lr=[0.1], seed=[0, 1, 2])
    model = regfn.mlp(task.sizes, output="logits")
    for schedule in (None, successive_halving("val_loss", min_epochs=1)):
        kw = {"val": task.val, "loss": task.loss, "epochs": 3, "schedule": schedule}
        regfn.sweep(model, task.train, configs, compile=False, threads=threads, quiet=True, **kw)
    net = task.net(0.1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        task.torch_loss(net(task.train.x), task.train.y).backward()
        opt.step()
    with contextlib.suppress(ImportError):
        import optuna  # noqa: F401


# ----------------------------------------------------------------- reading the runs


def first_reach(row: dict[str, Any], target: float) -> float | None:
    """When ``row`` first reached ``target``: a point method at its end, a curve at its first point there."""
    curve = row.get("curve") or [(row["seconds"], row["best_val_acc"])]
    return next((t for t, acc in curve if acc >= target - 1e-12), None)


def summary(task: Task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    grid = next(r for r in rows if r["method"] == "grid")
    out: dict[str, Any] = {"method": "summary", "grid_best": grid["best_val_acc"], "grid_s": grid["seconds"]}
    out["halving_vs_grid"] = {
        r["method"]: {
            "gap_pp": 100 * (grid["best_val_acc"] - r["best_val_acc"]),
            "time_share": r["seconds"] / grid["seconds"],
            "met": 100 * (grid["best_val_acc"] - r["best_val_acc"]) <= 0.5 and r["seconds"] <= 0.35 * grid["seconds"],
        }
        for r in rows
        if "halving" in r["method"] and not r["method"].startswith("anytime")
    }
    optuna_row = next((r for r in rows if r["method"] == "optuna"), None)
    if optuna_row is not None:
        target = optuna_row["best_val_acc"]
        optuna_reached = first_reach(optuna_row, target)
        out.update(optuna_best=target, optuna_s=optuna_row["seconds"], optuna_reached_s=optuna_reached)
        reach = {}
        for r in rows:
            if r["method"] in ("optuna", "summary"):
                continue
            t = first_reach(r, target)
            reach[r["method"]] = {
                "reached_s": t,
                "of_optuna_s": None if t is None else t / optuna_row["seconds"],
                "of_optuna_reached_s": None if t is None or not optuna_reached else t / optuna_reached,
            }
        out["reach_optuna_best"] = reach
        fastest = [v["of_optuna_s"] for v in reach.values() if v["of_optuna_s"] is not None]
        out["optuna_target_met"] = bool(fastest) and min(fastest) <= 0.1
    out["throughput_ms_per_config_epoch"] = {
        r["method"]: 1e3 * r["seconds"] / r["config_epochs"]
        for r in rows
        if r["method"] in ("grid", "1 configuration", "optuna")
    }
    return out


def figure(results: dict[str, list[dict[str, Any]]], path: str) -> None:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * len(results), 6.6), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    markers = {"grid": "s", "random": "D"}
    colors = colormaps["tab20"].colors
    for ax, (name, rows) in zip(axes, results.items(), strict=True):
        optuna_row = next((r for r in rows if r["method"] == "optuna"), None)
        searches = [r for r in rows if r["method"] not in ("summary", "1 configuration")]
        for i, row in enumerate(searches):
            method, color = row["method"], colors[(2 * i) % 20 + (2 * i) // 20]
            if method == "optuna":
                ts, accs = zip(*row["curve"], strict=True)
                label = f"Optuna TPE + median pruner, torch loop ({row['trials']} trials)"
                ax.step(ts, accs, where="post", color="0.1", lw=2.0, label=label)
            elif row.get("curve"):
                ts, accs = zip(*row["curve"], strict=True)
                ax.step(ts, accs, where="post", color=color, lw=1.5, label=f"regfn {method} ({row['configs']})")
            else:
                marker = markers.get(method, "o" if "halving" in method else "^")
                label = f"regfn {method} ({row['configs']})"
                ax.plot([row["seconds"]], [row["best_val_acc"]], marker, color=color, ms=7, label=label)
        floor = next((r for r in rows if r["method"] == "1 configuration"), None)
        if floor is not None:
            label = f"regfn, 1 configuration alone: {floor['seconds']:.2f} s"
            ax.axvline(floor["seconds"], color="tab:red", ls="-.", lw=0.9, label=label)
        if optuna_row is not None:
            ax.axhline(optuna_row["best_val_acc"], color="0.5", ls="--", lw=0.8)
            ax.axvline(0.1 * optuna_row["seconds"], color="0.5", ls=":", lw=0.8)
        top = max(r["best_val_acc"] for r in searches)
        ax.set_ylim(top - 0.08, top + 0.01)
        ax.set_xscale("log")
        ax.set_xlabel("wall-clock seconds (dotted: 1/10 of Optuna's time; dashed: Optuna's best)")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        ax.set_title(f"{name} (E={rows[0].get('epochs', '?')}): search against the clock, one CPU thread", fontsize=10)
    fig.savefig(path)


def replot(path: str, figure_path: str) -> None:
    """Draw the figure again from the JSON lines a run printed."""
    results: dict[str, list[dict[str, Any]]] = {}
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results.setdefault(row["task"], []).append(row)
    figure(results, figure_path)


# ----------------------------------------------------------------- main


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_task(task: Task, args: argparse.Namespace) -> list[dict[str, Any]]:
    warm_up(task, args.threads)
    grid = regfn.grid(**GRID)
    random81 = sampled(regfn.random.key(0), len(grid))
    rows = [point("grid", task, grid, args.threads)]
    rows.append(point("1 configuration", task, sampled(regfn.random.key(3), 1), args.threads))  # the floor
    for name, schedule in halving_variants(task):
        rows.append(point(name, task, grid, args.threads, schedule=schedule))
    rows.append(point("random", task, random81, args.threads))
    halving = successive_halving("val_loss", min_epochs=task.rung, eta=3)
    for m in (len(grid), *args.samples):
        configs = random81 if m == len(grid) else sampled(regfn.random.fold_in(regfn.random.key(0), m), m)
        rows.append(
            point(f"random {m} + halving val_loss r={task.rung}", task, configs, args.threads, schedule=halving)
        )
    budget = args.optuna_budget if args.optuna_budget is not None else rows[0]["seconds"]
    for batch, halved in ANYTIME:
        rows.append(anytime(task, batch, halved, budget, args.threads))
    if not args.no_optuna:
        rows.append(run_optuna(task, budget))
    rows.append(summary(task, rows))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="diabetes,digits", help="comma-separated: diabetes, digits")
    parser.add_argument("--csv", default=None, help="the diabetes CSV (default: shared/data/diabetes.csv)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every task (default: 270 / 135)")
    parser.add_argument("--samples", default="243,729", help="larger random samples to halve down")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--optuna-budget", type=float, default=None, help="seconds (default: the grid's time)")
    parser.add_argument("--no-optuna", action="store_true")
    parser.add_argument("--figure", default=None)
    parser.add_argument("--replot", default=None, help="draw --figure from a run's saved output, run nothing")
    args = parser.parse_args(argv)
    if args.replot:
        replot(args.replot, args.figure or "search.png")
        return
    args.samples = [int(s) for s in args.samples.split(",") if s]
    torch.set_num_threads(args.threads)
    machine = {
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
    }
    results: dict[str, list[dict[str, Any]]] = {}
    for name in [t for t in args.tasks.split(",") if t]:
        if name not in EPOCHS:
            raise SystemExit(f"search.py: unknown task {name!r}; use {', '.join(EPOCHS)}")
        epochs = args.epochs or EPOCHS[name]
        task = diabetes(args.csv, epochs) if name == "diabetes" else digits(epochs)
        rows = run_task(task, args)
        for row in rows:
            row.update(task=name, epochs=epochs, **machine)
            print(json.dumps(row), flush=True)
        results[name] = rows
    if args.figure:
        figure(results, args.figure)


if __name__ == "__main__":
    main()
