"""One functional training run: a pure step and the loop around it.

A run is fully described by a model (pure ``init``/``apply`` functions, see
:func:`regfn.nn.mlp`), a loss, penalties (:mod:`regfn.penalties`), an
optimizer (:mod:`regfn.optim`), a dropout rate and one key. The key is split
once into an init key, a dropout key and a shuffle key; epoch ``e``, batch
``b`` draws its dropout masks from ``fold_in(fold_in(dropout_key, e), b)`` and
its mini-batch order from ``fold_in(shuffle_key, e)``. The same pure step is
what :func:`regfn.sweep` vmaps over many configurations, so a sweep's row ``i``
is this run with config ``i``: the same keys, masks and batches, the same
numbers to float tolerance (not bit for bit: the sweep's hyperparameters are
tensors, while a Python-number optimizer takes torch.optim's fused kernels to
equal it bit for bit, and a vmapped matmul may sum in another order).

Examples:
    >>> import regfn
    >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
    >>> model = regfn.nn.mlp((2, 8, 1), output="logits")
    >>> run = regfn.train(model, data, optimizer=regfn.optim.sgd(0.1),
    ...                   penalties=[regfn.l2(1e-3)], p=0.1, key=regfn.random.key(1), epochs=20)
    >>> sorted(run.metrics)
    ['acc', 'loss', 'penalty']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad_and_value

from ._checks import check_int
from ._inductor import cpu_step_options, first_call_cheaper
from ._malloc import heap_for_step_buffers
from ._preflight import check_data, resolve_loss
from ._row_blocks import block_rows, outputs
from .data import Dataset, batches
from .losses import Loss, fit_output, loss_value, takes_hp
from .nn import Model
from .nn._apply import apply_model
from .optim import Transform
from .optim._step import update_and_apply
from .penalties import Penalty, penalize, penalty_value
from .penalties._closed import ClosedForm, add_l1_gradient, closed_form
from .random import fold_in, split

__all__ = [
    "CONSTANT",
    "TrainResult",
    "apply_gradients",
    "apply_model",
    "evaluate",
    "is_collapsed",
    "majority_rate",
    "plain_grad_and_value",
    "run_keys",
    "step_key",
    "train",
    "train_step",
    "training_objective",
]

CONSTANT = "_constant"
"""The key of :func:`evaluate`'s flag: 1 when every prediction is the same (a collapsed model), else 0."""

Params = dict[str, Tensor]


# ----------------------------------------------------------------- the pure step


