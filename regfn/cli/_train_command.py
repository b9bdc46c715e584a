"""``regfn train``: its parser (options and examples) and its handler, one :func:`regfn.train` run.

The handler prints the tutorial's ``Epoch [e/E], Loss: ...`` lines, then the
final accuracy (or MSE) with dropout off and the two final losses.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from .._hparams import LAYER_RATE_NAMES, OPTIMIZER_ARGS
from .._preflight import task_loss
from .._sweep._program import PENALTIES, build_optimizer
from ._argtypes import positive_int
from ._data import add_data_options, load_data
from ._errors import CLIParser
from ._formatting import fmt
from ._hparam_options import (
    OPTION_NAMES,
    add_hparam_options,
    apply_optimizer_defaults,
    check_label_smoothing,
    layer_rates,
)
from ._model import build_model
from ._training import add_training_options, pick_device, set_threads

__all__ = ["add_train_parser", "run_train"]

_TRAIN_EPILOG = """\
examples:
  regfn train                                    # one run on the quadrant data
  regfn train --p 0.5 --l2 1e-3 --epochs 2000 --lr 0.01
  regfn train --csv diabetes.csv --hidden 6,4 --p 0.5 --l1 1e-3 --seed 3
  regfn train --data digits --model cnn --optimizer adam --lr 1e-2 --batch-size 128 --epochs 20

prints the loss every --log-every epochs as the tutorial does
(Epoch [100/2000], Loss: 0.6543): the training objective, i.e. the data loss
with dropout on plus the penalties, before that epoch's last step. Then the
final train/validation accuracy (or MSE) with dropout off, the final training
objective, and the data loss with dropout off (without penalties): the loss
of the model as evaluated.
"""


def add_train_parser(
    sub: argparse._SubParsersAction[CLIParser], formatter: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """The ``train`` subcommand's parser, on the ``regfn`` command's subparsers ``sub``."""
    tr = sub.add_parser(
        "train",
        help="train one configuration and print the tutorial's loss lines",
        description="Train one configuration (regfn.train), print 'Epoch [e/E], Loss: ...' lines "
        "and the final accuracy (or MSE) with dropout off.",
        epilog=_TRAIN_EPILOG,
        formatter_class=formatter,
    )
    add_data_options(tr)
    add_training_options(tr)
    g = tr.add_argument_group("hyperparameters (one value each)")
    add_hparam_options(g, many=False)
    g.add_argument("--seed", type=int, default=0, help="run seed (initial weights, dropout masks, batch order)")
    g.add_argument("--epochs", type=positive_int, default=500, help="passes over the training data")
    g.add_argument("--log-every", type=positive_int, default=100, help="print the loss every this many epochs")
    g.add_argument("--quiet", action="store_true", help="only the final metrics")
    return tr


def _train_rates(args: argparse.Namespace) -> float | tuple[float, ...]:
    """``--p``, or one rate per dropout call when some ``--p<i>`` is given (the others take ``--p``)."""
    rates = layer_rates(args)
    if not rates:
        return float(args.p)
    given = (getattr(args, name) for name in LAYER_RATE_NAMES[:rates])
    return tuple(float(args.p) if v is None else float(v) for v in given)


def run_train(args: argparse.Namespace) -> int:
    """Run ``regfn train``; returns the exit status (1 when the run diverged)."""
    import regfn

    train, val, desc = load_data(args)
    model, loss, model_desc, _ = build_model(args, train)
    check_label_smoothing(args, task_loss(train.task or "regression"), many=False)
    apply_optimizer_defaults(args, many=False)
    device = pick_device(args.device)
    compile_ = device.type == "cuda" if args.compile is None else args.compile
    set_threads(args.threads)
    train, val = train.to(device), (val.to(device) if val is not None else None)
    takes = OPTIMIZER_ARGS[args.optimizer]
    optimizer = build_optimizer(args.optimizer, {n: getattr(args, n) for n in takes if getattr(args, n) is not None})
    penalties = [PENALTIES[n](getattr(args, n)) for n in PENALTIES if getattr(args, n)]
    if not args.quiet:
        print(f"regfn train: {desc}")
        shown = [n for n in OPTION_NAMES if getattr(args, n) or n in ("lr", "p")]
        hp = ", ".join(f"{n}={fmt(getattr(args, n))}" for n in shown if getattr(args, n) is not None)
        print(
            f"model {model_desc}, {args.optimizer}, {hp}, seed {args.seed}",
            flush=True,
        )

    def on_log(entry: dict[str, float]) -> None:
        if not args.quiet:
            print(f"Epoch [{int(entry['epoch'])}/{args.epochs}], Loss: {entry['loss']:.4f}", flush=True)

    t0 = time.perf_counter()
    run = regfn.train(
        model,
        train,
        optimizer=optimizer,
        key=regfn.random.key(args.seed, impl=args.key_impl).to(device),
        loss=loss,
        penalties=penalties,
        p=_train_rates(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        val=val,
        log_every=args.log_every,
        on_log=on_log,
        compile=compile_,
        hparams={"label_smoothing": args.label_smoothing} if loss == "cross_entropy" and args.label_smoothing else None,
    )
    seconds = time.perf_counter() - t0
    metric = "acc" if "acc" in run.metrics else "mse"
    name = "accuracy" if metric == "acc" else "MSE"
    line = f"train {name} {run.metrics[metric]:.4f}"
    if run.val_metrics:
        line += f", validation {name} {run.val_metrics[metric]:.4f}"
    print(f"{line} (dropout off); {seconds:.1f} s")
    # Two different losses: the Epoch lines print what the optimizer minimised (dropout on, penalties
    # added); the model itself is judged with dropout off, on the data loss alone.
    objective = run.history[-1]["loss"] if run.history else math.nan
    batch = ", last mini-batch" if args.batch_size is not None and args.batch_size < len(train) else ""
    print(
        f"final training objective {objective:.4f} (data loss with dropout {'on' if args.p else 'off (p=0)'}"
        f"{' + penalties' if penalties else ''}, "
        f"epoch {args.epochs}{batch}{'' if args.quiet else ': the Loss of the Epoch lines'})"
    )
    line = f"final data loss with dropout off: train {run.metrics['loss']:.4f}"
    if run.val_metrics:
        line += f", validation {run.val_metrics['loss']:.4f}"
    if penalties:
        line += f" (penalties {run.metrics['penalty']:.4f} not included)"
    print(line)
    if run.diverged:
        print("the run diverged (NaN/inf loss or weights); try a smaller --lr", file=sys.stderr)
        return 1
    return 0
