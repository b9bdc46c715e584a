"""scikit-learn estimators around regfn's training: :class:`NeuralNetClassifier`, :class:`NeuralNetRegressor`.

An estimator's hyperparameters are regfn's (the names of :func:`regfn.sweep`'s
configurations, plus how it trains), ``fit`` runs :func:`regfn.train` with the
key ``regfn.random.key(seed)``, so a fitted estimator is the run a sweep's row
of the same configuration trains (see :mod:`regfn.sklearn._search`).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor
from torch import nn as tnn

from .. import optim
from .. import random as rr
from .._hparams import HPARAMS, OPTIMIZER_ARGS, optimizer_defaults
from .._row_blocks import predictions
from .._sweep._program import PENALTIES
from .._train import train
from ..data import Dataset
from ..nn import Model, from_module, mlp
from ..penalties import Penalty

__all__ = ["SWEEPABLE", "NeuralNetClassifier", "NeuralNetRegressor", "NeuralNetwork"]

SWEEPABLE: tuple[str, ...] = (
    "lr",
    "momentum",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "l1",
    "l2",
    "norm2",
    "p",
    "seed",
)
"""The estimator parameters a search trains side by side in one vmapped sweep (registry names)."""


class NeuralNetwork(BaseEstimator):
    """What the classifier and the regressor share: parameters, the model, the training run.

    Args:
        module: ``None`` (an MLP from :func:`regfn.nn.mlp`, sized from the
            data: ``(n_features, *hidden_layer_sizes, n_outputs)``, ReLU,
            dropout ``p`` after each hidden layer), a regfn ``Model``, an
            ``nn.Module`` instance or an ``nn.Module`` class (built with
            ``module_kwargs``); modules go through :func:`regfn.from_module`,
            which draws fresh weights from the seed.
        hidden_layer_sizes: the default MLP's hidden widths.
        module_kwargs: keyword arguments of an ``nn.Module`` class.
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"``.
        lr, momentum, weight_decay, beta1, beta2, eps: the optimizer's
            arguments (``None``: a sweep's default for that optimizer; only
            the arguments the optimizer takes may be set).
        l1, l2, norm2: penalty strengths (see :func:`regfn.sweep`).
        p: the dropout rate of every dropout call.
        epochs: passes over the data.
        batch_size: ``None`` (full batch) or the mini-batch size, clipped to
            the number of training rows.
        seed: the run's seed: weights, dropout masks and batch order.
        device: where to train (``"cpu"``, ``"cuda"``, ...).
        compile: ``torch.compile`` the step: a bool, or ``"auto"`` (not for
            one fit; a search hands it to :func:`regfn.sweep`).
    """

    def __init__(
        self,
        module: Any = None,
        *,
        hidden_layer_sizes: tuple[int, ...] = (32,),
        module_kwargs: dict[str, Any] | None = None,
        optimizer: str = "adam",
        lr: float = 0.01,
        momentum: float | None = None,
        weight_decay: float | None = None,
        beta1: float | None = None,
        beta2: float | None = None,
        eps: float | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
        norm2: float = 0.0,
        p: float = 0.0,
        epochs: int = 100,
        batch_size: int | None = None,
        seed: int = 0,
        device: str = "cpu",
        compile: bool | str = "auto",
    ) -> None:
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.module_kwargs = module_kwargs
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.l1 = l1
        self.l2 = l2
        self.norm2 = norm2
        self.p = p
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.compile = compile

    # ------------------------------------------------------------ what a subclass says

    _task: Any = "regression"

    def _loss(self) -> str:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------ shared with the searches

    def _where(self) -> str:
        return f"{type(self).__name__}"

    def hyperparameters(self) -> dict[str, Any]:
        """This estimator's configuration as :func:`regfn.sweep` takes it (checked, defaults filled in).

        Raises:
            ValueError: an unknown optimizer, a value out of range, or an
                optimizer argument the optimizer does not take.

        Examples:
            >>> NeuralNetRegressor(optimizer="sgd", lr=0.1, momentum=0.9, l2=1e-3).hyperparameters()
            {'lr': 0.1, 'momentum': 0.9, 'dampening': 0.0, 'weight_decay': 0.0, 'l1': 0.0, 'l2': 0.001, 'norm2': 0.0, 'p': 0.0, 'seed': 0}
        """
        where = self._where()
        if self.optimizer not in OPTIMIZER_ARGS:
            raise ValueError(f"{where}: optimizer must be one of {sorted(OPTIMIZER_ARGS)}, got {self.optimizer!r}")
        takes = OPTIMIZER_ARGS[self.optimizer]
        defaults = optimizer_defaults(self.optimizer)
        out: dict[str, Any] = {}
        for name in takes:
            value = getattr(self, name, None)
            out[name] = HPARAMS[name].check(defaults[name] if value is None else value, where)
        for name in ("momentum", "weight_decay", "beta1", "beta2", "eps"):
            if name not in takes and getattr(self, name) is not None:
                raise ValueError(f"{where}: optimizer {self.optimizer!r} takes {list(takes)}, not {name}")
        for name in ("l1", "l2", "norm2", "p", "seed"):
            out[name] = HPARAMS[name].check(getattr(self, name), where)
        return out

    def training_settings(self, n_rows: int) -> dict[str, Any]:
        """``epochs``, ``batch_size`` (clipped to ``n_rows``), ``loss`` and ``optimizer``, checked."""
        where = self._where()
        for name, value in (("epochs", self.epochs), ("batch_size", self.batch_size)):
            ok = value is None and name == "batch_size"
            if not ok and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1):
                raise ValueError(
                    f"{where}: {name} must be an int >= 1{' or None' * (name == 'batch_size')}, got {value!r}"
                )
        batch = None if self.batch_size is None else min(int(self.batch_size), n_rows)
        return {"epochs": int(self.epochs), "batch_size": batch, "loss": self._loss(), "optimizer": self.optimizer}

    def build_model(self, n_features: int, n_outputs: int) -> Model:
        """The regfn ``Model`` this estimator trains on data of ``n_features`` features and ``n_outputs`` outputs."""
        where = self._where()
        module = self.module
        if module is None:
            sizes = tuple(self.hidden_layer_sizes)
            if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
                raise ValueError(f"{where}: hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
            return mlp((n_features, *(int(s) for s in sizes), n_outputs), output="logits")
        if isinstance(module, Model):
            return module
        if isinstance(module, type) and issubclass(module, tnn.Module):
            module = module(**(self.module_kwargs or {}))
        if isinstance(module, tnn.Module):
            return from_module(module.to(self.device))
        raise TypeError(
            f"{where}: module must be None, a regfn Model, an nn.Module or an nn.Module class, got {type(module).__name__}"
        )

    def as_tensor(self, X: Any) -> Tensor:
        """Validated features as a float32 tensor on the estimator's device."""
        return torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device)

    # ------------------------------------------------------------ fit and predict

    def _fit(self, X: Any, targets: Tensor) -> NeuralNetwork:
        hp = self.hyperparameters()
        settings = self.training_settings(len(targets))
        x = self.as_tensor(X)
        data = Dataset(x, targets.to(x.device), task=self._task if self._task != "multiclass" else None)
        model = self.build_model(x.shape[1], self._n_outputs())
        penalties: list[Penalty] = [PENALTIES[n](hp[n]) for n in PENALTIES if hp[n]]
        takes = OPTIMIZER_ARGS[self.optimizer]
        run = train(
            model,
            data,
            optimizer=optim.optimizers()[self.optimizer].build({n: hp[n] for n in takes}),
            key=rr.key(hp["seed"], device=x.device),
            loss=settings["loss"],
            penalties=penalties,
            p=hp["p"],
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            compile=self.compile is True,
        )
        self.params_ = run.params
        self.history_ = run.history
        self.diverged_ = run.diverged
        return self

    def _forward(self, X: Any) -> Tensor:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False)
        with torch.no_grad():
            x = self.as_tensor(X)
            model = self.build_model(x.shape[1], self._n_outputs())  # rebuilt, not stored: a fitted net pickles
            return predictions(model, self.params_, x).cpu()  # in blocks of rows on a CPU


