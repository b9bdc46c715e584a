"""``regfn sweep``: its parser (options and examples) and its handler.

The handler loads the data, builds the model, turns the options into a grid
(or ``--search`` points), prints a header, runs :func:`regfn.sweep` and
hands the result to :mod:`._report`.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import warnings
from typing import TYPE_CHECKING, Any

from .._hparams import HPARAMS
from .._preflight import task_loss
from .._sweep._distributed import is_lead
from .._sweep._driver import ENGINES, bytes_per_config
from ._argtypes import auto_or_positive_int, positive_int, value_type
from ._data import add_data_options, cv_folds, load_data
from ._errors import CLIParser
from ._files import file_records
from ._formatting import count_of
from ._hparam_options import (
    OPTION_NAMES,
    add_hparam_options,
    apply_optimizer_defaults,
    check_label_smoothing,
    default_sweep_rates,
)
from ._model import build_model
from ._report import (
    add_output_options,
    check_metric,
    check_trackers,
    print_report,
    print_time,
    sweep_warnings,
    writable_out,
    write_results,
)
from ._schedule_options import add_schedule_options, schedule_of
from ._search import add_search_options, reject_search_ranges, search_configs, space_text
from ._training import add_training_options, pick_device, set_threads
from ._values import SearchRange, parse_seeds

if TYPE_CHECKING:
    import torch

__all__ = ["add_sweep_parser", "run_sweep"]

_LARGE_SWEEP = 10_000  # from this many configurations the header estimates the sweep's size

_SWEEP_EPILOG = """\
examples:
  regfn sweep                                    # defaults: quadrant data, l2 x p x 2 seeds
  regfn sweep --l2 0,1e-4:1e-1:8 --p lin:0:0.5:6 --seeds 4
  regfn sweep --csv diabetes.csv --target Outcome --l1 0,1e-4:1e-2:5 --epochs 1000
  regfn sweep --data digits --model cnn --optimizer adam --lr 1e-2 --batch-size 128 --epochs 20 --l2 0 \\
      --p1 0,0.25 --p2 0.5 --label-smoothing 0,0.1
  regfn sweep --data digits --model module:net.py:Net --optimizer adam --lr 1e-3,1e-2 --beta2 0.99,0.999
  regfn sweep --weight-decay 1e-4,1e-3 --optimizer adam --lr 1e-3,1e-2 --no-plots
  regfn sweep --device cuda --seeds 32 --l2 1e-6:1e-1:32 --p lin:0:0.6:7   # 7168 configs
  regfn sweep --device cuda --engine triton --seeds 32 --l2 1e-6:1e-1:32    # one fused kernel
  regfn sweep --search sobol:256 --l2 log:1e-6:1e-1 --p lin:0:0.6 --seeds 2  # 512 configs
  regfn sweep --cv 5 --l2 0,1e-4:1e-1:4                 # 5-fold cross-validation, all folds at once
  regfn sweep --schedule halving --min-epochs 10 --seeds 8  # stop the worst 2/3 at epochs 10, 30, 90

