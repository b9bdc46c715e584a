"""scikit-learn estimators and searches whose training is regfn's (``pip install 'regfn[sklearn]'``).

* :class:`NeuralNetClassifier`, :class:`NeuralNetRegressor`: a network (an
  MLP sized from the data, a regfn ``Model`` or any ``nn.Module``) with
  regfn's hyperparameters as estimator parameters; ``fit`` is one
  :func:`regfn.train` run, reproducible from ``seed``.
* :class:`GridSearchCV`, :class:`RandomizedSearchCV`: scikit-learn's
  constructors and ``cv_results_``, but every setting x fold trains in one
  vmapped :func:`regfn.sweep` (one per value of a parameter a sweep cannot
  vary, such as the hidden sizes), on an estimator or a ``Pipeline`` ending
  in one.
"""

from __future__ import annotations

try:
    import sklearn as _sklearn  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("regfn.sklearn needs scikit-learn: pip install 'regfn[sklearn]'") from err

from ._estimators import NeuralNetClassifier as NeuralNetClassifier
from ._estimators import NeuralNetRegressor as NeuralNetRegressor
from ._search import GridSearchCV as GridSearchCV
from ._search import RandomizedSearchCV as RandomizedSearchCV

__all__ = ["GridSearchCV", "NeuralNetClassifier", "NeuralNetRegressor", "RandomizedSearchCV"]
