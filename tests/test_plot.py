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
        plot._common._scale(ax, values)
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


# ----------------------------------------------------------------- figures a user can trust


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects the plot functions save, in order (the PNGs are still written)."""
    saved = []
    original = plot._common._save

    def save(fig, path):
        saved.append(fig)
        return original(fig, path)

    for module in (plot._sweeps, plot._runs):  # the modules whose figures call _save
        monkeypatch.setattr(module, "_save", save)
    return saved


def legend_outside_data(fig) -> None:
    """Every legend of ``fig`` is drawn and overlaps no axes' data area (as laid out in the saved PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            area = ax.get_window_extent(renderer)
            assert not box.overlaps(area), (box, area)


def curve_result(metrics, curves=None, epochs=(1, 2, 3, 4)):
    """Configs with the given val_acc values; curves: one per config (default: distinct lines)."""
    rows = [{"l2": 0.01 * i, "val_acc": v} for i, v in enumerate(metrics)]
    res = fake(rows, epochs=epochs)
    k = len(rows)
    if curves is None:
        curves = [[1.0 - 0.1 * i - 0.05 * e for e in range(len(epochs))] for i in range(k)]
    res.curves["loss"] = torch.tensor(curves)
    res.curves["val_acc"] = torch.tensor([[v] * len(epochs) for v in metrics])
    return res


def legend_texts(fig):
    return [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]


def test_curves_are_labelled_by_rank_and_config(figures, tmp_path):
    res = curve_result([0.5, 0.9, 0.6, 0.8, 0.7, 0.4, 0.55])
    plot.plot_curves(res, tmp_path / "curves.png", n=2)
    (fig,) = figures
    texts = legend_texts(fig)
    assert [t.split(":")[0] for t in texts] == [
        "best 1 (config 1)",
        "best 2 (config 3)",
        "worst 1 (config 5)",
        "worst 2 (config 0)",
    ]
    assert texts[0] == "best 1 (config 1): l2=0.01"
    assert not any("#" in t or "tied" in t for t in texts)
    legend_outside_data(fig)
    assert is_png(tmp_path / "curves.png")


def test_curves_say_when_a_rank_is_one_of_several_tied(figures, tmp_path):
    res = curve_result([0.9, 0.9, 0.9, 0.5, 0.7])  # three configs share the best accuracy, different curves
    plot.plot_curves(res, tmp_path / "curves.png", n=1)
    texts = legend_texts(figures[0])
    assert texts[0] == "best 1 (config 0, one of 3 tied at val_acc=0.9): l2=0"
    assert texts[1].startswith("worst 1 (config 3): ")


def test_curves_that_coincide_are_one_line_labelled_as_a_tie(figures, tmp_path):
    # configs 3, 4, 5 diverge from none: they are stuck at the same loss and accuracy (the worst).
    stuck = [0.69, 0.69, 0.69, 0.69]
    curves = [[1.0, 0.6, 0.4, 0.3], [1.0, 0.7, 0.5, 0.4], [1.0, 0.8, 0.6, 0.5], stuck, stuck, stuck]
    res = curve_result([0.9, 0.8, 0.7, 0.6, 0.6, 0.6], curves)
    plot.plot_curves(res, tmp_path / "curves.png", n=3)
    (fig,) = figures
    texts = legend_texts(fig)
    assert texts[:3] == ["best 1 (config 0): l2=0", "best 2 (config 1): l2=0.01", "best 3 (config 2): l2=0.02"]
    assert texts[3] == "worst 1-3 (configs 5, 4, 3): 3 configs tied, curves coincide"
    assert len(texts) == 4
    tie_lines = [line for line in fig.axes[0].get_lines() if line.get_marker() not in (None, "None", "")]
    assert len(tie_lines) == 1  # one line for the three, with markers
    assert len(fig.axes[0].get_lines()) == 4
    legend_outside_data(fig)


def test_curves_all_tied(figures, tmp_path):
    same = [[0.69, 0.69] for _ in range(4)]
    res = curve_result([0.5] * 4, same, epochs=(1, 2))
    plot.plot_curves(res, tmp_path / "curves.png", n=2)
    assert legend_texts(figures[0]) == [
        "best 1-2, worst 1-2 (configs 0, 1, 3, 2): 4 configs tied, curves coincide",
    ]


def test_heatmap_boxes_every_tied_best_cell(figures, tmp_path):
    rows = [{"l2": a, "p": p, "val_acc": acc} for (a, p), acc in zip(
        [(0.0, 0.0), (0.0, 0.5), (0.1, 0.0), (0.1, 0.5), (1.0, 0.0), (1.0, 0.5)],
        [0.75, 0.75, 0.5, 0.75, 0.25, 0.5], strict=True)]  # fmt: skip
    plot.plot_heatmap(fake(rows), tmp_path / "heat.png", "l2", "p")
    ax = figures[0].axes[0]
    boxes = [p for p in ax.patches if p.get_gid() == "best"]
    assert sorted((b.get_x() + 0.5, b.get_y() + 0.5) for b in boxes) == [(0, 0), (0, 1), (1, 1)]  # (x index, y index)
    notes = [" ".join(t.get_text().split()) for t in ax.texts if "red box" in t.get_text()]
    assert notes == ["mean over 1 seed; red boxes: 3 cells tied for best (0.75)"]


def test_heatmap_single_best(figures, tmp_path):
    rows = [{"l2": a, "p": p, "val_acc": 0.5 + a / 10 + p / 100} for a in (0.0, 1.0) for p in (0.0, 0.5)]
    plot.plot_heatmap(fake(rows), tmp_path / "heat.png", "l2", "p")
    ax = figures[0].axes[0]
    boxes = [p for p in ax.patches if p.get_gid() == "best"]
    assert [(b.get_x() + 0.5, b.get_y() + 0.5) for b in boxes] == [(1, 1)]
    assert any(" ".join(t.get_text().split()).endswith("; red box: best") for t in ax.texts)


def test_metric_and_sparsity_legends_are_off_the_data(result, figures, tmp_path):
    plot.plot_vs_l2(result, tmp_path / "l2.png")
    plot.plot_sparsity(result, tmp_path / "sparsity.png")
    plot.plot_curves(result, tmp_path / "curves.png")
    for fig in figures:
        legend_outside_data(fig)
