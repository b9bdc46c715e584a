"""What a sweep reports (issue 23, items 10, 11, 12): summaries over seeds and folds, schedules at the command
line with survivors first, a time line that tells the truth, scatter for sampled points, one config in words."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time

import pytest

import regfn
import regfn.random as rr
from regfn.cli import main

QUICK = ["--n", "60", "--epochs", "9", "--no-plots", "--quiet"]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _sweep(configs, **kw):
    data = regfn.data.quadrants(rr.key(0), 64)
    kw = {"epochs": 9, "compile": False, "quiet": True, "threads": 1, "val": data, **kw}
    return regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data, configs, **kw)


# ----------------------------------------------------------------- 10. summaries


def test_summary_over_seeds_matches_a_hand_computation():
    result = _sweep(regfn.grid(l2=[0.0, 1e-2], seed=[0, 1, 2]))
    summary = result.summary(over="seed")
    assert [set(s) for s in summary] == [{"l2", "mean", "std", "min", "max", "n", "runs"}] * 2
    for entry in summary:
        values = [r["val_acc"] for r in result.rows if r["l2"] == entry["l2"]]
        mean = sum(values) / 3
        assert entry["mean"] == pytest.approx(mean)
        assert entry["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 3))
        assert (entry["min"], entry["max"], entry["n"], entry["runs"]) == (min(values), max(values), 3, 3)
    assert summary[0]["mean"] >= summary[1]["mean"]


def test_summary_over_folds_reads_each_configurations_folds():
    result = _sweep(regfn.grid(l2=[0.0, 1e-2]), val=None, cv=3)
    summary = result.summary(over="fold", by="val_acc")
    for entry in summary:
        folds = result.rows[entry["config"]]["val_acc_folds"]
        assert entry["mean"] == pytest.approx(result.rows[entry["config"]]["val_acc"])
        assert entry["std"] == pytest.approx(result.rows[entry["config"]]["val_acc_std"])
        assert (entry["min"], entry["max"], entry["runs"]) == (min(folds), max(folds), 3)
    with pytest.raises(ValueError, match="over='fold' needs a cross-validated sweep"):
        _sweep(regfn.grid(l2=[0.0])).summary(over="fold")


def test_the_cli_prints_the_summary_of_the_result(capsys, tmp_path):
    code, out, err = _run(capsys, "sweep", *QUICK, "--l2", "0,1e-2", "--p", "0", "--seeds", "3", "--out", str(tmp_path))
    assert code == 0, err
    table = out.split("best settings by mean val_acc over 3 seeds:\n")[1].split("\n\n")[0].splitlines()
    assert table[0].split() == ["l2", "mean", "val_acc", "std", "min", "max", "seeds"]
    result = regfn.SweepResult.from_json(tmp_path / "results.json")
    for line, entry in zip(table[1:], result.summary(over="seed"), strict=True):
        cells = line.split()
        assert [float(c) for c in cells[1:5]] == pytest.approx(
            [entry[s] for s in ("mean", "std", "min", "max")], abs=5e-4
        )
        assert cells[5] == f"{entry['n']}/{entry['runs']}"


def test_the_cli_prints_the_summary_over_folds(capsys, tmp_path):
    code, out, err = _run(capsys, "sweep", *QUICK, "--l2", "0,1e-2", "--p", "0", "--seeds", "1", "--cv", "3")
    assert code == 0, err
    assert "best configs by mean val_acc over 3 folds:" in out
    header = out.split("over 3 folds:\n")[1].splitlines()[0].split()
    assert header == ["config", "l2", "mean", "val_acc", "std", "min", "max", "folds"]


# ----------------------------------------------------------------- 11. schedules


def test_halving_ranks_survivors_ahead_of_stopped_rows():
    result = _sweep(
        regfn.grid(lr=[1e-3, 0.1, 0.3], seed=[0, 1, 2]),
        schedule=regfn.search.successive_halving("val_loss", min_epochs=1, eta=3),
    )
    survivors = result.survivors()
    assert survivors
    assert all(result.rows[i]["stopped_epoch"] == 9 for i in survivors)
    best = result.best(len(result), by="val_acc")
    assert [row["config"] for row in best[: len(survivors)]] == sorted(
        survivors, key=lambda i: -result.rows[i]["val_acc"]
    )
    by_value = result.best(len(result), by="val_acc", survivors_first=False)
    assert [r["val_acc"] for r in by_value] == sorted((r["val_acc"] for r in result.rows), reverse=True)
    header = result.table(3).splitlines()[0].split()
    assert "stopped_epoch" in header
    assert "rung" in header


@pytest.mark.parametrize(
    ("kind", "options"),
    [("halving", ["--min-epochs", "1"]), ("hyperband", ["--min-epochs", "1"]), ("pbt", ["--interval", "3"])],
)
def test_schedules_at_the_command_line(capsys, tmp_path, kind, options):
    argv = ["sweep", *QUICK, "--lr", "1e-3,0.1,0.3", "--p", "0", "--seeds", "3", "--out", str(tmp_path)]
    code, out, err = _run(capsys, *argv, "--schedule", kind, *options)
    assert code == 0, err
    result = regfn.SweepResult.from_json(tmp_path / "results.json")
    assert result.schedule["kind"] == {"halving": "successive_halving"}.get(kind, kind)
    header = next(line for line in out.splitlines() if line.strip().startswith("config")).split()
    if kind != "pbt":
        assert "stopped_epoch" in header
        assert "rung" in header
        top = int(out.split("by val_acc:\n")[1].splitlines()[1].split()[0])
        assert top in result.survivors()


def test_schedule_options_need_a_schedule(capsys):
    code, _, err = _run(capsys, "sweep", *QUICK, "--min-epochs", "3")
    assert code == 2
    assert "--min-epochs is an option of --schedule" in err


# ----------------------------------------------------------------- 12. output that tells the truth


def test_one_configuration_reads_one_config(capsys, tmp_path):
    argv = ["sweep", "--n", "60", "--epochs", "30", "--seeds", "1", "--p", "0", "--l2", "0", "--lr", "1e4"]
    code, out, err = _run(capsys, *argv, "--no-plots", "--out", str(tmp_path))
    assert code == 0, err
    assert out.startswith("regfn sweep: 1 config on ")
    assert "collapsed (learned a constant): 1 of 1 config\n" in out
    assert "configs" not in out
    assert "e.g." not in out


def test_the_time_line_counts_the_whole_command(tmp_path):
    """From the process's start until the files are written (its exit, torch's teardown, comes after)."""
    pytest.importorskip("matplotlib")
    argv = [sys.executable, "-m", "regfn", "sweep", "--n", "60", "--epochs", "5", "--l2", "0,1e-2", "--p", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*argv, "--seeds", "1", "--quiet", "--out", str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line, seen = "", 0.0
    for text in proc.stdout:
        if text.startswith("time:"):
            line, seen = text, time.perf_counter() - t0
    assert proc.wait() == 0
    total = float(re.match(r"time: ([\d.]+) s wall clock", line).group(1))
    assert 0.8 * seen <= total <= seen + 0.2
    assert re.search(r"\(import [\d.]+ s, compile/warm-up [\d.]+ s, training [\d.]+ s, figures [\d.]+ s, ", line)
    assert float(re.search(r"import ([\d.]+) s", line).group(1)) > 0


def test_help_says_one_thing_about_compile(capsys):
    code = main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert code == 0
    assert "off on CPU" not in text
    assert "default: auto" in text
    assert "compile: auto by default" in text


def test_sampled_points_are_drawn_as_scatter(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import regfn.plot._all as drawing

    points_drawn = []
    real = drawing.plot_points
    monkeypatch.setattr(
        drawing, "plot_points", lambda r, path, x, **kw: points_drawn.append(x) or real(r, path, x, **kw)
    )
    space = {"l2": regfn.search.loguniform(1e-5, 1e-1), "p": regfn.search.uniform(0.0, 0.5)}
    result = _sweep(regfn.search.sample(rr.key(0), 8, "sobol", **space), epochs=3)
    paths = regfn.plot.plot_all(result, tmp_path)
    assert sorted(points_drawn) == ["l2", "p"]
    assert not any(p.name.startswith("heatmap") for p in paths)
    grid = _sweep(regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5]), epochs=3)
    points_drawn.clear()
    regfn.plot.plot_all(grid, tmp_path / "grid")
    assert points_drawn == []
