"""Why inverted dropout divides by (1 - p): the tutorial's numpy function, measured.

The tutorial's numpy dropout keeps each unit with probability ``retain = 1 - p``
and returns ``x * mask / retain``. Its author asked why the division is
there. This script answers with numbers:

1. with the division ("inverted dropout") the expected output equals the
   input, E[out] = x, so the network needs no change at evaluation time;
2. without it, E[out] = (1 - p) x at training time, so evaluation must
   multiply by (1 - p) ("the test-time multiply-by-p alternative", with p the
   retain probability in the original paper); forgetting it feeds the next
   layer activations 1 / (1 - p) times larger than it was trained on;
3. the keyed ``regfn.dropout`` is the same rule, with a key instead of a
   global generator: the same key gives the same mask, anywhere.

    python examples/numpy_dropout.py
    python examples/numpy_dropout.py --p 0.2 --samples 100000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import regfn
import regfn.random as rr


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--p", type=float, default=0.5, help="drop probability, in [0, 1)")
    parser.add_argument("--samples", type=int, default=20000, help="dropout draws to average over")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    p, n = args.p, args.samples
    keep = 1.0 - p
    x = np.array([1.0, 2.0, -0.5, 3.0])
    rng = np.random.default_rng(args.seed)
    np.set_printoptions(precision=4, suppress=True)

    # 1. inverted dropout (the tutorial's function, regfn.nn.numpy_dropout)
    inverted = np.stack([regfn.nn.numpy_dropout(x, p, rng) for _ in range(n)])
    # 2. the alternative: drop without rescaling at train time
    masks = rng.binomial(1, keep, size=(n, x.size))
    plain = x * masks

    print(f"x = {x}, drop probability p = {p}, retain = 1 - p = {keep}, {n} draws\n")
    print("one draw of the tutorial's numpy_dropout(x, p):", regfn.nn.numpy_dropout(x, p, np.random.default_rng(1)))
    print(f"  kept units are scaled by 1/(1-p) = {1 / keep:g}; dropped ones are 0\n")
    print(f"{'':34s}{'train: mean over draws':>26s}   {'eval (dropout off)':>20s}")
    rows = [
        ("inverted: x*mask/(1-p)", inverted.mean(0), x),
        ("no scaling: x*mask", plain.mean(0), x * keep),
        ("no scaling, eval forgets (1-p)", plain.mean(0), x),
    ]
    for name, train_mean, eval_out in rows:
        print(f"{name:34s}{np.array2string(train_mean):>26s}   {np.array2string(eval_out):>20s}")
    ratio = x / plain.mean(0)
    print(
        f"\n* inverted dropout: E[out] = x at train time (mean above), so evaluation uses x as is.\n"
        f"* no scaling: E[out] = (1-p) x = {np.array2string(x * keep)} at train time; evaluation must\n"
        f"  multiply by (1-p) = {keep} to match what the next layer saw in training.\n"
        f"* forget that and the next layer gets inputs {ratio.mean():.2f}x (= 1/(1-p)) larger than in\n"
        f"  training (with a sigmoid output: logits {1 / keep:g}x too large, an overconfident model; p=0.9 gives 10x).\n"
        f"* the spread is the same either way up to the scale: Var[inverted] = x^2 p/(1-p) "
        f"= {np.array2string(x**2 * p / keep)}, measured {np.array2string(inverted.var(0))}"
    )

    # 3. keyed dropout: regfn.dropout(key, x, p)
    xt = torch.tensor(x, dtype=torch.float32)
    key = rr.key(args.seed)
    a = regfn.dropout(key, xt, p)
    b = regfn.dropout(key, xt, p)
    c = regfn.dropout(rr.fold_in(key, 1), xt, p)
    keys = rr.split(key, n)
    means = torch.func.vmap(lambda k: regfn.dropout(k, xt, p))(keys).mean(0)
    print(
        f"\nregfn.dropout(key, x, p) = {a.numpy()}  (same rule: where(mask, x / (1-p), 0))\n"
        f"  same key again:          {b.numpy()}  identical: {bool(torch.equal(a, b))}\n"
        f"  another key:             {c.numpy()}\n"
        f"  mean over {n} keys (one vmap call): {means.numpy()}  (= x)\n"
        f"  train=False returns x itself: {regfn.dropout(None, xt, p, train=False) is xt}"
    )
    mask = np.asarray(a.numpy() != 0)
    print(f"  the numpy formula with regfn's mask, x*mask/(1-p) = {x * mask / keep}: equal to regfn.dropout")
    try:
        regfn.nn.numpy_dropout(x, 1.0, np.random.default_rng(0))
    except ValueError as err:
        print(f"\nnumpy_dropout(x, 1.0) -> ValueError: {err}")


if __name__ == "__main__":
    main()
