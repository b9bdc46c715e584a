"""regfn.sklearn.GridSearchCV against skorch inside scikit-learn's GridSearchCV (issue #24).

Workload (the issue's): breast cancer (569 x 30), ``StandardScaler`` fitted per
fold in a ``Pipeline``, an MLP 30-64-32-1 (ReLU, dropout ``p`` after both hidden
layers, one logit, BCE with logits), Adam (lr 1e-3), mini-batches of 64, 30
epochs; 12 settings (torch's coupled ``weight_decay`` x ``p``: the same objective
in both libraries) x 5 stratified folds (scikit-learn's ``StratifiedKFold(5)``,
the same folds for both), then the refit of the best setting on all rows.

* ``regfn``: ``regfn.sklearn.GridSearchCV``: every setting x fold in one vmapped
  sweep (569 rows make folds of 114 and 113 held-out rows, 455 and 456 training
  rows: 7 batches of 64 an epoch either way, so one program; two before session 15);
* ``skorch``: ``sklearn.model_selection.GridSearchCV`` over a skorch
  ``NeuralNetBinaryClassifier``: 60 sequential fits (``n_jobs=1``).

One thread (``torch.set_num_threads(1)``); run it pinned to one core::

    taskset -c 0 python benchmarks/sklearn_search.py

One JSON object per method is printed on its own line: seconds, best setting,
best mean held-out accuracy. skorch is a benchmark peer only (``pip install skorch``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import regfn.sklearn

WEIGHT_DECAY = [0.0, 1e-4, 1e-3, 1e-2]
P = [0.0, 0.2, 0.5]


class MLP(torch.nn.Module):
    """30-64-32-1, ReLU, dropout after both hidden layers (skorch's module)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(30, 64), torch.nn.Linear(64, 32), torch.nn.Linear(32, 1)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.dropout(torch.relu(self.fc1(x)), self.p, self.training)
        x = torch.nn.functional.dropout(torch.relu(self.fc2(x)), self.p, self.training)
        return self.fc3(x)[:, 0]


def run_regfn(X: np.ndarray, y: np.ndarray, cv: Any, epochs: int, compile: bool | str) -> dict[str, Any]:
    net = regfn.sklearn.NeuralNetClassifier(
        hidden_layer_sizes=(64, 32), optimizer="adam", lr=1e-3, batch_size=64, epochs=epochs, compile=compile
    )
    pipe = Pipeline([("scale", StandardScaler()), ("net", net)])
    grid = {"net__weight_decay": WEIGHT_DECAY, "net__p": P}
    start = time.perf_counter()
    search = regfn.sklearn.GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    seconds = time.perf_counter() - start
    best = {k.split("__")[-1]: v for k, v in search.best_params_.items()}
    return {
        "method": f"regfn (compile={compile})",
        "seconds": round(seconds, 2),
        "best": best,
        "best_score": round(search.best_score_, 4),
    }


def run_skorch(X: np.ndarray, y: np.ndarray, cv: Any, epochs: int, compile: bool | str) -> dict[str, Any]:
    from sklearn.model_selection import GridSearchCV
    from skorch import NeuralNetBinaryClassifier

    net = NeuralNetBinaryClassifier(
        MLP,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=64,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    )
    pipe = Pipeline([("scale", StandardScaler()), ("net", net)])
    grid = {"net__optimizer__weight_decay": WEIGHT_DECAY, "net__module__p": P}
    start = time.perf_counter()
    search = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(X.astype(np.float32), y.astype(np.float32))
    seconds = time.perf_counter() - start
    best = {k.split("__")[-1]: v for k, v in search.best_params_.items()}
    return {"method": "skorch", "seconds": round(seconds, 2), "best": best, "best_score": round(search.best_score_, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--methods", default="regfn,regfn,skorch", help="run in this order (regfn twice: cold, then warm)"
    )
    parser.add_argument("--compile", default="auto", choices=["auto", "true", "false"], help="regfn's compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    cv = StratifiedKFold(5)
    torch.manual_seed(0)  # skorch's initial weights, dropout masks and shuffles come from torch's global RNG
    for method in args.methods.split(","):
        compile = {"auto": "auto", "true": True, "false": False}[args.compile]
        result = {"regfn": run_regfn, "skorch": run_skorch}[method](X, y, cv, args.epochs, compile)
        print(json.dumps({**result, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
