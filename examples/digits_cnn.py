"""The tutorial's question asked of a CNN: which dropout rate and L2 strength help, over several seeds, in one sweep.

The tutorial asks it of an 8-6-4-1 MLP on a table. Here the model is a small
convolutional network (an ordinary ``nn.Module``) on scikit-learn's 8x8
handwritten digits (1,797 images, 10 classes, no download):

    Conv2d(1, 16, 3, padding=1) ReLU Dropout Conv2d(16, 32, 3, padding=1) ReLU Dropout
    MaxPool2d(2) -> 32 x 4 x 4 -> Linear(512, 10)

``regfn.from_module`` makes it a pure model (each seed its own keyed
initialisation; every dropout call takes the configuration's ``p``), and one
``regfn.sweep`` trains every (l2, p, seed) configuration with Adam on
mini-batches of 64, cross-entropy, evaluated on a stratified 20% validation
split with dropout off. A setting is ranked by its mean validation accuracy
over seeds, and compared with no regularization (l2 = 0, p = 0) against the
spread over seeds.

The answer with the defaults (one run, 2026-11-29): neither helps this CNN on
this data in 15 epochs. No regularization and l2 = 1e-4 tie at 0.9833 ± 0.0028
(mean ± std over 3 seeds); p = 0.1 gives 0.9824, p = 0.25 about 0.978, p = 0.5
about 0.971, and l2 = 1e-2 costs about a point at every rate. The differences
among the best settings are a few validation images, within the seed spread.
(``compile="auto"`` then chose eager: 658 s on a busy 2-core CPU; its rule
is now a fixed function of the workload, which compiles this one.)

    python examples/digits_cnn.py                          # 4 l2 x 4 p x 3 seeds = 48 configs, figures in digits-cnn/
    python examples/digits_cnn.py --seeds 5 --epochs 30
    python examples/digits_cnn.py --quick                  # a few configs, two epochs (the test)

Needs scikit-learn for the data (``pip install 'regfn[datasets]'``); figures
need matplotlib (skipped with a note without it).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

import torch
import torch.nn.functional as F
from torch import nn

import regfn
import regfn.random as rr


class DigitsCNN(nn.Module):
    """Two padded 3x3 convolutions with ReLU and dropout, a 2x2 max pool, one linear layer: 8x8 -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.drop1 = nn.Dropout(0.25)  # the sweep's p replaces the rate
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.drop2 = nn.Dropout(0.25)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = self.drop1(F.relu(self.conv1(x)))
        x = self.drop2(F.relu(self.conv2(x)))
        return self.fc(F.max_pool2d(x, 2).flatten(1))


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--l2", type=floats, default=[0.0, 1e-4, 1e-3, 1e-2], help="L2 strengths (l2/2 * sum w**2)")
    parser.add_argument("--p", type=floats, default=[0.0, 0.1, 0.25, 0.5], help="dropout rates (both dropout layers)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per setting")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("digits-cnn"), help="results and figures")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--compile", choices=["auto", "on", "off"], default="auto", help="torch.compile the step (auto: when it pays)"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (one is fastest on a busy machine)")
    parser.add_argument("--quick", action="store_true", help="l2 0,1e-3 x p 0,0.25 x 2 seeds, 2 epochs, eager")
    args = parser.parse_args(argv)
    if args.quick:
        args.l2, args.p, args.seeds, args.epochs, args.compile = [0.0, 1e-3], [0.0, 0.25], 2, 2, "off"
    torch.set_num_threads(args.threads)

    data = regfn.data.digits()  # (1797, 1, 8, 8) in [0, 1], labels 0..9
    train, val = regfn.data.train_val_split(rr.key(0), data, 0.2)  # stratified by class, keyed
    model = regfn.from_module(DigitsCNN())
    configs = regfn.grid(l2=args.l2, p=args.p, seed=range(args.seeds), lr=[args.lr])
    print(
        f"{len(configs)} configs (l2 {len(args.l2)} x p {len(args.p)} x {args.seeds} seeds), {args.epochs} epochs, "
        f"Adam lr {args.lr:g}, mini-batches of 64, on digits ({len(train)} train / {len(val)} val images)"
    )

    result = regfn.sweep(
        model,
        train,
        configs,
        val=val,
        loss="cross_entropy",
        optimizer="adam",
        batch_size=64,
        epochs=args.epochs,
        compile={"auto": "auto", "on": True, "off": False}[args.compile],
        threads=args.threads,
        quiet=True,
    )
    t = result.timings
    print(
        f"trained in {t['total_s']:.1f} s (compile {t['compile_s']:.1f} s, "
        f"compiled: {result.settings['compile']}); {len(result.diverged)} diverged\n"
    )
    print("best single runs by validation accuracy:")
    print(result.table(args.top, columns=["config", "l2", "p", "seed", "loss", "acc", "val_loss", "val_acc"]))

    # A setting is only better than another if it wins on average over seeds.
    groups: dict[tuple[float, float], list[float]] = {}
    for row in result.rows:
        groups.setdefault((row["l2"], row["p"]), []).append(row["val_acc"])
    ranked = sorted(groups.items(), key=lambda kv: -statistics.fmean(kv[1]))
    print(f"\nbest settings by mean validation accuracy over {args.seeds} seeds:")
    print(f"{'l2':>8s}{'p':>6s}{'mean':>8s}{'std':>8s}")
    for (l2, p), accs in ranked[: args.top]:
        mean, std = mean_std(accs)
        print(f"{l2:8.0e}{p:6.2f}{mean:8.4f}{std:8.4f}")

    print("\nthe answer on this data:")
    (best_l2, best_p), best_accs = ranked[0]
    best_mean, best_std = mean_std(best_accs)
    base = groups.get((0.0, 0.0))
    if base is None:
        print(f"  best setting l2={best_l2:g}, p={best_p:g}: {best_mean:.4f} ± {best_std:.4f} (no l2=0, p=0 baseline)")
    else:
        base_mean, base_std = mean_std(base)
        gain = best_mean - base_mean
        spread = max(best_std, base_std)
        print(f"  no regularization (l2=0, p=0): {base_mean:.4f} ± {base_std:.4f} (mean ± std over seeds)")
        print(f"  best setting l2={best_l2:g}, p={best_p:g}: {best_mean:.4f} ± {best_std:.4f}")
        for name, axis in (("dropout alone", "p"), ("L2 alone", "l2")):
            # the other axis at 0, this one above 0
            alone = {k: v for k, v in groups.items() if (k[0] == 0.0 < k[1] if axis == "p" else k[1] == 0.0 < k[0])}
            if alone:
                (l2, p), accs = max(alone.items(), key=lambda kv: statistics.fmean(kv[1]))
                value = p if axis == "p" else l2
                diff = statistics.fmean(accs) - base_mean
                print(f"  {name}: best {axis}={value:g}, {diff:+.4f} against no regularization")
        if (best_l2, best_p) == (0.0, 0.0):
            verdict = "no: no regularization is the best setting"
        elif gain > spread:
            verdict = f"yes: {gain:+.4f}, more than the spread over seeds ({spread:.4f})"
        else:
            verdict = f"not clearly: {gain:+.4f}, within the spread over seeds ({spread:.4f})"
        print(f"  does regularization help? {verdict}")
        print(f"  ({gain * len(val):+.1f} of {len(val)} validation images)")

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
