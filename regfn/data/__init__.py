"""Data for the regularization experiments: CSV loading, synthetic and real sets, splits, batches.

Everything random takes an explicit :mod:`regfn.random` key, so a split, a
synthetic data set or an epoch's shuffle is a pure function of its key.

* :class:`Dataset` holds features ``x`` of shape ``(n, ...)`` (a table
  ``(n, d)``, images ``(n, C, H, W)``, sequences) and targets ``y``: float
  ``(n, 1)`` (binary 0/1 labels or one regression target, ready for
  ``BCEWithLogitsLoss`` / ``MSELoss``), float ``(n, m)`` (multi-output
  regression) or int64 class labels ``(n,)`` (multiclass, with
  ``class_names``), with names and a task (``"binary"``, ``"multiclass"``,
  ``"regression"``; inferred, or given and checked).
* :func:`load_csv` reads a CSV table (the tutorial's format: a header row,
  numeric features, the label last; text labels make classes) and reports
  bad input as one-line ``ValueError`` messages that name the file, row and
  column.
* :func:`quadrants` and :func:`sparse_regression` make the tutorial's
  synthetic data from a key; :func:`digits` loads scikit-learn's bundled
  8x8 handwritten digits (10 classes; the ``regfn[datasets]`` extra).
* :func:`standardize`, :func:`train_val_split` and :func:`batches` prepare
  training: per-feature z-scores with train statistics, a keyed split
  (stratified by class for classification), keyed mini-batch indices
  (which also work under ``torch.func.vmap`` over keys).
* :func:`kfold` deals the rows into ``k`` keyed (stratified) folds of equal
  size for cross-validation (``regfn.sweep(..., cv=k)``).

Examples:
    >>> import regfn.random as rr
    >>> k_data, k_split, k_epoch = rr.split(rr.key(0), 3)
    >>> data = quadrants(k_data, 200)
    >>> train, val = train_val_split(k_split, data, 0.25)
    >>> train, val, stats = standardize(train, val)
    >>> len(train), len(val), train.task
    (150, 50, 'binary')
    >>> idx = batches(k_epoch, len(train), 32)
    >>> idx.shape, train.x[idx].shape, train.y[idx].shape
    (torch.Size([4, 32]), torch.Size([4, 32, 2]), torch.Size([4, 32, 1]))
"""

from ._csv import load_csv as load_csv
from ._dataset import Dataset as Dataset
from ._digits import digits as digits
from ._folds import Folds as Folds
from ._folds import kfold as kfold
from ._split import FeatureStats as FeatureStats
from ._split import batches as batches
from ._split import standardize as standardize
from ._split import train_val_split as train_val_split
from ._synthetic import quadrants as quadrants
from ._synthetic import sparse_regression as sparse_regression
from ._synthetic import synthetic_diabetes as synthetic_diabetes

__all__ = [
    "Dataset",
    "FeatureStats",
    "Folds",
    "batches",
    "digits",
    "kfold",
    "load_csv",
    "quadrants",
    "sparse_regression",
    "standardize",
    "synthetic_diabetes",
    "train_val_split",
]