class NeuralNetClassifier(ClassifierMixin, NeuralNetwork):
    """A classifier trained by regfn: binary (one logit, ``"bce_logits"``) or multi-class (``"cross_entropy"``).

    Labels may be any values (strings included); ``classes_`` holds them
    sorted, and the network's output ``i`` stands for ``classes_[i]`` (the
    single logit of a binary task for ``classes_[1]``). Parameters: see
    :class:`NeuralNetwork`.

    Examples:
        >>> from sklearn.datasets import make_classification
        >>> X, y = make_classification(200, 5, random_state=0)
        >>> labels = ["no", "yes"]
        >>> clf = NeuralNetClassifier(hidden_layer_sizes=(16,), lr=0.05, p=0.1, epochs=30, seed=1)
        >>> clf = clf.fit(X, [labels[v] for v in y])
        >>> clf.classes_.tolist(), clf.n_features_in_, clf.predict(X[:3]).tolist()
        (['no', 'yes'], 5, ['yes', 'yes', 'no'])
        >>> clf.score(X, [labels[v] for v in y]) > 0.9
        True
    """

    def _loss(self) -> str:
        return "bce_logits" if len(self.classes_) == 2 else "cross_entropy"

    def _n_outputs(self) -> int:
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def encode(self, y: Any) -> Tensor:
        """Labels as the targets the network trains on (indices into ``classes_``)."""
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) == 2:
            return torch.as_tensor(index, dtype=torch.float32)[:, None]
        return torch.as_tensor(index, dtype=torch.int64)

    def set_classes(self, y: Any) -> None:
        """Take ``classes_`` from the labels ``y`` (at least two)."""
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{self._where()}: y must hold at least 2 classes, got 1 class: {self.classes_[0]!r}")
        self._task = "binary" if len(self.classes_) == 2 else "multiclass"

    def fit(self, X: Any, y: Any) -> NeuralNetClassifier:
        """Train on ``X`` (``(n, n_features)``) and labels ``y`` (``(n,)``); returns ``self``."""
        X, y = validate_data(self, X, y, reset=True)
        self.set_classes(y)
        return self._fit(X, self.encode(y))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``(n, n_classes)``, columns in ``classes_``'s order."""
        out = self._forward(X).double()
        if len(self.classes_) == 2:
            positive = torch.sigmoid(out[:, 0])
            return torch.stack([1 - positive, positive], 1).numpy()
        return torch.softmax(out, -1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row (a binary logit above 0 is ``classes_[1]``, as regfn's accuracy)."""
        out = self._forward(X)
        index = (out[:, 0] > 0).long() if len(self.classes_) == 2 else out.argmax(-1)
        return self.classes_[index.numpy()]


class NeuralNetRegressor(RegressorMixin, NeuralNetwork):
    """A regressor trained by regfn with the ``"mse"`` loss: one target ``(n,)`` or several ``(n, m)``.

    Parameters: see :class:`NeuralNetwork`.

    Examples:
        >>> from sklearn.datasets import make_regression
        >>> X, y = make_regression(200, 4, noise=1.0, random_state=0)
        >>> reg = NeuralNetRegressor(hidden_layer_sizes=(32,), lr=0.05, epochs=200).fit(X, y / 100)
        >>> reg.predict(X[:2]).shape, reg.score(X, y / 100) > 0.9
        ((2,), True)
    """

    def _loss(self) -> str:
        return "mse"

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def encode(self, y: Any) -> Tensor:
        """Targets as a float32 ``(n, m)`` tensor."""
        y = np.asarray(y, dtype=np.float32)
        return torch.as_tensor(y.reshape(len(y), -1))

    def fit(self, X: Any, y: Any) -> NeuralNetRegressor:
        """Train on ``X`` (``(n, n_features)``) and targets ``y`` (``(n,)`` or ``(n, m)``); returns ``self``."""
        X, y = validate_data(self, X, y, reset=True, multi_output=True, y_numeric=True)
        self.set_outputs(y)
        return self._fit(X, self.encode(y))

    def set_outputs(self, y: Any) -> None:
        """Take ``n_outputs_`` from the targets ``y``."""
        y = np.asarray(y)
        self._single = y.ndim == 1
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, ``(n,)`` for a 1-D ``y`` at fit time, else ``(n, m)``."""
        out = self._forward(X).double().numpy()
        return out[:, 0] if self._single else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n, m): scikit-learn's checks then try two targets
        return tags
