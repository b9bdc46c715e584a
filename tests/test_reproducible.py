"""Reproducible by default: the same command and seeds give the same bytes whatever the load and history (#26)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfn._sweep._auto import COSTS, Workload, decide, estimate
from regfn.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The command's defaults for compile and threads; 24 configurations x 100 epochs (more than the old timing
# probe's threshold of 2,000 configuration-epochs, so that the old "auto" timed this sweep).
SWEEP = ["sweep", "--epochs", "100", "--n", "200", "--quiet", "--no-plots", "--top", "0"]

WORKLOADS = st.builds(
    Workload,
    device_type=st.sampled_from(["cpu", "cuda"]),
    n_params=st.integers(1, 10**8),
    rows_per_step=st.integers(1, 10**5),
    steps_per_epoch=st.integers(1, 10**3),
    configs=st.integers(1, 10**6),
    epochs=st.integers(1, 10**6),
    torch_version=st.just("2.13.0"),
    model_kind=st.sampled_from(["mlp", "conv", "module"]),
    width=st.integers(1, 10**4),
)


@given(WORKLOADS)
def test_auto_is_a_function_of_the_workload_alone_and_monotone(w):
    choice = decide(w, "auto", "auto")
    assert choice == decide(w, "auto", "auto")
    if w.device_type == "cpu":
        assert choice.threads == 1
        guess = estimate(w)
        assert choice.compile == (guess.compiled < guess.eager)
        if choice.compile:  # more work never turns compiling off
            assert decide(w._replace(epochs=2 * w.epochs), "auto", "auto").compile
            assert decide(w._replace(configs=2 * w.configs), "auto", "auto").compile
    else:
        assert choice == (True, None)
    assert decide(w, False, 3) == (False, 3 if w.device_type == "cpu" else None)


def test_the_calibrated_rule_on_the_commands_workloads():
    default = Workload("cpu", 51, 320, 1, 24, 300, "2.13.0", "mlp", 11)  # `regfn sweep` as installed
    assert decide(default, "auto", "auto") == (False, 1)
    assert decide(default._replace(epochs=100_000), "auto", "auto") == (True, 1)
    big = Workload("cpu", 87, 768, 1, 65_536, 20, "2.13.0", "mlp", 11)  # the tutorial's model, 65,536 configs
    assert decide(big, "auto", "auto") == (True, 1)
    assert decide(big._replace(epochs=1), "auto", "auto") == (False, 1)  # 1 epoch: not worth a cold compile
    cnn = Workload("cpu", 9930, 64, 22, 64, 30, "2.13.0", "conv", 58)  # benchmarks/sweep_cnn.py's CNN, batch 64
    # an eager epoch costs about what a compiled one does (session 19): a 15 s cold compile pays after ~420 epochs
    assert decide(cnn, "auto", "auto") == (False, 1)  # eager ~195 s vs ~194 s + a 15 s compile
    assert decide(cnn._replace(epochs=425), "auto", "auto") == (True, 1)
    assert decide(cnn._replace(epochs=415), "auto", "auto") == (False, 1)
    assert decide(cnn._replace(epochs=1, configs=4), "auto", "auto") == (False, 1)
    assert set(COSTS) == {"mlp", "conv", "module"}


def _spin() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _sweep_csv(out: pathlib.Path, *extra: str) -> bytes:
    assert main([*SWEEP, *extra, "--out", str(out)]) == 0
    return (out / "results.csv").read_bytes()


@pytest.mark.slow
def test_idle_and_busy_machines_write_the_same_bytes(tmp_path):
    idle = _sweep_csv(tmp_path / "idle")
    busy = [_spin(), _spin()]  # hold both cores
    try:
        loaded = _sweep_csv(tmp_path / "busy")
    finally:
        for p in busy:
            p.kill()
            p.wait(timeout=30)
    assert loaded == idle
    settings = json.loads((tmp_path / "busy" / "results.json").read_text())["settings"]
    assert (settings["compile"], settings["threads"]) == (False, 1)


# One process: optionally a compiled sweep of the same model first, then the sweep under test with the defaults.
HISTORY = """
import json, sys
import regfn
data = regfn.data.quadrants(regfn.random.key(0), 200)
model = regfn.mlp((2, 6, 4, 1), output="logits")
if sys.argv[2] == "warm":
    first = regfn.sweep(model, data, regfn.grid(l2=[0.0, 1e-3], seed=[7]), epochs=3, compile=True, quiet=True)
    assert first.settings["compile"] is True
result = regfn.sweep(model, data, regfn.grid(l2=[0.0, 1e-3], p=[0.0, 0.5], seed=range(6)), epochs=100, quiet=True)
result.to_csv(sys.argv[1])
print(json.dumps(result.settings))
"""


@pytest.mark.slow
def test_a_fresh_process_and_one_that_compiled_before_write_the_same_bytes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    settings = {}
    for history in ("fresh", "warm"):
        run = subprocess.run(
            [sys.executable, "-c", HISTORY, str(tmp_path / f"{history}.csv"), history],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        settings[history] = json.loads(run.stdout.strip().splitlines()[-1])
    assert settings["warm"] == settings["fresh"]
    assert (settings["fresh"]["compile"], settings["fresh"]["threads"]) == (False, 1)
    assert (tmp_path / "warm.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()
