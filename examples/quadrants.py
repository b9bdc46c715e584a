"""The tutorial's synthetic data, its scatter plot, and what dropout does to the decision boundary.

The tutorial draws X ~ N(0, 1) (2 x 200) and sets Y = 1 where both
coordinates have the same sign (quadrants I and III), then scatters it. Here
``regfn.data.quadrants(key, n)`` makes the same data from a key, and the
script trains the same MLP twice, without and with dropout, and draws the
two learned decision boundaries side by side (probability contours of the
network with dropout off).

    python examples/quadrants.py                       # prints accuracies
    python examples/quadrants.py --out figures/        # + quadrants_data.png, quadrants_boundary.png
    python examples/quadrants.py --p 0.5 --hidden 32,32 --epochs 1000 --out figures/
"""

from __future__ import annotations

import argparse
import pathlib
import time

import torch

import regfn
import regfn.random as rr


def figures(out: pathlib.Path, data, runs, model) -> list[pathlib.Path]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("figures skipped: matplotlib is not installed (pip install 'regfn[plot]')")
        return []
    out.mkdir(parents=True, exist_ok=True)
    x, y = data.x.numpy(), data.y[:, 0].numpy()

    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(x[y == 1, 0], x[y == 1, 1], s=14, c="C0", label="Y = 1 (same sign)")
    ax.scatter(x[y == 0, 0], x[y == 0, 1], s=14, c="C3", marker="x", label="Y = 0")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set(xlabel="x0", ylabel="x1", title=f"the tutorial's synthetic data (n={len(data)})")
    ax.legend(loc="upper right", fontsize=8)
    paths = [out / "quadrants_data.png"]
    fig.savefig(paths[0])

    lim = float(data.x.abs().max()) * 1.05
    g = torch.linspace(-lim, lim, 201)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    axes = fig.subplots(1, len(runs))
    for ax, (label, run, val_acc) in zip(axes, runs, strict=True):
        prob = torch.sigmoid(model.apply(run.params, grid)).reshape(gx.shape)  # dropout off
        cs = ax.contourf(gx.numpy(), gy.numpy(), prob.numpy(), levels=20, cmap="RdBu", vmin=0, vmax=1, alpha=0.8)
        ax.contour(gx.numpy(), gy.numpy(), prob.numpy(), levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(x[y == 1, 0], x[y == 1, 1], s=12, c="w", edgecolors="k", linewidths=0.6, label="Y = 1")
        ax.scatter(x[y == 0, 0], x[y == 0, 1], s=12, c="k", marker="x", linewidths=0.8, label="Y = 0")
        ax.set(xlabel="x0", ylabel="x1", title=f"{label}: train acc {run.metrics['acc']:.3f}, val acc {val_acc:.3f}")
        ax.title.set_fontsize(10)
        ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(cs, ax=list(axes), label="P(Y = 1), dropout off; black line: 0.5")
    fig.suptitle("decision boundary learned without and with dropout")
    paths.append(out / "quadrants_boundary.png")
    fig.savefig(paths[1])
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="points (the tutorial: 200)")
    parser.add_argument("--hidden", default="16,16", help="hidden widths")
    parser.add_argument("--p", type=float, default=0.3, help="dropout rate of the second run")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, help="folder for the PNG figures (default: no figures)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    k_train, k_val, k_run = rr.split(rr.key(args.seed), 3)
    data = regfn.data.quadrants(k_train, args.n)
    val = regfn.data.quadrants(k_val, 1000)  # fresh points from the same distribution
    print(
        f"quadrants: {len(data)} points, {float(data.y.mean()):.0%} in quadrants I and III; "
        f"validation: {len(val)} fresh points"
    )
    hidden = tuple(int(h) for h in args.hidden.split(","))
    model = regfn.mlp((2, *hidden, 1), output="logits")
    runs = []
    for label, p in (("no dropout", 0.0), (f"dropout p={args.p:g}", args.p)):
        t0 = time.perf_counter()
        run = regfn.train(
            model, data, optimizer=regfn.optim.sgd(args.lr, momentum=0.9), key=k_run, p=p, epochs=args.epochs, val=val
        )
        val_acc = run.val_metrics["acc"]
        print(
            f"{label:>16s}: train acc {run.metrics['acc']:.3f}, val acc {val_acc:.3f}, "
            f"train loss {run.metrics['loss']:.4f} ({time.perf_counter() - t0:.1f} s)"
        )
        runs.append((label, run, val_acc))
    if args.out is not None:
        for path in figures(args.out, data, runs, model):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
