"""The model options (``--model mlp|cnn|module:PATH.py:ClassName``, ``--hidden``, ``--activation``) and the model.

:func:`build_model` makes the model ``--model`` names for the training data,
picks the loss of the data's task, and runs the model on two rows before any
training: a model that fails or gives the wrong output shape is a one-line
error, not a traceback from inside the sweep.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import pathlib
import sys
from typing import TYPE_CHECKING

from ._argtypes import value_type
from ._errors import CLIError, first_line
from ._hparam_options import layer_rates, rate_options
from ._targets import TargetScale
from ._values import parse_hidden

if TYPE_CHECKING:
    import torch

    from ..data import Dataset
    from ..losses import Loss
    from ..nn import Model

__all__ = ["add_model_options", "build_model"]

_ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "elu", "leaky_relu", "sigmoid")
_MLP_HIDDEN, _MLP_ACTIVATION = (6, 4), "relu"  # --model mlp's defaults


def _model_option(text: str) -> str:
    """An argparse ``type`` for ``--model``: ``mlp``, ``cnn`` or ``module:PATH.py:ClassName``."""
    if text in ("mlp", "cnn"):
        return text
    path, _, name = text.removeprefix("module:").rpartition(":")
    if not text.startswith("module:") or not path or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"use mlp, cnn or module:PATH.py:ClassName, got {text!r}")
    return text


def add_model_options(g: argparse._ArgumentGroup) -> None:
    """``--model``, ``--hidden`` and ``--activation``, in the group ``g``."""
    g.add_argument(
        "--model",
        type=_model_option,
        default="mlp",
        metavar="{mlp,cnn,module:PATH.py:ClassName}",
        help="mlp (regfn.mlp, see --hidden), cnn (regfn.nn.small_cnn, for images: --data digits) or your own "
        "nn.Module: the class ClassName of the file PATH.py, built with no arguments (regfn.from_module)",
    )
    g.add_argument(
        "--hidden",
        type=value_type(parse_hidden),
        default=None,
        metavar="W1,W2,...",
        help="hidden layer widths of --model mlp: 6,4 gives sizes (d, 6, 4, out); 'none' for a linear model "
        "(default: 6,4)",
    )
    g.add_argument(
        "--activation",
        default=None,
        choices=_ACTIVATIONS,
        help="activation of the hidden layers of --model mlp (default: relu)",
    )


def _loss_of(data: Dataset) -> str:
    """The loss of ``data``'s task (the model outputs logits for the two classification tasks)."""
    from .._preflight import task_loss

    return task_loss(data.task or "regression")


def _output_width(data: Dataset) -> tuple[int, str]:
    """The model's output width for ``data`` and what it is, in words."""
    n_classes = data.n_classes
    if data.task == "multiclass" and n_classes is not None:  # a multiclass Dataset always counts its classes
        return n_classes, f"{n_classes} logits, one per class"
    if data.task == "binary":
        return 1, "one logit (binary data)"
    width = data.y.shape[1]
    return width, "one output per target" if width > 1 else "one output (regression)"


