"""CONTRIBUTING.md's recipe, proved: an optimizer added from outside the package sweeps and trains.

The optimizer is defined here, in the test, with an argument of its own
(``gain``): one description registered with :func:`regfn.optim.register` is
all that ``regfn.sweep(..., optimizer="toy")``, the hyperparameter registry,
the configuration checks and :func:`regfn.train` need. Its numbers are
checked against ``torch.optim.SGD`` (the toy is SGD on ``gain`` times the
gradient, so SGD at ``lr * gain`` is the reference).
"""

from __future__ import annotations

import pytest
import torch

import regfn
import regfn.random as rr
from regfn import optim
from regfn._hparams import HPARAMS, OPTIMIZER_ARGS


def toy(lr: float = 0.1, gain: float = 1.0) -> optim.Transform:
    """``w -= lr * gain * g``."""
    return optim.chain(optim.scale(gain), optim.scale_by_learning_rate(lr))


GAIN = optim.Arg("gain", "the toy's gradient gain", "gain", low=0.0, unused=1.0)


@pytest.fixture
def registered():
    optim.register(optim.OptimizerSpec("toy", toy, ("lr", GAIN), {"gain": 2.0}))
    try:
        yield
    finally:
        optim.unregister("toy")


def _torch_sgd(model, params, x, y, lr, epochs):
    """The reference: torch.optim.SGD (foreach=False) on the model's full-batch BCE loss, no dropout."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.SGD(list(leaves.values()), lr=lr, foreach=False)
    for _ in range(epochs):
        opt.zero_grad()
        out = model.apply(leaves, x, train=False)
        torch.nn.functional.binary_cross_entropy_with_logits(out, y).backward()
        opt.step()
    return {k: v.detach() for k, v in leaves.items()}


def test_a_registered_optimizer_sweeps_and_trains_like_torch_sgd(registered):
    assert OPTIMIZER_ARGS["toy"] == ("lr", "gain")
    assert HPARAMS["gain"].describe() == "the toy's gradient gain, >= 0"
    data = regfn.data.quadrants(rr.key(0), 64)
    model = regfn.mlp((2, 5, 1), output="logits")
    configs = [{"lr": 0.05, "seed": 1}, {"lr": 0.05, "gain": 3.0, "seed": 1}]
    result = regfn.sweep(model, data, configs, optimizer="toy", epochs=7, compile=False, quiet=True)
    assert [r["gain"] for r in result.rows] == [2.0, 3.0]  # the description's sweep default, then the given value
    init, _, _ = regfn._train.run_keys(rr.key(1))
    start = model.init(init)
    for row, gain in zip(result.rows, (2.0, 3.0), strict=True):
        run = regfn.train(model, data, optimizer=toy(0.05, gain), key=rr.key(1), epochs=7)
        reference = _torch_sgd(model, start, data.x, data.y, 0.05 * gain, 7)
        for name, value in reference.items():
            torch.testing.assert_close(run.params[name], value, rtol=1e-5, atol=1e-6)
        assert row["loss"] == pytest.approx(run.metrics["loss"], rel=1e-5, abs=1e-7)
    with pytest.raises(ValueError, match="config 0: gain must be >= 0"):
        regfn.sweep(model, data, [{"gain": -1.0}], optimizer="toy", epochs=1, quiet=True)
    with pytest.raises(ValueError, match="optimizer 'sgd' has no gain"):
        regfn.sweep(model, data, [{"gain": 3.0}], optimizer="sgd", epochs=1, quiet=True)


def test_unregister_forgets_the_optimizer_and_its_own_arguments(registered):
    assert "gain" in HPARAMS
    optim.unregister("toy")
    try:
        assert "toy" not in OPTIMIZER_ARGS
        assert "gain" not in HPARAMS
        assert "momentum" in HPARAMS  # a built-in argument stays
    finally:
        optim.register(optim.OptimizerSpec("toy", toy, ("lr", GAIN), {"gain": 2.0}))


def test_register_refuses_a_bad_description():
    with pytest.raises(ValueError, match="registered already"):
        optim.register(optim.OptimizerSpec("sgd", toy, ("lr",)))
    with pytest.raises(ValueError, match="unknown argument 'gain'"):
        optim.register(optim.OptimizerSpec("toy2", toy, ("lr", "gain")))
    with pytest.raises(ValueError, match="differs from the registered"):
        optim.register(optim.OptimizerSpec("toy2", toy, ("lr", optim.Arg("momentum", "m", "m", high=1.0))))
    with pytest.raises(ValueError, match="sweep_defaults name arguments it does not take"):
        optim.register(optim.OptimizerSpec("toy2", toy, ("lr",), {"gain": 1.0}))
    with pytest.raises(TypeError, match="OptimizerSpec"):
        optim.register(toy)  # type: ignore[arg-type]
    assert "toy2" not in optim.optimizers()
