"""Small built-in ``torch.nn`` models for sweeps: :func:`small_cnn`.

Each returns a plain ``nn.Module`` made only of layers :func:`regfn.nn.from_module`
knows (no buffers), so ``regfn.from_module(small_cnn())`` is a model that
``regfn.sweep`` can train many configurations of at once.
"""

from __future__ import annotations

from torch import nn as tnn

from .._checks import check_int, check_real

__all__ = ["small_cnn"]


def small_cnn(in_channels: int = 1, n_classes: int = 10, image_size: int = 8, *, p: float = 0.25) -> tnn.Sequential:
    """A small convolutional network with two dropout calls, for small images such as the 8x8 digits.

    The layers, for ``(N, in_channels, S, S)`` images with ``S = image_size``::

        Conv2d(in_channels, 16, 3, padding=1)  ReLU  Dropout(p)      # (N, 16, S, S)
        Conv2d(16, 32, 3, padding=1)           ReLU  MaxPool2d(2)    # (N, 32, S//2, S//2)
        Dropout(p)  Flatten  Linear(32 * (S//2)**2, n_classes)       # (N, n_classes) logits

    For the 8x8 digits that is 16 and 32 channels at 8x8, pooled to 4x4, and a
    512 -> 10 linear layer: 9,930 parameters. The output is logits (for the
    ``"cross_entropy"`` loss). There are no buffers (no batch norm), so
    :func:`regfn.nn.from_module` takes it; in a sweep, ``p`` sets both dropout
    rates, ``p1`` the first (after the first convolution), ``p2`` the second
    (before the linear layer). The module's own rate ``p`` is used only where
    nothing else gives one (``apply(..., p=None)``).

    Args:
        in_channels: channels of the input images.
        n_classes: classes, the width of the output.
        image_size: height and width of the (square) images, at least 2.
        p: the modules' own dropout rate.

    Returns:
        An ``nn.Sequential``.

    Raises:
        TypeError, ValueError: for sizes that are not ints >= 1 (``image_size`` >= 2)
            or a rate ``p`` outside ``[0, 1]``.

    Examples:
        >>> import torch, regfn
        >>> net = small_cnn()
        >>> sum(t.numel() for t in net.parameters())
        9930
        >>> init, apply = regfn.from_module(net)
        >>> params = init(regfn.random.key(0))
        >>> x = torch.zeros(5, 1, 8, 8)
        >>> apply(params, x, key=regfn.random.key(1), p=(0.1, 0.5), train=True).shape
        torch.Size([5, 10])
        >>> small_cnn(3, 2, image_size=16)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 2])
    """
    where = "regfn.nn.small_cnn"
    in_channels = check_int(in_channels, "in_channels", where, low=1)
    n_classes = check_int(n_classes, "n_classes", where, low=1)
    image_size = check_int(image_size, "image_size", where, low=2)
    p = check_real(p, "p", where, low=0.0, high=1.0)
    side = image_size // 2
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 16, 3, padding=1),
        tnn.ReLU(),
        tnn.Dropout(p),
        tnn.Conv2d(16, 32, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Dropout(p),
        tnn.Flatten(),
        tnn.Linear(32 * side * side, n_classes),
    )
