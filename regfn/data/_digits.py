"""scikit-learn's bundled 8x8 handwritten digits as a multi-class :class:`~regfn.data.Dataset`: :func:`digits`.

A real image classification data set that needs no download: scikit-learn
ships the file (a copy of the UCI "Optical Recognition of Handwritten
Digits" test set) inside its package. scikit-learn is an optional
dependency, installed with the ``regfn[datasets]`` extra.
"""

from __future__ import annotations

import torch

from ._dataset import Dataset, _check_float_dtype

__all__ = ["digits"]

_MISSING = "regfn.data.digits needs scikit-learn: pip install 'regfn[datasets]'"


def digits(*, flat: bool = False, dtype: torch.dtype = torch.float32) -> Dataset:
    """The 1,797 8x8 handwritten digits bundled with scikit-learn, 10 classes (``sklearn.datasets.load_digits``).

    Nothing is downloaded: scikit-learn ships the file. The pixels, integer
    gray levels 0 to 16 in the file, are divided by 16, so ``x`` lies in
    ``[0, 1]``. The examples are in the file's order (shuffle or split them
    with :func:`train_val_split`, which stratifies by class).

    Args:
        flat: ``False`` (default) for images ``x`` of shape ``(1797, 1, 8,
            8)`` (one channel, as a convolution expects), ``True`` for a
            table of shape ``(1797, 64)`` (row-major pixels, with feature
            names ``pixel_0_0`` (row 0, column 0) to ``pixel_7_7``).
        dtype: floating dtype of ``x``.

    Returns:
        A multiclass :class:`Dataset`: ``y`` int64 labels 0 to 9 of shape
        ``(1797,)`` (about 180 per class), ``class_names`` ``"0"`` to ``"9"``,
        ``target_name`` ``"digit"``.

    Raises:
        ImportError: scikit-learn is not installed (the message names the
            ``regfn[datasets]`` extra).
        TypeError: ``flat`` that is not a bool, or a dtype that is not floating.

    Examples:
        >>> data = digits()
        >>> data.x.shape, data.y.shape, data.y.dtype, data.task, data.n_classes
        (torch.Size([1797, 1, 8, 8]), torch.Size([1797]), torch.int64, 'multiclass', 10)
        >>> float(data.x.min()), float(data.x.max()), data.class_names[:3]
        (0.0, 1.0, ('0', '1', '2'))
        >>> table = digits(flat=True)
        >>> table.x.shape, table.feature_names[:2], torch.equal(table.x, data.x.flatten(1))
        (torch.Size([1797, 64]), ('pixel_0_0', 'pixel_0_1'), True)
    """
    if not isinstance(flat, bool):
        raise TypeError(f"regfn.data.digits: flat must be a bool, got {type(flat).__name__} {flat!r}")
    dtype = _check_float_dtype(dtype, "digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(_MISSING) from e
    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float64) / 16.0  # gray levels 0..16 -> [0, 1]
    labels = torch.as_tensor(bunch.target).to(torch.int64)
    n = pixels.shape[0]
    if flat:
        x = pixels.reshape(n, 64).to(dtype)
        names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
    else:
        x = pixels.reshape(n, 1, 8, 8).to(dtype)
        names = ()
    return Dataset(
        x=x,
        y=labels,
        feature_names=names,
        target_name="digit",
        task="multiclass",
        class_names=tuple(str(c) for c in range(10)),
    )
