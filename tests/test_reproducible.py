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
    model_kind=st.sampled_from(["mlp", "module"]),
)


@given(WORKLOADS)
def test_auto_is_a_function_of_the_workload_alone_and_monotone(w):
    choice = decide(w, "auto", "auto")
    assert choice == decide(w, "auto", "auto")
    if w.device_type == "cpu":
        assert choice[1] == 1
        eager, compiled = estimate(w)
        assert choice[0] == (compiled < eager)
        if choice[0]:  # more work never turns compiling off
            assert decide(w._replace(epochs=2 * w.epochs), "auto", "auto")[0]
            assert decide(w._replace(configs=2 * w.configs), "auto", "auto")[0]
    else:
        assert choice == (True, None)
    assert decide(w, False, 3) == (False, 3 if w.device_type == "cpu" else None)


def test_the_calibrated_rule_on_the_commands_workloads():
    default = Workload("cpu", 51, 320, 1, 24, 300, "2.13.0", "mlp")  # `regfn sweep` as installed
    assert decide(default, "auto", "auto") == (False, 1)
    assert decide(default._replace(epochs=100_000), "auto", "auto") == (True, 1)
    big = Workload("cpu", 87, 768, 1, 65_536, 20, "2.13.0", "mlp")  # the tutorial's model, 65,536 configs
    assert decide(big, "auto", "auto") == (True, 1)
    assert decide(big._replace(epochs=3), "auto", "auto") == (False, 1)  # 3 epochs: not worth a cold compile
    cnn = Workload("cpu", 9930, 64, 22, 64, 10, "2.13.0", "module")  # small_cnn on the digits, batch 64
    assert decide(cnn, "auto", "auto") == (True, 1)
    assert decide(cnn._replace(epochs=1, configs=4), "auto", "auto") == (False, 1)
    assert set(COSTS) == {"mlp", "module"}


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


@pytest.mark.slow
def test_a_fresh_process_and_one_that_compiled_before_write_the_same_bytes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fresh = tmp_path / "fresh"
    run = subprocess.run(
        [sys.executable, "-m", "regfn", *SWEEP, "--out", str(fresh)], env=env, capture_output=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # Another sweep of the same program, compiled, first; then the same command in that process.
    code = (
        "import sys; from regfn.cli import main; "
        f"assert main({[*SWEEP[:2], '3', *SWEEP[3:], '--seeds', '5', '--compile', '--out', str(tmp_path / 'first')]!r})"
        " == 0; "
        f"sys.exit(main({[*SWEEP, '--out', str(tmp_path / 'warm')]!r}))"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    first = json.loads((tmp_path / "first" / "results.json").read_text())["settings"]
    assert first["compile"] is True  # the process did compile the program
    assert (tmp_path / "warm" / "results.csv").read_bytes() == (fresh / "results.csv").read_bytes()
