"""The Optuna adapter: Optuna's samplers choose the configurations, regfn trains them a batch at a time.

Optuna is optional (``pip install "regfn[optuna]"``) and imported only when
:func:`optuna_sweep` is called.

Examples:
    >>> import optuna, regfn
    >>> from regfn.search import loguniform, optuna_sweep, uniform
    >>> train, val = regfn.data.train_val_split(regfn.random.key(1), regfn.data.quadrants(regfn.random.key(0), 64))
    >>> study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    >>> results = optuna_sweep(study, 6, batch=3, model=regfn.mlp((2, 4, 1), output="logits"), data=train,
    ...                        val=val, space={"lr": loguniform(1e-2, 1.0), "p": uniform(0.0, 0.5), "seed": 0},
    ...                        epochs=4, compile=False, quiet=True)
    >>> [len(r) for r in results], len(study.trials), sorted(study.best_params)
    ([3, 3], 6, ['lr', 'p'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._checks import check_int
from .._hparams import HPARAMS
from .._sweep import sweep
from ..results import SweepResult
from ._space import Choice, LogUniform, RandInt, Space, Uniform, check_space

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..nn import Model

__all__ = ["optuna_sweep"]

_WHERE = "regfn.search.optuna_sweep"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as error:
        raise ImportError(
            f'{_WHERE} needs Optuna, an optional extra: pip install "regfn[optuna]" (or pip install optuna)'
        ) from error
    return optuna


def _suggest(trial: optuna.Trial, name: str, space: Space) -> Any:
    """The trial's value for ``name``, from the Optuna distribution that matches ``space``.

    Upper ends stay exclusive: a float space asks Optuna (whose ends are
    inclusive) for ``[lo, nextafter(hi, lo)]``, an int space for ``[lo, hi - 1]``.
    """
    if isinstance(space, Uniform):
        return trial.suggest_float(name, space.lo, math.nextafter(space.hi, space.lo))
    if isinstance(space, LogUniform):
        return trial.suggest_float(name, space.lo, math.nextafter(space.hi, space.lo), log=True)
    if isinstance(space, RandInt):
        return trial.suggest_int(name, space.lo, space.hi - 1)
    if isinstance(space, Choice):
        return trial.suggest_categorical(name, list(space.values))
    raise TypeError(f"{_WHERE}: {name} must be a uniform, loguniform, randint or choice space, got {space!r}")


def _report_and_tell(
    optuna: Any, study: optuna.Study, trial: optuna.Trial, result: SweepResult, i: int, metric: str
) -> None:
    """Report trial ``i``'s curve of ``metric`` to the pruner, then tell the study how it ended."""
    pruned = False
    curve = result.curves.get(metric)
    if curve is not None:
        for t, epoch in enumerate(result.curve_epochs):
            value = float(curve[i, t])
            if not math.isfinite(value):
                break
            trial.report(value, step=epoch)
            if trial.should_prune():
                pruned = True
                break
    row = result.rows[i]
    final = row[metric]
    if row["diverged"] or final is None or not math.isfinite(final):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, float(final))