value lists: comma-separated numbers, LOW:HIGH:N (N log-spaced values, ends
included, ends > 0) or lin:LOW:HIGH:N (N evenly spaced values); e.g.
--l2 0,1e-4:1e-1:4 gives 0, 1e-4, 1e-3, 1e-2, 1e-1.
search: --search random:N or sobol:N samples N points (regfn.search.sample,
key regfn.random.key(--search-seed)) instead of the grid; there
log:LOW:HIGH is loguniform, lin:LOW:HIGH uniform (HIGH excluded), a list a
choice among its values, one value a constant. Each point runs with every
--seeds seed: N x seeds configs, and the summary averages each point's seeds.
seeds: --seeds 4 = seeds 0,1,2,3; --seeds 0,5,9 = those; --seeds 7, = seed 7;
--seeds 10:14 = 10,11,12,13.
models: mlp (--hidden, --activation; digits as 64 pixel features), cnn
(regfn.nn.small_cnn: two 3x3 convolutions with dropout, for the digits
images) or module:PATH.py:ClassName (your nn.Module, built with no arguments;
it gets the data as it is: (N, 1, 8, 8) images for the digits; its output:
one logit for binary data, one logit per class for multi-class data).
p sets every dropout call's rate; --p1 .. --p8 the first, second, ... call's.
penalties: l1 = s*sum|w|, l2 = s/2*sum w^2 (= SGD weight_decay s),
norm2 = s*sum_p ||p||_2 (the tutorial's), weight_decay = the optimizer's.
compile: auto by default, as regfn.sweep: on CUDA always; on CPU when the run is
long enough to pay for compiling, decided from the workload alone (the same
command makes the same choice); --compile / --no-compile to choose.
threads: 1 unless --threads N (the thread count can change bits).
output: results.csv, results.json, the best configuration's trained parameters
(params/: safetensors files and params.json; --save-params N for the N best, 0
for none) and PNG figures in --out (figures need matplotlib: pip install
'regfn[plot]').
"""


def add_sweep_parser(
    sub: argparse._SubParsersAction[CLIParser], formatter: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """The ``sweep`` subcommand's parser, on the ``regfn`` command's subparsers ``sub``."""
    sw = sub.add_parser(
        "sweep",
        help="train many regularization settings at once (one vmapped run) and tabulate them",
        description="Train every combination of the given hyperparameter values at once "
        "(torch.func.vmap over configurations), print the best, write CSV/JSON and figures.",
        epilog=_SWEEP_EPILOG,
        formatter_class=formatter,
    )
    add_data_options(sw, cv=True)
    add_training_options(sw)
    g = sw.add_argument_group("swept hyperparameters (value lists, see below)")
    add_hparam_options(g, many=True)
    g.add_argument(
        "--seeds",
        type=value_type(parse_seeds),
        default=[0, 1],
        metavar="SEEDS",
        help="run seeds (init, dropout, shuffle): N = 0..N-1, or a list 0,5,9, or START:STOP",
    )
    add_search_options(g)
    add_schedule_options(g)
    g.add_argument("--epochs", type=positive_int, default=300, help="passes over the training data")
    g = sw.add_argument_group("run and output")
    g.add_argument(
        "--chunk-size",
        type=auto_or_positive_int,
        default="auto",
        help="configurations per vmapped call ('auto': from free memory)",
    )
    g.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        default="vmap",
        help="vmap: any model, configurations batched; sequential: one configuration after another; "
        "triton: one fused CUDA kernel per config (relu MLPs)",
    )
    g.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        help="curve sampling interval in epochs (default: epochs // 20)",
    )
    add_output_options(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar and no header")
    g.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="save the chunks in DIR as they train; the same command again resumes from them",
    )
    g.add_argument("--checkpoint-every", type=positive_int, default=100, help="epochs between a running chunk's saves")
    return sw


def _print_header(
    args: argparse.Namespace,
    axes: dict[str, Any],
    swept: list[str],
    n_configs: int,
    desc: str,
    model_desc: str,
    device: torch.device,
) -> None:
    """What is about to run: the configurations (grid shape or search), the data, the model and the device."""
    if args.search is None:
        shape = f" ({' x '.join(f'{n} {len(axes[n])}' for n in swept)})" if swept else ""
        print(f"regfn sweep: {count_of(n_configs, 'config')}{shape} on {desc}")
    else:
        method, points = args.search
        seeds = len(args.seeds)
        spaces = ", ".join(f"{n} {space_text(axes[n])}" for n in swept if n != "seed") or "constants only"
        print(
            f"regfn sweep: {method} search: {points:,} points x {seeds} seed{'s' if seeds != 1 else ''} = "
            f"{n_configs:,} configs ({spaces}; --search-seed {args.search_seed}) on {desc}"
        )
    if n_configs >= _LARGE_SWEEP:
        size = n_configs * bytes_per_config(len(HPARAMS), args.epochs, args.log_every)
        print(
            f"size: about {size / 2**20:,.0f} MiB of rows and results on the host "
            "(the progress bar's ETA estimates the time from the first chunks)"
        )
    print(
        f"model {model_desc}, {args.optimizer}, {args.epochs} epochs, "
        f"{'full batch' if args.batch_size is None else f'batch {args.batch_size}'}, device {device}",
        flush=True,
    )


def run_sweep(args: argparse.Namespace) -> int:
    """Run ``regfn sweep``; returns the exit status."""
    import regfn

    train, val, desc = load_data(args)
    model, loss, model_desc, model_files = build_model(args, train)
    files = file_records(model_files, args.csv)  # hashed as read, for regfn verify
    args.loss_text = (
        None if isinstance(loss, str) else "mse on standardized targets (mse, val_mse in the targets' units)"
    )
    check_label_smoothing(args, task_loss(train.task or "regression"), many=True)
    apply_optimizer_defaults(args, many=True)
    if args.p is None:
        args.p = default_sweep_rates(args)
    device = pick_device(args.device)
    compile_ = "auto" if args.compile is None else args.compile
    set_threads(args.threads)
    axes: dict[str, Any] = {name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not None}
    configs: list[dict[str, Any]] | None = None
    if args.search is None:
        reject_search_ranges(axes)
        axes["seed"] = args.seeds
        n_configs = math.prod(len(v) for v in axes.values())  # the grid is built by regfn.sweep, after its size check
        swept = [n for n, v in axes.items() if len(v) > 1]
    else:
        configs = search_configs(args, axes)
        n_configs = len(configs)
        swept = [n for n, v in axes.items() if isinstance(v, SearchRange) or len(v) > 1]
        swept += ["seed"] if len(args.seeds) > 1 else []
    check_metric(args.by, train, val, validated=args.cv is not None)
    schedule = schedule_of(args)
    lead = is_lead()  # under torchrun, rank 0 prints and writes; the other ranks stay quiet
    out = writable_out(args.out) if lead else pathlib.Path(args.out)
    check_trackers(args)
    if not args.quiet and lead:
        _print_header(args, axes, swept, n_configs, desc, model_desc, device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = regfn.sweep(
            model,
            train,
            axes if configs is None else configs,
            val=val,
            cv=cv_folds(args, train),
            loss=None if isinstance(loss, str) else loss,  # a name: the data's task's (the settings say so)
            optimizer=args.optimizer,
            epochs=args.epochs,
            batch_size=args.batch_size,
            log_every=args.log_every,
            chunk_size=args.chunk_size,
            device=device,
            compile=compile_,
            quiet=args.quiet,
            threads=args.threads,
            engine=args.engine,
            key_impl=args.key_impl,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            schedule=schedule,
            # Only what --save-params writes (ranked as result.best() ranks; --by may rank otherwise).
            keep=max(args.save_params, 1) if args.by is None else "auto",
        )
    if result is None:  # another rank of a torchrun sweep: rank 0 has the results
        return 0
    result.provenance["argv"] = list(getattr(args, "argv", []))  # what `regfn verify` rebuilds the data from
    result.provenance["files"] = files
    for message in sweep_warnings(caught):
        if "diverged" not in message and "collapsed" not in message:
            print(f"regfn: warning: {message}", file=sys.stderr)
    print_report(result, args, swept)
    plots_s = write_results(result, out, args)
    print_time(result, args, plots_s)
    return 0
