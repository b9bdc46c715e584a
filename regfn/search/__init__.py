"""Search, not just grids: spaces, keyed random and Sobol sampling, and an Optuna adapter.

A space says where one hyperparameter's values may fall: :func:`uniform`,
:func:`loguniform`, :func:`choice`, :func:`randint` (every upper end
exclusive). :func:`sample` draws ``n`` configurations from a key, randomly or
along a scrambled Sobol sequence, for any sweepable hyperparameter (the seed
included); the list goes straight into :func:`regfn.sweep`. The same key gives
the same configurations on any machine. :func:`optuna_sweep` lets an Optuna
study choose the configurations, a batch per sweep (``pip install
"regfn[optuna]"``; Optuna is imported only when it is called). Schedules
(:func:`successive_halving`, :func:`hyperband`, :func:`pbt`) go to
``regfn.sweep(..., schedule=...)`` and stop or copy configurations as they
train, inside the one vmapped sweep.

Examples:
    >>> import regfn
    >>> from regfn.search import choice, loguniform, sample
    >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
    >>> configs = sample(regfn.random.key(1), 4, method="sobol", l2=loguniform(1e-5, 1e-1), p=choice([0.0, 0.25]))
    >>> result = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data, configs, epochs=3,
    ...                      compile=False, quiet=True)
    >>> len(result), [row["l2"] for row in result.rows] == [c["l2"] for c in configs]
    (4, True)
"""

from ._optuna import optuna_sweep as optuna_sweep
from ._sample import METHODS as METHODS
from ._sample import sample as sample
from ._sample import sobol_seed as sobol_seed
from ._schedules import PBT as PBT
from ._schedules import Hyperband as Hyperband
from ._schedules import Schedule as Schedule
from ._schedules import SuccessiveHalving as SuccessiveHalving
from ._schedules import hyperband as hyperband
from ._schedules import pbt as pbt
from ._schedules import successive_halving as successive_halving
from ._space import Choice as Choice
from ._space import LogUniform as LogUniform
from ._space import RandInt as RandInt
from ._space import Space as Space
from ._space import Uniform as Uniform
from ._space import choice as choice
from ._space import loguniform as loguniform
from ._space import randint as randint
from ._space import uniform as uniform

__all__ = [
    "METHODS",
    "PBT",
    "Choice",
    "Hyperband",
    "LogUniform",
    "RandInt",
    "Schedule",
    "Space",
    "SuccessiveHalving",
    "Uniform",
    "choice",
    "hyperband",
    "loguniform",
    "optuna_sweep",
    "pbt",
    "randint",
    "sample",
    "sobol_seed",
    "successive_halving",
    "uniform",
]
