"""Automatic CPU chunks sized to the cache: the measured activations, the rule, and the sweep that follows it."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import regfn
import regfn.random as rr
from regfn._row_blocks import saved_bytes_per_row
from regfn._sweep import _auto
from regfn._sweep._footprint import cache_limit
from regfn._sweep._plan import BUCKETS, CACHE_BYTES, cpu_chunk_limit

plan_module = importlib.import_module("regfn._sweep._plan")


class Conv(nn.Module):
    """One 3x3 convolution of 4 channels, ReLU, dropout, then a linear layer: activations grow with the pixels."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * side * side, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.dropout(torch.relu(self.conv(x)), 0.5).flatten(1))


MASK = 4 if regfn.random.native_status() == "on" else 1
"""Bytes of an eager dropout mask's element: float32 where regfn's C kernel draws it, else bool."""


def test_an_mlp_saves_its_input_activations_and_masks_per_row():
    model = regfn.mlp((8, 6, 1), output="logits")
    # x (8 floats), the ReLU's output (6 floats), the mask (6 elements), the masked activations (6 floats)
    assert saved_bytes_per_row(model, model.init(rr.key(0)), torch.zeros(10, 8)) == 4 * 8 + 4 * 6 + MASK * 6 + 4 * 6


def test_a_convolution_saves_per_pixel_and_the_parameters_are_not_counted():
    small, large = (regfn.from_module(Conv(side)) for side in (8, 16))
    bytes_small = saved_bytes_per_row(small, small.init(rr.key(0)), torch.zeros(3, 1, 8, 8))
    bytes_large = saved_bytes_per_row(large, large.init(rr.key(0)), torch.zeros(3, 1, 16, 16))
    assert bytes_small is not None
    assert bytes_large is not None
    assert bytes_large == 4 * bytes_small  # 4x the pixels; the linear layer's 4x larger weight is not counted
    # the input (1 channel), the ReLU's output and the masked output (4 channels), the mask: per pixel
    assert bytes_small == 64 * (4 * 1 + 4 * 4 + 4 * 4 + MASK * 4)


def test_a_failing_forward_measures_nothing():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                raise RuntimeError("no training forward")
            return self.fc(x)

    model = regfn.from_module(Broken())
    assert saved_bytes_per_row(model, model.init(rr.key(0)), torch.zeros(2, 2)) is None
    assert saved_bytes_per_row(model, model.init(rr.key(0)), torch.zeros(0, 2)) is None


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 5000),
    activation_bytes=st.integers(1, 2**30),
    fixed=st.floats(1e-5, 1e-1),
    per_row=st.floats(1e-7, 1.0),
)
def test_the_limit_is_the_least_padding_bucket_within_what_fits_or_amortizes(rows, activation_bytes, fixed, per_row):
    limit = cpu_chunk_limit(rows, activation_bytes, fixed, per_row)
    most = max(1, CACHE_BYTES // activation_bytes, math.ceil(20 * fixed / per_row))
    if most >= rows:
        assert limit is None
        return
    assert limit in BUCKETS
    assert 1 <= limit <= most
    padded = math.ceil(rows / limit) * limit
    assert all(math.ceil(rows / s) * s >= padded for s in BUCKETS if s <= most)


BENCHMARKED = {  # (model kind, parameters, width, rows a step, configurations, saved bytes a row)
    "digits MLP": ("mlp", 50826, 394, 128, 32, 3712 * 128),
    "wide cancer MLP": ("mlp", 180354, 898, 64, 32, 8184 * 64),
    "digits CNN": ("conv", 9930, 58, 64, 64, 34048 * 64),
    "tutorial MLP": ("mlp", 87, 11, 768, 64, 122 * 768),
}


@pytest.mark.parametrize(
    ("name", "compiled", "expected"),
    [
        ("digits MLP", True, 16),  # chunks of 8 and 16 timed alike (session 13; 8 chosen before the refit)
        ("digits MLP", False, None),
        ("wide cancer MLP", True, 8),
        ("wide cancer MLP", False, 16),
        ("digits CNN", True, 2),
        ("tutorial MLP", True, None),
    ],
)
def test_the_rule_on_the_benchmarked_workloads(name, compiled, expected):
    """With the committed costs, each chose the best of the chunk sizes timed in docs/benchmarks/sweep.md
    ("Chunks that stay in cache")."""
    kind, n_params, width, rows, configs, saved = BENCHMARKED[name]
    w = _auto.Workload("cpu", n_params, rows, 1, configs, 1, "2.13.0", kind, width)
    assert cpu_chunk_limit(configs, saved, *_auto.step_seconds(w, compiled)) == expected


@pytest.fixture(scope="module")
def data():
    return regfn.data.quadrants(rr.key(0), 96)


MODEL = regfn.mlp((2, 16, 1), output="logits")
CONFIGS = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.3], seed=[0, 1, 2])  # 12