def run_keys(key: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split a run's key into ``(init_key, dropout_key, shuffle_key)``.

    Examples:
        >>> import regfn.random as rr
        >>> [k.shape for k in run_keys(rr.key(0))]
        [torch.Size([2]), torch.Size([2]), torch.Size([2])]
    """
    keys = split(key, 3)
    return keys[0], keys[1], keys[2]


def step_key(dropout_key: Tensor, epoch: int | Tensor, batch: int | Tensor = 0) -> Tensor:
    """The dropout key of one optimizer step: ``fold_in(fold_in(dropout_key, epoch), batch)``."""
    return fold_in(fold_in(dropout_key, epoch), batch)


def plain_grad_and_value(fn: Callable[[Params], Tensor]) -> Callable[[Params], tuple[Params, Tensor]]:
    """``torch.func.grad_and_value(fn)`` for a parameter dict, by plain autograd (``torch.autograd.grad``).

    The same gradients without functorch's grad transform, which wraps every
    operation: an eager step of a small model runs about a third faster
    (docs/benchmarks/search.md). For most operations the bits are
    functorch's too; where functorch runs an operation as its decomposition
    (``binary_cross_entropy_with_logits``, ``silu``) they may differ in the
    last place. A parameter the function does not use gets zeros, as with
    ``torch.func``. A value with several elements (vmapped configurations'
    objectives, each depending on its own parameters only) gives the
    gradient of their sum, and comes back whole.

    Examples:
        >>> import torch
        >>> grads, value = plain_grad_and_value(lambda p: (p["w"] ** 2).sum())({"w": torch.tensor([1.0, -2.0])})
        >>> grads["w"], value
        (tensor([ 2., -4.]), tensor(5.))
    """

    def run(params: Params) -> tuple[Params, Tensor]:
        with torch.enable_grad():
            leaves = {name: t.detach().requires_grad_(True) for name, t in params.items()}
            value = fn(leaves)
            # a sum, not grad_outputs of ones (the same gradient): a tensor in grad_outputs makes torch import
            # torch.fx's symbolic shapes and sympy (about 0.5 s) on a process's first call
            total = value if value.ndim == 0 else value.sum()
            grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True, materialize_grads=True)
        return dict(zip(leaves, grads, strict=True)), value.detach()

    return run


def train_step(
    model: Model,
    loss: Loss,
    optimizer: Transform,
    penalties: Sequence[Penalty],
    p: Any,
    params: Params,
    opt_state: Any,
    x: Tensor,
    y: Tensor,
    key: Tensor,
    hp: Mapping[str, Any] | None = None,
    plain_autograd: bool = False,
) -> tuple[Params, Any, Tensor]:
    """One optimizer step on ``(x, y)`` with dropout drawn from ``key``; pure.

    ``p`` is one dropout rate or one per dropout call; ``hp`` the
    configuration's hyperparameters, for a loss or model that reads them.
    The gradients come from ``torch.func.grad_and_value`` (what a sweep's
    vmapped and compiled steps need), or with ``plain_autograd`` from
    :func:`plain_grad_and_value` (an eager step of one configuration: faster).
    Penalties with a closed-form gradient (L1, L2, the elastic net:
    :func:`regfn.penalties._closed.closed_form`) are counted in the objective but
    differentiated by hand, their gradients added in the optimizer's update
    (the same bits as autograd's for a parameter the model uses once).

    Returns:
        ``(new_params, new_opt_state, objective)`` where ``objective`` is the
        data loss plus the penalties, measured before the step (with dropout
        on, like the tutorial's printed loss).
    """

    form = closed_form(params, penalties)
    objective = training_objective(model, loss, penalties, p, x, y, key, hp, form is not None)
    grads, value = (plain_grad_and_value if plain_autograd else grad_and_value)(objective)(params)
    params, opt_state = apply_gradients(optimizer, params, grads, opt_state, form)
    return params, opt_state, value


def training_objective(
    model: Model,
    loss: Loss,
    penalties: Sequence[Penalty],
    p: Any,
    x: Tensor,
    y: Tensor,
    key: Tensor,
    hp: Mapping[str, Any] | None = None,
    closed: bool = False,
    counted: bool = True,
) -> Callable[[Params], Tensor]:
    """``params -> data loss + penalties`` on ``(x, y)`` with dropout drawn from ``key``: what a step differentiates.

    With ``closed``, the penalties are taken of detached parameters: counted
    in the value, left out of the gradient, which the caller completes from
    :func:`regfn.penalties._closed.closed_form` (see :func:`apply_gradients`);
    with ``counted`` false as well, not computed at all (the value is the
    data loss alone: a step whose objective nobody reads).

    Examples:
        >>> import torch, regfn
        >>> model = regfn.nn.mlp((2, 1), output="logits")
        >>> params = model.init(regfn.random.key(0))
        >>> x, y = torch.ones(4, 2), torch.ones(4, 1)
        >>> loss = regfn.losses.get_loss("bce_logits")
        >>> f = training_objective(model, loss, [regfn.l2(0.1)], 0.0, x, y, regfn.random.key(1))
        >>> bool(f(params) > 0)
        True
    """

    def data_loss(params: Params) -> Tensor:
        out = apply_model(model, params, x, key=key, p=p, train=True, hp=hp)
        return loss_value(loss, out, y, hp)

    if not penalties:
        return data_loss
    if not closed:
        return penalize(data_loss, *penalties)
    if not counted:
        return data_loss

    def with_values(params: Params) -> Tensor:  # penalize's sum, out + penalty_value, without their gradient
        return data_loss(params) + penalty_value({k: t.detach() for k, t in params.items()}, *penalties)

    return with_values


def apply_gradients(
    optimizer: Transform, params: Params, grads: Params, opt_state: Any, penalties: ClosedForm | None = None
) -> tuple[Params, Any]:
    """One optimizer update from ``grads``: ``(new_params, new_opt_state)``; pure.

    ``penalties``: gradients in closed form to add first (the L1 terms here,
    the L2 terms within the update: :func:`regfn.optim._step.update_and_apply`).

    Examples:
        >>> import torch
        >>> from regfn import optim
        >>> opt, params = optim.sgd(0.5), {"w": torch.tensor([1.0])}
        >>> apply_gradients(opt, params, {"w": torch.tensor([2.0])}, opt.init(params))[0]
        {'w': tensor([0.])}
    """
    if penalties is None:
        return update_and_apply(optimizer, params, grads, opt_state)
    grads = add_l1_gradient(grads, params, penalties.l1) if penalties.l1 else grads
    return update_and_apply(optimizer, params, grads, opt_state, penalties.l2)


def evaluate(
    model: Model,
    loss: Loss,
    penalties: Sequence[Penalty],
    params: Params,
    x: Tensor,
    y: Tensor,
    hp: Mapping[str, Any] | None = None,
    rows_per_block: int | None = None,
) -> dict[str, Tensor]:
    """Metrics with dropout off: data ``loss``, ``penalty``, and ``acc`` or ``mse`` (by the loss's task).

    The model runs on ``rows_per_block`` rows at a time (:func:`regfn._row_blocks.outputs`; ``None``: every
    row at once); the metrics are computed on all its outputs together.

    Binary accuracy thresholds the output at ``loss.threshold``; multi-class
    accuracy takes the argmax of the outputs; regression reports the mean
    squared error. ``_constant`` is 1 when every prediction is the same (a
    model that collapsed to a constant), else 0. Empty data gives NaN metrics.
    """
    out = fit_output(outputs(model, params, x, hp, rows_per_block), y)
    metrics = {"loss": loss_value(loss, out, y, hp)}
    metrics["penalty"] = penalty_value(params, *penalties) if penalties else out.new_zeros(())
    task = loss.resolved_task
    if task == "regression":
        metrics["mse"] = F.mse_loss(out, y)
        predictions = out
    elif task == "multiclass":
        predictions = out.argmax(-1)
        metrics["acc"] = (predictions == y).to(out.dtype).mean()
    else:
        threshold = 0.0 if loss.threshold is None else loss.threshold  # a binary Loss without one: logits
        predictions = (out > threshold).to(y.dtype)
        metrics["acc"] = (predictions == y).to(out.dtype).mean()
    spread = (predictions.amax(0) - predictions.amin(0)).abs().amax() if len(x) else out.new_zeros(())
    metrics[CONSTANT] = (spread == 0).to(out.dtype)
    return metrics


# ----------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        params: the final parameters.
        metrics: final metrics on the training data with dropout off (floats).
        val_metrics: the same on the validation data, if given.
        history: one dict per logged epoch: ``epoch``, ``loss`` (that
            epoch's objective, dropout on) and ``val_*`` metrics if ``val``.
        diverged: whether the loss or the parameters became NaN or infinite.
        collapsed: whether the model learned a constant: every prediction the
            same, or (classification) an accuracy within one example of the
            majority-class rate; judged on the validation data when given.
    """

    params: Params
    metrics: dict[str, float]
    val_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    collapsed: bool = False


def majority_rate(data: Dataset) -> float | None:
    """The share of the most frequent class (binary or multi-class data), or ``None`` for regression."""
    if len(data) == 0 or data.task == "regression":
        return None
    y = data.y.reshape(-1)
    if y.dtype.is_floating_point:  # binary 0/1
        positive = float((y > 0.5).to(torch.float64).mean())
        return max(positive, 1.0 - positive)
    return float(torch.bincount(y).max()) / len(y)


def is_collapsed(constant: bool, acc: float | None, majority: float | None, n: int) -> bool:
    """A constant predictor, or an accuracy within one example (``1/n``) of the majority-class rate."""
    if constant:
        return True
    if acc is None or majority is None or n == 0 or not math.isfinite(acc):
        return False
    return abs(acc - majority) <= 1.0 / n + 1e-12


def _float_dict(metrics: Mapping[str, Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def train(
    model: Model,
    data: Dataset,
    *,
    optimizer: Transform,
    key: Tensor,
    loss: str | Loss | None = None,
    penalties: Sequence[Penalty] = (),
    p: float | Tensor | Sequence[float | Tensor] = 0.0,
    epochs: int = 100,
    batch_size: int | None = None,
    val: Dataset | None = None,
    log_every: int | None = None,
    on_log: Callable[[dict[str, float]], None] | None = None,
    compile: bool = False,
    hparams: Mapping[str, float | Tensor] | None = None,
) -> TrainResult:
    """Train one model: full batch (the tutorial) or keyed mini-batches.

    Args:
        model: ``Model(init, apply)`` (see :func:`regfn.nn.mlp`).
        data: the training :class:`~regfn.data.Dataset`.
        optimizer: a :class:`~regfn.optim.Transform`, e.g.
            ``regfn.optim.sgd(0.1, momentum=0.9)`` (the SGD a sweep runs by default).
        key: the run's key; it decides the initial weights, the dropout masks
            and the mini-batch order. Its kind (``regfn.random.key(seed,
            impl=...)``: threefry2x32 or philox4x32) is the kind of every key
            drawn from it; ``regfn.sweep(..., key_impl=...)`` rows are runs
            with ``key(seed, impl=key_impl)`` (to float tolerance).
        loss: ``None`` (the default: the loss of the data's task,
            ``"bce_logits"`` for binary, ``"cross_entropy"`` for multiclass,
            ``"mse"`` for regression), ``"bce_logits"`` (model outputs
            logits), ``"bce"`` (model outputs probabilities, the tutorial's
            ``BCELoss``), ``"mse"``, ``"cross_entropy"``, or a
            :class:`regfn.losses.Loss`.
        penalties: penalties added to the loss, e.g. ``[regfn.l2(1e-3)]``.
        p: the dropout rate of every dropout call (a float or a 0-d tensor),
            or one rate per call, in call order (a sequence).
        epochs: passes over the data.
        batch_size: ``None`` for full batch; else shuffled mini-batches
            of this size (the last incomplete batch is dropped).
        val: optional validation data, evaluated at each log. Evaluations on a
            CPU run the model in blocks of rows that stay in cache, for a model
            whose rows are independent (:func:`regfn._row_blocks.block_rows`, as
            a sweep's evaluations).
        log_every: record ``history`` every this many epochs (and at the last).
        on_log: called with each history entry (e.g. to print it).
        compile: run the step under ``torch.compile`` (on a CPU with the options of
            :func:`regfn._inductor.cpu_step_options`, and its first call within
            :func:`regfn._inductor.cheaper_cold_compile`, as a sweep's steps).
            Eager steps take their gradients by plain autograd
            (:func:`plain_grad_and_value`), compiled ones by ``torch.func``; a
            sweep's row equals this run to float tolerance either way.
        hparams: hyperparameters for a loss or model that reads them (as
            0-d tensors in ``hp``): ``{"label_smoothing": 0.1}`` for
            ``"cross_entropy"``, or names of your own.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: for a bad ``epochs``, ``batch_size`` or ``log_every``; before
            training, for NaN or infinite data, or a model that fails on two
            rows of the data or whose outputs do not fit the targets.
        TypeError: for targets of the wrong kind for the loss.

    Examples:
        >>> import regfn
        >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
        >>> model = regfn.nn.mlp((2, 8, 1), output="logits")
        >>> run = train(model, data, optimizer=regfn.optim.adam(1e-2), key=regfn.random.key(1),
        ...             penalties=[regfn.l1(1e-4)], p=0.2, epochs=10, batch_size=16, log_every=5)
        >>> [entry["epoch"] for entry in run.history], run.diverged
        ([5, 10], False)
        >>> list(run.params), run.params["fc1.weight"].shape
        (['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'], torch.Size([8, 2]))
        >>> 0.0 <= run.metrics["acc"] <= 1.0
        True
    """
    epochs = check_int(epochs, "epochs", "regfn.train", low=1)
    log_every = epochs if log_every is None else check_int(log_every, "log_every", "regfn.train", low=1)
    loss = resolve_loss(loss, data, "regfn.train")
    penalties = tuple(penalties)
    n = len(data)
    if batch_size is not None:
        check_int(batch_size, "batch_size", "regfn.train", low=1, high=n)
    takes_hp(model.apply), takes_hp(loss.fn)  # answered before any tracing (see regfn.losses.takes_hp)

    def hp_of(data: Dataset) -> dict[str, Tensor]:
        return {
            name: torch.as_tensor(v, dtype=data.x.dtype, device=data.x.device) for name, v in (hparams or {}).items()
        }

    data, val = check_data(model, loss, data, val, "regfn.train", hp_of(data))  # before training: one regfn message
    hp = hp_of(data)
    init_key, dropout_key, shuffle_key = run_keys(key)
    params = model.init(init_key)
    blocks = block_rows(model, params, data.x, hp)  # evaluations in blocks of rows on a CPU, as a sweep's
    opt_state = optimizer.init(params)

    def step(params: Params, opt_state: Any, x: Tensor, y: Tensor, k: Tensor) -> tuple[Params, Any, Tensor]:
        # eager: plain autograd (no vmap to serve); compiled: torch.func, which dynamo traces whole
        return train_step(model, loss, optimizer, penalties, p, params, opt_state, x, y, k, hp, not compile)

    if data.x.device.type == "cpu":
        heap_for_step_buffers()  # the steps' buffers reused from the heap (._malloc)
    if compile:  # on a CPU with a cheaper cold compile (._inductor)
        run_step = first_call_cheaper(
            torch.compile(step, options=cpu_step_options() if data.x.device.type == "cpu" else None)
        )
    else:
        run_step = step
    history: list[dict[str, float]] = []
    value = torch.tensor(float("nan"))
    has_val = val is not None and len(val) > 0
    val_metrics: dict[str, float] = {}
    for epoch in range(epochs):
        if batch_size is None:
            params, opt_state, value = run_step(params, opt_state, data.x, data.y, step_key(dropout_key, epoch))
        else:
            order = batches(fold_in(shuffle_key, epoch), n, batch_size)
            for b in range(order.shape[0]):
                idx = order[b]
                k = step_key(dropout_key, epoch, b)
                params, opt_state, value = run_step(params, opt_state, data.x[idx], data.y[idx], k)
        if (epoch + 1) % log_every == 0 or epoch + 1 == epochs:
            entry = {"epoch": epoch + 1, "loss": float(value)}
            if has_val and val is not None:  # the last log is after the last epoch: these end as the final val_metrics
                val_metrics = _float_dict(evaluate(model, loss, penalties, params, val.x, val.y, hp, blocks))
                entry.update({f"val_{k}": v for k, v in val_metrics.items()})
            history.append(entry)
            if on_log is not None:
                on_log(entry)
    metrics = _float_dict(evaluate(model, loss, penalties, params, data.x, data.y, hp, blocks))
    finite = all(bool(torch.isfinite(t).all()) for t in params.values())
    diverged = not (finite and math.isfinite(metrics["loss"]) and all(math.isfinite(h["loss"]) for h in history))
    judged, judged_on = (val_metrics, val) if has_val and val is not None else (metrics, data)
    collapsed = is_collapsed(bool(judged[CONSTANT]), judged.get("acc"), majority_rate(judged_on), len(judged_on))
    for m in (metrics, val_metrics, *history):
        m.pop(CONSTANT, None)
        m.pop(f"val_{CONSTANT}", None)
    return TrainResult(params, metrics, val_metrics, history, diverged, collapsed)