def _user_module(spec_text: str) -> tuple[torch.nn.Module, str, list[pathlib.Path]]:
    """``module:PATH.py:ClassName``: the class of that file, built with no arguments, a description, and the
    files its import read: the file itself, then the modules of its folder (and below) that it imported."""
    import torch

    path_text, _, class_name = spec_text.removeprefix("module:").rpartition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise CLIError(f"--model: {path}: no such file" if not path.exists() else f"--model: {path} is not a file")
    spec = importlib.util.spec_from_file_location(f"regfn_user_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CLIError(f"--model: cannot import {path} (a Python file ending in .py?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file may import its neighbours
    sys.modules[spec.name] = module  # dataclasses and friends look their module up there
    before = set(sys.modules)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: any error it raises is bad input
        sys.modules.pop(spec.name, None)
        raise CLIError(f"--model: importing {path} failed: {type(err).__name__}: {first_line(err)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    files = [path, *(f for f in _neighbours(set(sys.modules) - before, pathlib.Path(folder)) if f != path.resolve())]
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == spec.name
        )
        have = f"; it defines {', '.join(found)}" if found else "; it defines no nn.Module class"
        raise CLIError(f"--model: {path} has no class {class_name!r}{have}")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CLIError(f"--model: {class_name} in {path} is not a torch.nn.Module class")
    try:
        inspect.signature(cls).bind()
    except TypeError as err:
        raise CLIError(
            f"--model: {class_name}() needs arguments ({err}); regfn builds it with none: give its parameters "
            "defaults, or subclass it with an __init__ that takes none"
        ) from None
    except ValueError:  # no signature to read: try it
        pass
    try:
        instance = cls()
    except Exception as err:  # the user's class: any error it raises is bad input
        raise CLIError(f"--model: {class_name}() failed: {type(err).__name__}: {first_line(err)}") from None
    return instance, f"{class_name} from {path}", files


def _neighbours(names: set[str], folder: pathlib.Path) -> list[pathlib.Path]:
    """The source files, inside ``folder``, of the modules ``names`` (those a user's model file imported)."""
    found = set()
    for name in names:
        source = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(source, str) and pathlib.Path(source).resolve().is_relative_to(folder):
            found.add(pathlib.Path(source).resolve())
    return sorted(found)


def build_model(args: argparse.Namespace, train: Dataset) -> tuple[Model, str | Loss, str, list[pathlib.Path]]:
    """The model ``--model`` names for ``train``, its loss, a description, and the files it was read from.

    The files are ``[]`` for the built-in models; for ``module:PATH.py:Class``
    PATH first, then the files of PATH's folder that importing it imported.
    A cnn or module model is checked on two rows of the data before any
    training: it must run and give the output shape the loss needs. For
    regression data (unless ``--raw-targets``) the model and the loss work on
    standardized targets, the outputs in the targets' units (:mod:`._targets`).
    """
    model, loss, desc, files = _build_model(args, train)
    if train.task != "regression" or getattr(args, "raw_targets", False):
        return model, loss, desc, files
    scale = TargetScale.of(train)
    return scale.model(model), scale.loss(), desc.replace(f", {loss})", f", {loss} on standardized targets)"), files


def _build_model(args: argparse.Namespace, train: Dataset) -> tuple[Model, str, str, list[pathlib.Path]]:
    import regfn

    loss = _loss_of(train)
    width, what = _output_width(train)
    if args.model == "mlp":
        hidden = _MLP_HIDDEN if args.hidden is None else args.hidden
        activation = args.activation or _MLP_ACTIVATION
        sizes = (train.n_features, *hidden, width)
        rates = layer_rates(args)
        if rates and not hidden:
            raise CLIError(f"--p{rates}: --model mlp without hidden layers has no dropout call")
        if rates and rates != len(hidden):
            raise CLIError(
                f"--p{rates}: --model mlp has {len(hidden)} hidden layers, a dropout call after each: give "
                f"{rate_options(len(hidden))}, or only --p"
            )
        output = "identity" if train.task == "regression" else "logits"
        model = regfn.mlp(sizes, activation=activation, output=output)
        _check_output(model, train, width, what, layer_rates(args), "the mlp")
        return model, loss, f"{'-'.join(map(str, sizes))} ({activation}, {loss})", []
    for name in ("hidden", "activation"):
        if getattr(args, name) is not None:
            raise CLIError(f"--{name} is an option of --model mlp; --model {args.model} takes its layers as they are")
    module: torch.nn.Module
    files: list[pathlib.Path] = []
    if args.model == "cnn":
        x = train.x
        if x.ndim != 4 or x.shape[2] != x.shape[3]:
            raise CLIError(
                f"--model cnn needs square images (N, C, S, S), such as --data digits; this data has x of shape "
                f"{tuple(x.shape)}"
            )
        module = regfn.nn.small_cnn(in_channels=x.shape[1], n_classes=width, image_size=x.shape[2])
        name = f"small_cnn {'x'.join(map(str, x.shape[1:]))} -> {width}"
    else:
        module, name, files = _user_module(args.model)
    try:
        model = regfn.from_module(module)
    except (ValueError, TypeError) as err:
        raise CLIError(f"--model: {first_line(err)}") from None
    _check_output(model, train, width, what, layer_rates(args), name)
    n_params = sum(t.numel() for t in module.parameters())
    return model, loss, f"{name} ({n_params:,} parameters, {loss})", files


def _check_output(model: Model, train: Dataset, width: int, what: str, rates: int, name: str) -> None:
    """Run ``model`` on two rows: it must give ``(2, width)`` outputs, and take ``rates`` per-call rates if any."""
    import torch

    import regfn

    from .._preflight import run_two_rows
    from ..losses import fit_output

    rr = regfn.random
    x = train.x[:2]
    params = model.init(rr.key(0))
    try:
        out = run_two_rows(model, train, "--model", name, params=params)
    except ValueError as err:
        raise CLIError(first_line(err)) from None
    if tuple(fit_output(out, train.y[:2]).shape) != (2, width):
        got = f"outputs of shape {tuple(out.shape)}"
        raise CLIError(
            f"--model: {name} gives {got} for 2 rows; the data needs shape (2, {width}): {what} "
            f"({_loss_of(train)} loss)"
        )
    if rates:
        try:
            with torch.no_grad():
                model.apply(params, x, key=rr.key(1), p=(0.0,) * rates, train=True)
        except ValueError as err:
            raise CLIError(f"--p{rates}: {first_line(err)}; give one --p<i> per dropout call, or only --p") from None
