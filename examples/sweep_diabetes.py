"""The study the tutorial could not do: hundreds of (l1, l2, dropout p, seed) settings in one call.

The tutorial trains one diabetes MLP (8-6-4-1) per setting, by hand.
``regfn.sweep`` trains every configuration of a grid at once
(``torch.func.vmap`` over configurations), evaluates each on a validation
split with dropout off, and returns a table. Seeds give the spread: a
setting is only better than another if it wins across seeds.

Without ``--csv`` it runs on a synthetic stand-in of the diabetes table
(768 x 8, see ``examples/diabetes.py``).

    python examples/sweep_diabetes.py                         # 192 configs, table, figures in sweep-diabetes/
    python examples/sweep_diabetes.py --csv path/to/diabetes.csv --epochs 1000 --seeds 8
    python examples/sweep_diabetes.py --device cuda --compile --seeds 32
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

import torch

import regfn
import regfn.random as rr


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--csv", help="the diabetes table (default: a synthetic stand-in of the same shape)")
    parser.add_argument("--l1", type=floats, default=[0.0, 1e-4, 1e-3, 1e-2])
    parser.add_argument("--l2", type=floats, default=[0.0, 1e-3, 1e-2, 1e-1])
    parser.add_argument("--p", type=floats, default=[0.0, 0.25, 0.5])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 per setting")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("sweep-diabetes"), help="results and figures")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the step (pays off on CUDA, not on CPU)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = regfn.data.load_csv(args.csv) if args.csv else regfn.data.synthetic_diabetes(rr.key(0))
    train, val = regfn.data.train_val_split(rr.key(1), data, 0.2, stratify=True)
    train, val, _ = regfn.data.standardize(train, val)
    model = regfn.mlp((data.n_features, 6, 4, 1), output="logits")  # the tutorial's net; BCE on logits
    configs = regfn.grid(
        l1=args.l1, l2=args.l2, p=args.p, seed=range(args.seeds), lr=[args.lr], momentum=[args.momentum]
    )
    print(
        f"{len(configs)} configs (l1 {len(args.l1)} x l2 {len(args.l2)} x p {len(args.p)} x {args.seeds} seeds), "
        f"{args.epochs} epochs, on {args.csv or 'the synthetic stand-in'} ({len(train)} train / {len(val)} val rows)"
    )

    result = regfn.sweep(
        model,
        train,
        configs,
        val=val,
        loss="bce_logits",
        epochs=args.epochs,
        device=args.device,
        compile=args.compile,
        quiet=True,
    )
    t = result.timings
    print(
        f"trained in {t['total_s']:.1f} s ({len(configs) * args.epochs / t['run_s']:,.0f} config-epochs/s); "
        f"{len(result.diverged)} diverged\n"
    )
    print("best single runs by validation accuracy:")
    print(result.table(args.top, columns=["config", "l1", "l2", "p", "seed", "loss", "acc", "val_acc", "zero_frac"]))

    # Rank settings by their mean over seeds: one lucky seed is not a better setting.
    groups: dict[tuple, list[float]] = {}
    for row in result.rows:
        groups.setdefault((row["l1"], row["l2"], row["p"]), []).append(row["val_acc"])
    ranked = sorted(groups.items(), key=lambda kv: -statistics.fmean(kv[1]))
    print(f"\nbest settings by mean validation accuracy over {args.seeds} seeds:")
    print(f"{'l1':>8s}{'l2':>8s}{'p':>6s}{'mean':>8s}{'std':>8s}")
    for (l1, l2, p), accs in ranked[: args.top]:
        std = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        print(f"{l1:8.0e}{l2:8.0e}{p:6.2f}{statistics.fmean(accs):8.3f}{std:8.3f}")
    base = groups.get((0.0, 0.0, 0.0))
    if base:
        print(f"no regularization (l1=l2=p=0): {statistics.fmean(base):.3f} ± {statistics.pstdev(base):.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out / "results.csv")
    written = [args.out / "results.csv"]
    if not args.no_plots:
        try:
            from regfn import plot

            written += plot.plot_all(result, args.out)
        except ImportError as err:
            print(f"figures skipped: {err}")
    print("\nwrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
