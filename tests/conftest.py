"""Shared fixtures: seeded keys (the seed shows in the test id), data paths, devices."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels (regfn.sweep(engine="triton")) run in Triton's interpreter on CPU. Triton
    # reads the variable when its modules are imported, so it is set before any test imports them.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import regfn
import regfn.random as rr

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`-n auto`: one worker per core) each worker computes on one thread, so
    # the workers do not oversubscribe the cores with torch's intra-op threads.
    torch.set_num_threads(1)

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
DIABETES_CSV = SHARED / "data" / "diabetes.csv"

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def subnormals_kept():
    """Turn flush-to-zero back off after a test whose compiled code turned it on for the process.

    torch 2.4's inductor builds its CPU kernels with -ffast-math, and loading one sets
    the FTZ/DAZ bits (pytorch/pytorch#126848; torch 2.13 does not); hypothesis then refuses to
    draw floats in every later test ("we can't represent subnormal floats right now").
    """
    yield
    if sys.float_info.min / 2 == 0.0:
        torch.set_flush_denormal(False)


@pytest.fixture(params=[0, 42], ids=lambda s: f"seed{s}")
def key(request):
    """A regfn key; the seed is part of the test id."""
    return rr.key(request.param)


PIMA_HEADER = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"


def write_diabetes_standin(path: pathlib.Path) -> pathlib.Path:
    """A CSV in the tutorial's format: the Pima header, 768 rows of ``synthetic_diabetes(key(0))``."""
    import regfn

    data = regfn.data.synthetic_diabetes(rr.key(0))
    assert ",".join((*data.feature_names, data.target_name)) == PIMA_HEADER
    lines = [PIMA_HEADER]
    for x, y in zip(data.x.tolist(), data.y[:, 0].tolist() if data.y.dim() > 1 else data.y.tolist(), strict=True):
        lines.append(",".join(f"{v:.9g}" for v in x) + f",{int(y)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def real_diabetes_csv():
    """Path of the seed tutorial's diabetes.csv, or skip where ../shared is absent."""
    if not DIABETES_CSV.exists():
        pytest.skip(f"{DIABETES_CSV} not found (the tutorial's data lives in ../shared)")
    return DIABETES_CSV


@pytest.fixture(params=["real", "stand-in"])
def diabetes_csv(request, tmp_path):
    """A diabetes.csv: the tutorial's (skips where ../shared is absent), then a generated stand-in.

    The stand-in has the same header and shape (768 x 9, label Outcome last), so the
    code paths that read the tutorial's file are tested everywhere.
    """
    if request.param == "real":
        return request.getfixturevalue("real_diabetes_csv")
    return write_diabetes_standin(tmp_path / "diabetes.csv")


@functools.cache
def triton_engine_runs() -> str | None:
    """Why ``regfn.sweep(engine="triton")`` cannot run here, or None when it can.

    Without CUDA it runs in Triton's interpreter, which some Triton releases
    cannot do for this kernel (e.g. 3.0, and 3.2 to 3.6 under NumPy 2); the
    engine then falls back to vmap with a warning, and its tests skip.
    """
    import importlib.util
    import warnings

    if importlib.util.find_spec("triton") is None:
        return "needs triton"
    import triton

    import regfn

    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = regfn.data.quadrants(rr.key(0), 8).to(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = regfn.sweep(regfn.mlp((2, 3, 1), output="logits"), data, [{}], epochs=1, engine="triton",
                             compile=False, quiet=True)  # fmt: skip
    if result.engine == "triton":
        return None
    reasons = [str(w.message) for w in caught if "Triton kernel failed" in str(w.message)]
    return f"Triton {triton.__version__} cannot run the kernel here: {reasons[0] if reasons else 'unknown'}"[:300]


def skip_unless_triton_engine_runs() -> None:
    reason = triton_engine_runs()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def split():
    """Quadrant data, 64 rows split 48 / 16 (the checkpoint and sequential-engine tests' MLP sweeps)."""
    data = regfn.data.quadrants(rr.key(0), 64)
    return regfn.data.train_val_split(rr.key(1), data, 0.25)


class Crash(Exception):
    """What :func:`crash_after` raises: a crash in the middle of a sweep."""


@contextlib.contextmanager
def crash_after(monkeypatch: pytest.MonkeyPatch, calls: int, engine: type | None = None) -> Iterator[list[int]]:
    """Make ``engine``'s (default: the vmap engine's) ``advance`` raise :class:`Crash` on call ``calls + 1``;
    yields the list of calls made so far."""
    if engine is None:
        engine = importlib.import_module("regfn._sweep._vmap").VmapEngine
    real = engine.advance
    seen: list[int] = []

    def advance(self, *args, **kw):
        if len(seen) >= calls:
            raise Crash
        seen.append(1)
        return real(self, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(engine, "advance", advance)
        yield seen


def kill_after_file(argv: list[str], env: dict[str, str], directory: pathlib.Path, pattern: str) -> None:
    """Run ``argv`` and SIGKILL it as soon as a file matching ``pattern`` appears in ``directory``."""
    child = subprocess.Popen(argv, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (directory.exists() and any(directory.glob(pattern))):
            assert child.poll() is None, f"the child ended before a file {pattern} appeared"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
