"""Data, loss and model mistakes are refused (or fixed, saying so) before training (issue 23, items 1-6, 13)."""

from __future__ import annotations

import math
import warnings

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given
from torch import nn

import regfn
import regfn.random as rr
from regfn.data import Dataset
from regfn.losses import Loss


def _regression(n: int = 32) -> Dataset:
    x = rr.normal(rr.key(0), (n, 3))
    return Dataset(x, (x @ torch.tensor([1.0, -2.0, 0.5]) * 50 + 100).reshape(-1, 1))


def _sweep(model, data, configs=None, **kw):
    kw = {"epochs": 3, "compile": False, "quiet": True, "threads": 1, **kw}
    return regfn.sweep(model, data, configs or [{"lr": 0.01}], **kw)


# ----------------------------------------------------------------- 1. the loss of the data's task


def test_regression_data_takes_mse_by_default_and_says_so():
    data = _regression()
    result = _sweep(regfn.mlp((3, 4, 1)), data, val=data)
    assert result.settings["loss"] == "mse"
    assert result.settings["loss_from_task"] is True
    assert "val_mse" in result.rows[0]
    assert "val_acc" not in result.rows[0]
    given = _sweep(regfn.mlp((3, 4, 1)), data, loss="mse")
    assert given.settings["loss_from_task"] is False


def test_train_takes_the_loss_of_the_data_task():
    run = regfn.train(regfn.mlp((3, 4, 1)), _regression(), optimizer=regfn.optim.sgd(1e-3), key=rr.key(0), epochs=2)
    assert "mse" in run.metrics
    assert "acc" not in run.metrics


# ----------------------------------------------------------------- 2. (n,) outputs


class _Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(-1)  # skorch's convention: (n,)


def test_a_binary_model_with_n_outputs_trains_as_with_n_by_1():
    data = regfn.data.quadrants(rr.key(0), 64)
    squeezed = _sweep(regfn.from_module(_Squeezed()), data, val=data, epochs=5)
    plain = regfn.from_module(_Squeezed())
    apply = plain.apply
    kept = regfn.nn.Model(plain.init, lambda params, x, **kw: apply(params, x, **kw).unsqueeze(-1))
    column = _sweep(kept, data, val=data, epochs=5)
    assert squeezed.rows[0]["val_acc"] == column.rows[0]["val_acc"]
    assert squeezed.rows[0]["loss"] == column.rows[0]["loss"]


def test_n_outputs_for_two_regression_targets_are_refused_before_training():
    x = rr.normal(rr.key(0), (16, 2))
    data = Dataset(x, torch.cat([x, x], 1))
    with pytest.raises(ValueError, match=r"gives outputs of shape \(2,\) for 2 rows; the data needs shape \(2, 4\)"):
        _sweep(regfn.from_module(_Squeezed()), data)


# ----------------------------------------------------------------- 3. labels outside the outputs


def test_a_label_outside_the_model_outputs_is_refused_naming_it():
    x = rr.normal(rr.key(0), (20, 4))
    y = torch.arange(20) % 13  # labels up to 12
    with pytest.raises(ValueError, match=r"class label 12 \(row 12\) is outside the model's 10 outputs"):
        _sweep(regfn.mlp((4, 8, 10)), Dataset(x, y))
    with pytest.raises(ValueError, match="class label 12"):
        regfn.train(regfn.mlp((4, 8, 10)), Dataset(x, y), optimizer=regfn.optim.sgd(0.1), key=rr.key(0), epochs=1)


# ----------------------------------------------------------------- 4. Loss(fn) with class labels


def test_a_loss_without_a_task_is_multiclass_for_integer_labels():
    x = rr.normal(rr.key(0), (30, 4))
    data = Dataset(x, torch.arange(30) % 3)
    mine = Loss(lambda out, y: torch.nn.functional.cross_entropy(out, y))
    result = _sweep(regfn.mlp((4, 8, 3)), data, loss=mine, val=data)
    assert "val_acc" in result.rows[0]
    assert result.settings["loss"] == "custom"


def test_a_binary_loss_on_class_labels_names_the_multiclass_loss():
    x = rr.normal(rr.key(0), (30, 4))
    hinge = Loss(lambda out, y: out.mean(), threshold=0.0)
    with pytest.raises(TypeError, match=r"Loss\(fn, task='multiclass'\)"):
        _sweep(regfn.mlp((4, 8, 3)), Dataset(x, torch.arange(30) % 3), loss=hinge)


# ----------------------------------------------------------------- 5. dtype and width


