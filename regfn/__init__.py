"""regfn: dropout and L1/L2 regularization for PyTorch, written the JAX way."""

from . import random as random

__all__ = ["random"]
__version__ = "0.1.0"
