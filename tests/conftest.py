"""Shared fixtures: seeded keys (the seed shows in the test id), data paths, devices."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels (regfn.sweep(engine="triton")) run in Triton's interpreter on CPU. Triton
    # reads the variable when its modules are imported, so it is set before any test imports them.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import regfn.random as rr

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
DIABETES_CSV = SHARED / "data" / "diabetes.csv"

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(params=[0, 42], ids=lambda s: f"seed{s}")
def key(request):
    """A regfn key; the seed is part of the test id."""
    return rr.key(request.param)


@pytest.fixture
def diabetes_csv():
    """Path of the seed tutorial's diabetes.csv, or skip where ../shared is absent."""
    if not DIABETES_CSV.exists():
        pytest.skip(f"{DIABETES_CSV} not found (the tutorial's data lives in ../shared)")
    return DIABETES_CSV