def test_a_cpu_sweep_cuts_its_rows_to_stay_in_cache_and_rows_do_not_change(data, monkeypatch):
    kw = {"epochs": 3, "batch_size": 16, "compile": False, "quiet": True, "log_every": 1}
    whole = regfn.sweep(MODEL, data, CONFIGS, chunk_size=None, **kw)
    assert regfn.sweep(MODEL, data, CONFIGS, **kw).settings["chunk_size"] == 12  # in cache: one chunk
    monkeypatch.setattr(plan_module, "CACHE_BYTES", 1)  # nothing fits: only the fixed cost bounds a chunk
    monkeypatch.setattr(plan_module, "AMORTIZED", 0)
    cut = regfn.sweep(MODEL, data, CONFIGS, **kw)
    assert cut.settings["chunk_size"] == 1
    assert cut.settings["padded"] == 24  # every one-row chunk with its padding row
    assert cut.rows == whole.rows
    assert all(torch.equal(cut.curves[name], whole.curves[name]) for name in whole.curves)
    assert regfn.sweep(MODEL, data, CONFIGS, chunk_size=None, **kw).settings["chunk_size"] == 12  # the caller's
    assert regfn.sweep(MODEL, data, CONFIGS, chunk_size=5, **kw).settings["chunk_size"] == 5


def test_the_sequential_engine_is_not_cut(data, monkeypatch):
    monkeypatch.setattr(plan_module, "CACHE_BYTES", 1)
    monkeypatch.setattr(plan_module, "AMORTIZED", 0)
    result = regfn.sweep(MODEL, data, CONFIGS[:3], epochs=1, compile=False, quiet=True, engine="sequential")
    assert result.settings["chunk_size"] == 3


class DigitsCNN(nn.Module):
    """``benchmarks/sweep_cnn.py``'s CNN: Conv(1->16) ReLU Dropout Conv(16->32) ReLU Dropout MaxPool Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.dropout(torch.relu(self.conv1(x)), 0.25)
        x = nn.functional.dropout(torch.relu(self.conv2(x)), 0.25)
        return self.fc(nn.functional.max_pool2d(x, 2).flatten(1))


@pytest.mark.parametrize(("compiled", "expected"), [(True, 2), (False, 8)])
def test_the_digits_cnn_is_cut_into_the_chunks_that_ran_fastest(compiled, expected):
    """The whole chain (the measured activations, the costs of regfn._sweep._auto, the rule) on the benchmark's CNN."""
    model = regfn.from_module(DigitsCNN())
    params = model.init(rr.key(0))
    assert saved_bytes_per_row(model, params, torch.zeros(2, 1, 8, 8)) == 34048 + (MASK - 1) * 3072  # 3,072 masked
    n_params, width = sum(p.numel() for p in params.values()), sum(p.numel() for p in params.values() if p.ndim == 1)
    w = _auto.Workload("cpu", n_params, 64, 22, 64, 10, torch.__version__, _auto.model_kind(model, params), width)
    assert cache_limit(model, params, torch.zeros(5, 1, 8, 8), None, w, compiled) == expected