def optuna_sweep(
    study: optuna.Study,
    n_trials: int,
    *,
    batch: int,
    model: Model,
    data: Dataset,
    space: Mapping[str, Any],
    val: Dataset | None = None,
    metric: str = "val_acc",
    epochs: int = 100,
    report_every: int | None = None,
    **sweep_kwargs: Any,
) -> list[SweepResult]:
    """Run ``n_trials`` trials of an Optuna study, ``batch`` at a time, each batch one :func:`regfn.sweep`.

    Ask and tell: each round asks the study for up to ``batch`` trials,
    suggests each trial's values from ``space`` (``uniform`` ->
    ``suggest_float``, ``loguniform`` -> ``suggest_float(log=True)``,
    ``randint`` -> ``suggest_int``, ``choice`` -> ``suggest_categorical``;
    constants are set as given and not suggested), trains the batch as one
    sweep, and tells the study each trial's final ``metric``. So Optuna's
    samplers (TPE, CMA-ES, ...) pick regfn's batches; a batch is asked before
    any of its trials is told, so a sampler sees the results of the earlier
    batches only.

    Pruning: each trial's curve of ``metric`` (``result.curves[metric]``,
    the ``val_*`` metrics and ``loss``) is reported with
    ``trial.report(value, step=epoch)`` at every ``curve_epochs`` epoch, and a
    trial whose ``trial.should_prune()`` says yes is told as ``PRUNED``. The
    sweep has already trained the whole batch by then, so pruning saves no
    time here: it only feeds the study's sampler and pruner statistics (pass
    ``pruner=optuna.pruners.NopPruner()`` to the study to tell every finished
    trial as ``COMPLETE``). A metric without a curve (``acc``) is not reported.
    A configuration that diverged (or whose metric is not finite) is told as
    ``FAIL``.

    Args:
        study: an Optuna study with one objective. Its direction must fit the
            metric: ``"maximize"`` for accuracies, ``"minimize"`` for losses
            and MSEs.
        n_trials: how many trials to run (>= 1).
        batch: trials per sweep (>= 1); the last batch may be smaller.
        model: as for :func:`regfn.sweep`.
        data: as for :func:`regfn.sweep`.
        val: as for :func:`regfn.sweep`.
        space: name -> :mod:`regfn.search` space or constant, checked as by
            :func:`regfn.search.sample` (registry names, values in range,
            int spaces for the seed).
        metric: the column of the sweep's rows to optimize (``"val_acc"``,
            ``"val_loss"``, ``"acc"``, ...).
        epochs: passes over the data.
        report_every: report to the pruner every this many epochs (the
            sweep's ``log_every``; default: the sweep's, ``max(1, epochs // 20)``).
        **sweep_kwargs: any other argument of :func:`regfn.sweep` (``loss``,
            ``optimizer``, ``batch_size``, ``compile``, ``quiet``, ``cv``
            (then each trial is told its mean over the folds), ...).

    Returns:
        One :class:`~regfn.results.SweepResult` per batch, in order; row ``i``
        of a batch's result is the ``i``-th trial asked for that batch. The
        study itself holds the trials, their values and parameters.

    Raises:
        ImportError: without Optuna (``pip install "regfn[optuna]"``).
        ValueError, TypeError: for a bad space, count, metric or study
            direction, before any trial is asked; should the sweep itself
            raise, the batch's trials are told as ``FAIL`` and the error
            propagates.
    """
    optuna = _import_optuna()
    n_trials = check_int(n_trials, "n_trials", _WHERE, low=1)
    batch = check_int(batch, "batch", _WHERE, low=1)
    spaces, constants = check_space(space, _WHERE)
    if not isinstance(metric, str):
        raise TypeError(f"{_WHERE}: metric must be a str, got {type(metric).__name__} {metric!r}")
    if metric.startswith("val_") and val is None and sweep_kwargs.get("cv") is None:
        raise ValueError(f"{_WHERE}: metric={metric!r} needs validation data: pass val= (or cv=)")
    if "log_every" in sweep_kwargs:
        raise TypeError(f"{_WHERE}: pass report_every, not log_every (the curves are what the pruner sees)")
    directions = study.directions
    if len(directions) != 1:
        raise ValueError(f"{_WHERE}: the study must have one objective, got {len(directions)}")
    maximize = directions[0] == optuna.study.StudyDirection.MAXIMIZE
    higher_is_better = metric.endswith("acc")
    if maximize != higher_is_better:
        want = "maximize" if higher_is_better else "minimize"
        raise ValueError(
            f"{_WHERE}: the study's direction is {'maximize' if maximize else 'minimize'}, but {metric} is better "
            f"{'higher' if higher_is_better else 'lower'}: create the study with direction={want!r}"
        )

    results: list[SweepResult] = []
    done = 0
    while done < n_trials:
        trials = [study.ask() for _ in range(min(batch, n_trials - done))]
        try:
            configs = []
            for trial in trials:
                config = {}
                for name in HPARAMS:
                    if name in constants:
                        config[name] = constants[name]
                    elif name in spaces:
                        config[name] = HPARAMS[name].check(_suggest(trial, name, spaces[name]), _WHERE)
                configs.append(config)
            result = sweep(model, data, configs, val=val, epochs=epochs, log_every=report_every, **sweep_kwargs)
            if result is None:  # another rank of a torch.distributed sweep with gather="rank0"
                raise RuntimeError(f"{_WHERE}: under torch.distributed, pass gather='all' (every rank tells its study)")
            if metric not in result.rows[0]:
                metrics = [c for c in result.rows[0] if c not in result.hyperparameters]
                raise ValueError(f"{_WHERE}: metric must be one of the sweep's columns {metrics}, got {metric!r}")
        except BaseException:
            for trial in trials:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        for i, trial in enumerate(trials):
            _report_and_tell(optuna, study, trial, result, i, metric)
        results.append(result)
        done += len(trials)
    return results
