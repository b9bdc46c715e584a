"""regfn.plot: PNG files, which figures plot_all chooses, scales, diverged rows, missing matplotlib."""

from __future__ import annotations

import math
import sys

import pytest
import torch

import regfn
import regfn.random as rr
from regfn.results import SweepResult

pytest.importorskip("matplotlib")
plot = pytest.importorskip("regfn.plot")

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG


@pytest.fixture(scope="module")
def result():
    data = regfn.data.quadrants(rr.key(0), 64)
    train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
    configs = regfn.grid(l1=[0.0, 1e-3, 1e-2], l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1], lr=[0.1])
    return regfn.sweep(
        regfn.mlp((2, 6, 1), output="logits"), train, configs, val=val, epochs=6, log_every=2, compile=False, quiet=True
    )


def fake(rows, metric="val_acc", epochs=(1, 2)):
    """A hand-made SweepResult: rows of hyperparameters, a metric column, curves."""
    names = ("lr", "l1", "l2", "p", "seed")
    full = []
    for i, row in enumerate(rows):
        r = {n: row.get(n, 0.0 if n != "seed" else 0) for n in names}
        r.update(loss=0.5, acc=0.8, zero_frac=0.0, tiny_frac=0.0, diverged=False, diverged_epoch=None)
        r[metric] = row.get(metric, 0.5 + 0.01 * i)
        r["diverged"] = row.get("diverged", False)
        full.append(r)
    k = len(full)
    curves = {"loss": torch.linspace(1, 0.5, len(epochs)).repeat(k, 1), metric: torch.full((k, len(epochs)), 0.6)}
    return SweepResult(full, curves, list(epochs), names)


def test_swept(result):
    assert plot.swept(result) == {"l2": [0.0, 1e-2], "l1": [0.0, 1e-3, 1e-2], "p": [0.0, 0.5]}
    assert list(plot.swept(result, include_seed=True))[-1] == "seed"


def test_each_function_writes_a_png(result, tmp_path):
    paths = [
        plot.plot_vs_l2(result, tmp_path / "l2.png"),
        plot.plot_vs_l1(result, tmp_path / "l1.png", hue=None),
        plot.plot_metric(result, tmp_path / "p.png", "p", metric="val_loss", hue="l2"),
        plot.plot_heatmap(result, tmp_path / "heat.png"),
        plot.plot_heatmap(result, tmp_path / "heat_loss.png", "p", "l1", metric="loss"),
        plot.plot_sparsity(result, tmp_path / "sparsity.png"),
        plot.plot_curves(result, tmp_path / "sub" / "curves.png", n=2),
    ]
    for path in paths:
        assert path.exists(), path
        assert is_png(path), path


def test_plot_all_chooses_by_what_was_swept(result, tmp_path):
    names = [p.name for p in plot.plot_all(result, tmp_path / "all")]
    assert names == [
        "val_acc_vs_l2.png",
        "val_acc_vs_l1.png",
        "val_acc_vs_p.png",
        "heatmap_l2_l1.png",
        "sparsity_vs_l1.png",
        "curves.png",
    ]
    assert all(is_png(tmp_path / "all" / n) for n in names)


def test_plot_all_metric_choice(result, tmp_path):
    names = [p.name for p in plot.plot_all(result, tmp_path, metric="val_loss")]
    assert "val_loss_vs_l2.png" in names


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([{"seed": s} for s in range(3)], ["curves.png"]),
        ([{"l2": a, "seed": s} for a in (0.0, 1e-3, 1e-1) for s in (0, 1)], ["val_acc_vs_l2.png", "curves.png"]),
        (
            [{"p": p, "lr": lr} for p in (0.0, 0.5) for lr in (0.01, 0.1)],
            ["val_acc_vs_p.png", "val_acc_vs_lr.png", "heatmap_p_lr.png", "curves.png"],
        ),
        ([{"l1": a} for a in (0.0, 1e-2)], ["val_acc_vs_l1.png", "sparsity_vs_l1.png", "curves.png"]),
    ],
)
def test_plot_all_only_for_swept(rows, expected, tmp_path):
    assert [p.name for p in plot.plot_all(fake(rows), tmp_path)] == expected


def test_diverged_rows_are_left_out(tmp_path):
    rows = [{"l2": a, "seed": s} for a in (0.0, 1e-2, 1.0) for s in (0, 1)]
    rows[-1].update(diverged=True, val_acc=math.nan)
    rows[-2].update(diverged=True, val_acc=math.nan)  # l2 = 1.0 diverged for every seed
    res = fake(rows)
    res.curves["loss"][-1, 1] = math.nan
    paths = plot.plot_all(res, tmp_path)
    assert [p.name for p in paths] == ["val_acc_vs_l2.png", "curves.png"]
    assert all(is_png(p) for p in paths)


def test_scales():
    from matplotlib.figure import Figure

    def scale(values):
        ax = Figure().subplots()
        plot._scale(ax, values)
        return ax.get_xscale()

    assert scale([1e-4, 1e-3, 1e-2]) == "log"
    assert scale([0.0, 1e-4, 1e-2]) == "symlog"
    assert scale([0.0, 0.25, 0.5]) == "linear"
    assert scale([0.01, 0.05]) == "linear"


def test_errors(result, tmp_path):
    with pytest.raises(ValueError, match="metric 'nope'"):
        plot.plot_vs_l2(result, tmp_path / "x.png", metric="nope")
    with pytest.raises(ValueError, match="x 'dropout'"):
        plot.plot_metric(result, tmp_path / "x.png", "dropout")
    with pytest.raises(ValueError, match="two different swept"):
        plot.plot_heatmap(fake([{"l2": a} for a in (0.0, 1.0)]), tmp_path / "x.png")


def test_missing_matplotlib_says_how_to_install(result, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'regfn\[plot\]'"):
        plot.plot_all(result, tmp_path)
    with pytest.raises(ImportError, match="pip install"):
        plot.plot_vs_l2(result, tmp_path / "x.png")


def test_import_is_lazy():
    import subprocess

    code = "import sys, regfn.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