def test_float64_data_is_converted_with_a_warning():
    data = regfn.data.quadrants(rr.key(0), 64)
    wide = data.to(dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _sweep(regfn.mlp((2, 4, 1)), wide, val=wide)
    assert any("converted to torch.float32" in str(w.message) for w in caught)
    assert result.rows[0]["val_acc"] == _sweep(regfn.mlp((2, 4, 1)), data, val=data).rows[0]["val_acc"]


def test_a_model_of_another_input_width_is_refused_before_training():
    data = regfn.data.quadrants(rr.key(0), 64)
    with pytest.raises(
        ValueError, match=r"regfn.sweep: the model fails on two rows of the data \(x of shape \(2, 2\)\)"
    ):
        _sweep(regfn.mlp((5, 4, 1)), data)
    with pytest.raises(ValueError, match=r"regfn.train: the model fails on two rows"):
        regfn.train(regfn.mlp((5, 4, 1)), data, optimizer=regfn.optim.sgd(0.1), key=rr.key(0), epochs=1)
    one = regfn.data.Dataset(data.x[:1], data.y[:1])  # the message counts the rows it ran on
    with pytest.raises(ValueError, match=r"the model fails on one row of the data \(x of shape \(1, 2\)\)"):
        regfn.train(regfn.mlp((5, 4, 1)), one, optimizer=regfn.optim.sgd(0.1), key=rr.key(0), epochs=1)


# ----------------------------------------------------------------- 6. NaN and inf in the data


def test_nan_in_the_data_is_refused_naming_rows_and_columns():
    data = regfn.data.quadrants(rr.key(0), 64)
    x = data.x.clone()
    x[3, 1] = float("nan")
    x[7, 0] = float("inf")
    bad = Dataset(x, data.y)
    with pytest.raises(ValueError, match=r"2 non-finite values .*row 3 column 'x1' \(nan\), row 7 column 'x0' \(inf\)"):
        _sweep(regfn.mlp((2, 4, 1)), bad)
    y = data.y.clone()
    y[5, 0] = float("nan")
    with pytest.raises(ValueError, match=r"the validation data has 1 non-finite value .*target row 5 column 'y'"):
        _sweep(regfn.mlp((2, 4, 1)), data, val=Dataset(data.x, y, task="binary"))
    with pytest.raises(ValueError, match=r"regfn.train: the data has 2 non-finite values"):
        regfn.train(regfn.mlp((2, 4, 1)), bad, optimizer=regfn.optim.sgd(0.1), key=rr.key(0), epochs=1)


# ----------------------------------------------------------------- 13. no CUDA


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_cuda_device_is_a_regfn_error():
    data = regfn.data.quadrants(rr.key(0), 64)
    with pytest.raises(ValueError, match=r"no CUDA device here .*device='cpu'"):
        _sweep(regfn.mlp((2, 4, 1)), data, device="cuda")


def test_a_run_that_goes_non_finite_between_log_points_reports_that_epoch():
    """diverged_epoch is the first epoch with a NaN/inf objective (regfn.train's history, logged every epoch)."""
    data = regfn.data.quadrants(rr.key(0), 64)
    model = regfn.mlp((2, 8, 1), output="logits")
    lrs = [1e3, 1e4, 1e6, 0.1]
    expected = []
    for lr in lrs:
        run = regfn.train(model, data, optimizer=regfn.optim.sgd(lr), key=rr.key(0), epochs=30, log_every=1)
        expected.append(next((h["epoch"] for h in run.history if not torch.isfinite(torch.tensor(h["loss"]))), None))
    assert expected[:3] == [12, 8, 6]  # between the log points 10 and 20, or before the first
    assert expected[3] is None
    configs = [{"lr": lr, "momentum": 0.0, "seed": 0} for lr in lrs]  # regfn.train above: sgd(lr), no momentum
    for chunk in (None, 3):
        result = _sweep(model, data, configs, epochs=30, log_every=10, chunk_size=chunk)
        assert [row["diverged_epoch"] for row in result.rows] == expected
    folded = _sweep(model, data, configs, epochs=30, log_every=10, cv=2)
    assert [row["diverged_epoch"] is not None for row in folded.rows] == [True, True, True, False]
    assert all(row["diverged_epoch"] % 10 != 0 for row in folded.rows[:3])


@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 4),
    bad=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from([math.nan, math.inf, -math.inf]))),
)
def test_nonfinite_cells_counts_and_names_in_row_order(rows, cols, bad):
    from regfn.data._finite import nonfinite_cells

    x = torch.zeros(rows, cols)
    cells = {}
    for i, j, v in bad:
        if i < rows and j < cols:
            x[i, j] = v
            cells[(i, j)] = v
    names = [f"c{j}" for j in range(cols)]
    count, shown = nonfinite_cells(x, names, limit=3)
    assert count == len(cells)
    assert shown == [f"row {i} column 'c{j}' ({cells[(i, j)]})" for i, j in sorted(cells)[:3]]
