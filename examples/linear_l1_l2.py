"""The tutorial's last example, Linear(10, 1) with MSE, l1_lambda and l2_lambda, on data with a known sparse truth.

The tutorial adds ``l1_lambda * sum|w| + l2_lambda * sum w^2`` to the MSE
and runs SGD. Gradient steps on |w| (a subgradient, sign(w)) shrink the
weights but make each one jump over zero and back: they end up small, not
zero. A proximal step (soft thresholding, ``regfn.optim.prox_l1`` chained
after ``sgd``) minimizes the same objective and lands exactly on zero for
the weights the data does not support.

The data (``regfn.data.sparse_regression``) has 10 features of which only a
few carry signal, so we know which weights should be zero.

    python examples/linear_l1_l2.py
    python examples/linear_l1_l2.py --l1 0.1 --informative 2 --epochs 2000
"""

from __future__ import annotations

import argparse

import torch

import regfn
import regfn.random as rr


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="examples")
    parser.add_argument("--d", type=int, default=10, help="features (the tutorial: 10)")
    parser.add_argument("--informative", type=int, default=3, help="non-zero true weights")
    parser.add_argument("--l1", type=float, default=0.05, help="l1_lambda: strength of l1 * sum|w|")
    parser.add_argument("--l2", type=float, default=1e-3, help="l2_lambda: strength of l2/2 * sum w^2")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    k_data, k_run = rr.split(rr.key(args.seed))
    data, w_true = regfn.data.sparse_regression(k_data, args.n, args.d, n_informative=args.informative)
    model = regfn.mlp((args.d, 1), output="identity")  # the tutorial's nn.Linear(10, 1)
    weights = {"fc1.weight"}  # penalize the weights, not the bias

    runs = {
        # The tutorial: both penalties in the loss, plain gradient (subgradient) steps.
        "subgradient": regfn.train(
            model,
            data,
            optimizer=regfn.optim.sgd(args.lr),
            key=k_run,
            loss="mse",
            epochs=args.epochs,
            penalties=[regfn.l1(args.l1, mask=weights), regfn.l2(args.l2, mask=weights)],
        ),
        # The same objective, the L1 part as a proximal step after each SGD step.
        "prox_l1": regfn.train(
            model,
            data,
            key=k_run,
            loss="mse",
            epochs=args.epochs,
            penalties=[regfn.l2(args.l2, mask=weights)],
            optimizer=regfn.optim.chain(
                regfn.optim.sgd(args.lr), regfn.optim.prox_l1(args.l1, lr=args.lr, mask=weights)
            ),
        ),
    }
    learned = {name: run.params["fc1.weight"][0] for name, run in runs.items()}

    print(
        f"sparse regression: n={args.n}, d={args.d}, {args.informative} non-zero true weights; "
        f"MSE + {args.l1:g} * sum|w| + {args.l2:g}/2 * sum w^2, SGD lr {args.lr}, {args.epochs} epochs\n"
    )
    print(f"{'feature':>8s}{'true w':>10s}{'subgradient':>14s}{'prox_l1':>12s}")
    for j in range(args.d):
        cells = [f"{float(learned[n][j]):.3e}" if learned[n][j] != 0 else "0" for n in runs]
        print(f"{f'x{j}':>8s}{float(w_true[j]):10.3f}{cells[0]:>14s}{cells[1]:>12s}")
    truth_zero = w_true == 0
    print()
    for name, w in learned.items():
        exact = int((w == 0).sum())
        hit = int(((w == 0) & truth_zero).sum())
        tiny = int((w.abs() < 1e-3).sum())
        largest_off = float(w[truth_zero].abs().max()) if truth_zero.any() else 0.0
        print(
            f"{name:>12s}: {exact} exact zeros ({hit} of the {int(truth_zero.sum())} true zeros), {tiny} below 1e-3, "
            f"largest weight off the support {largest_off:.2e}, train MSE {runs[name].metrics['mse']:.4f}"
        )
    print(
        "\nThe subgradient leaves tiny non-zeros (each step overshoots zero by up to lr * l1); "
        "soft thresholding sets them to exactly 0."
    )


if __name__ == "__main__":
    main()
