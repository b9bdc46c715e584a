"""The ``regfn`` command: ``regfn sweep`` (many configurations at once) and ``regfn train`` (one).

Both run anywhere right after ``pip install regfn``: without ``--csv`` they
use the tutorial's synthetic quadrant data (``regfn.data.quadrants``, drawn
from ``--data-seed``). With ``--csv`` they read a numeric table in the
tutorial's format (header row, label column last unless ``--target`` says
otherwise). Features are standardized with the training split's statistics.
A 0/1 target is a binary task (the model outputs logits, loss
``bce_logits``); any other target is regression (identity output, ``mse``).

Lists of values (``--l1``, ``--l2``, ``--norm2``, ``--weight-decay``,
``--p``, ``--lr``, ``--momentum``) are comma-separated items, each one of:

* a number: ``1e-3``;
* a log range ``LOW:HIGH:N``: N log-spaced values, both ends included, both
  ends > 0 (``1e-5:1e-1:5`` is 1e-5, 1e-4, ..., 1e-1);
* a linear range ``lin:LOW:HIGH:N``: N evenly spaced values, ends included.

so ``--l2 0,1e-4:1e-1:4`` sweeps 0, 1e-4, 1e-3, 1e-2, 1e-1. Seeds:
``--seeds 4`` is seeds 0, 1, 2, 3; ``--seeds 0,5,9`` (or ``--seeds 7,`` for
the single seed 7) lists them; ``--seeds 10:14`` is 10, 11, 12, 13.

``torch.compile`` is on by default only on CUDA: on CPU, for these small
models, compilation takes far longer than it saves (see docs/benchmarks/).
``--compile`` / ``--no-compile`` override it. On CPU the command uses one
thread by default (``--threads``): these models are too small for intra-op
parallelism, which made the default sweep several times slower on a busy
machine (see docs/benchmarks/).

Bad input ends with one line ``regfn: error: <message>`` on stderr and exit
status 2.

Examples:
    >>> from regfn.cli import main, parse_values
    >>> parse_values("0,1e-4:1e-1:4")
    [0.0, 0.0001, 0.001, 0.01, 0.1]
    >>> main(["train", "--n", "64", "--epochs", "20", "--quiet"])
    train accuracy ... (dropout off); ... s
    final training objective ... (data loss with dropout on, epoch 20)
    final data loss with dropout off: train ..., validation ...
    0
    >>> import contextlib, sys
    >>> with contextlib.redirect_stderr(sys.stdout):  # bad input: one line on stderr, status 2
    ...     main(["train", "--p", "2"])
    regfn: error: ...
    2
"""

from ._errors import CLIError as CLIError
from ._main import PROG as PROG
from ._main import build_parser as build_parser
from ._main import main as main
from ._values import parse_hidden as parse_hidden
from ._values import parse_seeds as parse_seeds
from ._values import parse_values as parse_values

__all__ = ["PROG", "CLIError", "build_parser", "main", "parse_hidden", "parse_seeds", "parse_values"]
