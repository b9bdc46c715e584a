"""regfn: dropout and L1/L2 regularization for PyTorch, written the JAX way.

Models are pure functions over parameter dicts, dropout takes explicit keys
(JAX-compatible threefry), penalties wrap loss functions, optimizers are pure
``init``/``update`` pairs, and :func:`sweep` trains many regularization
settings at once with ``torch.func.vmap``.

Importing regfn has no side effects.
"""

from . import data as data
from . import losses as losses
from . import nn as nn
from . import optim as optim
from . import penalties as penalties
from . import plot as plot
from . import random as random
from . import search as search
from ._sweep import grid as grid
from ._sweep import sweep as sweep
from ._train import TrainResult as TrainResult
from ._train import train as train
from ._verify import VerifyReport as VerifyReport
from ._verify import verify as verify
from ._version import __version__ as __version__
from .losses import Loss as Loss
from .nn import Model as Model
from .nn import dropout as dropout
from .nn import from_module as from_module
from .nn import functionalize as functionalize
from .nn import mc_dropout as mc_dropout
from .nn import mlp as mlp
from .penalties import elastic_net as elastic_net
from .penalties import l1 as l1
from .penalties import l2 as l2
from .penalties import norm as norm
from .penalties import penalize as penalize
from .penalties import penalty_value as penalty_value
from .penalties import weights_only as weights_only
from .results import SweepResult as SweepResult

__all__ = [
    "Loss",
    "Model",
    "SweepResult",
    "TrainResult",
    "VerifyReport",
    "data",
    "dropout",
    "elastic_net",
    "from_module",
    "functionalize",
    "grid",
    "l1",
    "l2",
    "losses",
    "mc_dropout",
    "mlp",
    "nn",
    "norm",
    "optim",
    "penalize",
    "penalties",
    "penalty_value",
    "plot",
    "random",
    "search",
    "sweep",
    "train",
    "verify",
    "weights_only",
]
