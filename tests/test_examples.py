"""Every example runs with small settings and prints what it promises."""

from __future__ import annotations

import os
import pathlib
import re
import runpy
import subprocess
import sys

import pytest
import torch

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def run_example(monkeypatch, capsys):
    """Run examples/<name>.py as __main__ in this process with argv; returns its stdout."""
    threads = torch.get_num_threads()

    def run(name, *argv):
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *argv])
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    yield run
    torch.set_num_threads(threads)  # the examples pick one thread


def test_numpy_dropout(run_example):
    out = run_example("numpy_dropout.py", "--samples", "4000", "--p", "0.5")
    assert "inverted: x*mask/(1-p)" in out
    assert "no scaling: x*mask" in out
    means = re.search(r"inverted: x\*mask/\(1-p\)\s+\[([^\]]+)\]", out).group(1).split()
    assert [float(v) for v in means] == pytest.approx([1.0, 2.0, -0.5, 3.0], abs=0.15)
    assert "identical: True" in out
    assert "numpy_dropout(x, 1.0) -> ValueError" in out


def test_diabetes_synthetic(run_example):
    out = run_example("diabetes.py", "--epochs", "20", "--log-every", "10", "--penalty", "l2", "--mc", "5")
    assert "synthetic stand-in (768 x 8): 614 train / 154 val rows" in out
    assert re.search(r"^Epoch \[10/20\], Loss: \d\.\d{4}$", out, re.M)
    assert re.search(r"^Epoch \[20/20\], Loss: \d\.\d{4}$", out, re.M)
    assert re.search(r"dropout off \(regfn, correct\)\s+[\d.]+\s+[\d.]+", out)
    assert "dropout on (the tutorial, one draw)" in out
    assert "MC dropout, mean of 5 draws" in out


def test_diabetes_says_when_the_model_learned_nothing(run_example):
    # The tutorial's lr 0.01 and few epochs: the model predicts the majority class, which looks like 0.6 accuracy.
    out = run_example("diabetes.py", "--lr", "0.01", "--epochs", "20", "--log-every", "20")
    base = re.search(r"^majority class \(baseline\)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    off = re.search(r"^dropout off \(regfn, correct\)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert base, out
    assert off, out
    assert base.groups() == ("0.599", "0.597")  # 40% positives in the synthetic stand-in
    assert abs(float(off.group(2)) - 0.597) <= 1 / 154 + 0.001  # within one of the 154 validation rows
    line = (
        f"the model learned nothing beyond the majority class (0.597): its validation accuracy {off.group(2)} is "
        "within one example of always predicting 0; try more --epochs or a larger --lr"
    )
    assert line in out.splitlines()


def test_diabetes_defaults_learn(run_example):
    # The example's default lr (0.1, not the tutorial's 0.01) learns the synthetic stand-in; 300 epochs suffice here.
    out = run_example("diabetes.py", "--epochs", "300", "--log-every", "300")
    base = re.search(r"^majority class \(baseline\)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    off = re.search(r"^dropout off \(regfn, correct\)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert "SGD lr 0.1," in out
    assert float(off.group(2)) > float(base.group(2)) + 0.1, out
    assert "learned nothing" not in out


@pytest.mark.parametrize("penalty", ["none", "l1", "norm2", "weight-decay"])
def test_diabetes_penalties(run_example, penalty):
    out = run_example("diabetes.py", "--epochs", "3", "--log-every", "3", "--penalty", penalty, "--strength", "1e-2")
    assert "Epoch [3/3], Loss:" in out
    assert f"penalty {penalty}" in out


def test_diabetes_real_csv(run_example, diabetes_csv):
    out = run_example("diabetes.py", "--csv", str(diabetes_csv), "--epochs", "5", "--log-every", "5")
    assert "614 train / 154 val rows" in out
    assert "Epoch [5/5], Loss:" in out


def test_quadrants(run_example, tmp_path):
    out = run_example("quadrants.py", "--n", "60", "--epochs", "10", "--hidden", "4", "--out", str(tmp_path))
    assert "quadrants: 60 points" in out
    assert re.search(r"no dropout: train acc [\d.]+, val acc [\d.]+", out)
    assert re.search(r"dropout p=0.3: train acc [\d.]+, val acc [\d.]+", out)
    if "figures skipped" not in out:
        for name in ("quadrants_data.png", "quadrants_boundary.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_linear_l1_l2_prox_finds_exact_zeros(run_example):
    out = run_example("linear_l1_l2.py", "--epochs", "300")
    assert re.search(r"^\s+feature\s+true w\s+subgradient\s+prox_l1$", out, re.M)
    prox = re.search(r"prox_l1: (\d+) exact zeros \((\d+) of the (\d+) true zeros\)", out)
    sub = re.search(r"subgradient: (\d+) exact zeros", out)
    assert prox
    assert sub
    assert int(prox.group(1)) == int(prox.group(2)) == int(prox.group(3)) == 7
    assert int(sub.group(1)) < 7


def test_sweep_diabetes(run_example, tmp_path):
    out = run_example(
        "sweep_diabetes.py",
        "--seeds",
        "2",
        "--epochs",
        "4",
        "--l1",
        "0,1e-3",
        "--l2",
        "0",
        "--p",
        "0,0.5",
        "--out",
        str(tmp_path),
        "--top",
        "3",
    )
    assert "8 configs (l1 2 x l2 1 x p 2 x 2 seeds), 4 epochs" in out
    assert "best single runs by validation accuracy" in out
    assert "best settings by mean validation accuracy over 2 seeds" in out
    assert (tmp_path / "results.csv").exists()
    pngs = {p.name for p in tmp_path.glob("*.png")}
    if "figures skipped" not in out:
        assert {"val_acc_vs_l1.png", "sparsity_vs_l1.png", "curves.png"} <= pngs


def test_example_as_a_real_script(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(EXAMPLES.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "linear_l1_l2.py"), "--epochs", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exact zeros" in proc.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_has_help(name, run_example):
    with pytest.raises(SystemExit) as done:
        run_example(name, "--help")
    assert done.value.code == 0


def test_digits_cnn_quick(tmp_path):
    pytest.importorskip("sklearn")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(EXAMPLES.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", str(EXAMPLES / "digits_cnn.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "8 configs (l2 2 x p 2 x 2 seeds), 2 epochs" in out
    assert "1438 train / 359 val images" in out
    assert "best single runs by validation accuracy" in out
    assert "best settings by mean validation accuracy over 2 seeds" in out
    assert re.search(r"no regularization \(l2=0, p=0\): 0\.\d{4} ± 0\.\d{4}", out)
    assert re.search(r"does regularization help\? (yes|no|not clearly)", out)
    assert (tmp_path / "results.csv").read_text().count("\n") == 9  # header + 8 rows
    if "figures skipped" not in out:
        assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
