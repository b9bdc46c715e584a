"""Regression and CSV columns at the command line (issue 23, item 8)."""

from __future__ import annotations

import json

import pytest
import torch

import regfn
import regfn.random as rr
from regfn.cli import main


def _table(path, rows, header):
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path


@pytest.fixture
def scores(tmp_path):
    """A diabetes-like table: a target around 150 with a spread of about 70, and a text column."""
    x = rr.normal(rr.key(3), (120, 3))
    noise = rr.normal(rr.key(4), (120,))
    y = 150 + 70 * (x[:, 0] - 0.5 * x[:, 1]) + 10 * noise
    rows = [[f"p{i}", *(round(float(v), 4) for v in x[i]), round(float(y[i]), 3)] for i in range(120)]
    return _table(tmp_path / "scores.csv", rows, "id,age,bmi,bp,progression")


def _sweep(capsys, *argv):
    code = main(["sweep", "--epochs", "60", "--seeds", "2", "--l2", "0", "--p", "0", "--no-plots", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_regression_targets_are_standardized_and_reported_in_their_units(capsys, tmp_path, scores):
    out_dir = tmp_path / "out"
    code, out, err = _sweep(capsys, "--csv", str(scores), "--drop", "id", "--out", str(out_dir))
    assert code == 0, err
    assert "loss mse on standardized targets (mse, val_mse in the targets' units)" in out
    rows = json.loads((out_dir / "results.json").read_text())["rows"]
    y = regfn.data.load_csv(scores, drop=["id"]).y
    for row in rows:
        assert not row["diverged"]
        assert not row["collapsed"]
        # loss: the MSE in standard deviations that was minimized; mse: the same in the targets' units
        assert row["val_mse"] < 0.5 * float(y.var(correction=0))
        assert row["val_mse"] > 50  # a standardized MSE would be below 1
    raw_dir = tmp_path / "raw"
    code, out, err = _sweep(capsys, "--csv", str(scores), "--drop", "id", "--raw-targets", "--out", str(raw_dir))
    assert code == 0, err
    raw = json.loads((raw_dir / "results.json").read_text())["rows"]
    assert all(r["diverged"] or r["collapsed"] for r in raw)  # the default SGD step overshoots on raw targets


def test_loss_and_mse_differ_by_the_target_variance(capsys, tmp_path, scores):
    """With no penalty and no dropout the row's loss is the standardized MSE: mse = loss * std**2."""
    out_dir = tmp_path / "out"
    code, _, err = _sweep(capsys, "--csv", str(scores), "--drop", "id", "--val-fraction", "0", "--out", str(out_dir))
    assert code == 0, err
    rows = json.loads((out_dir / "results.json").read_text())["rows"]
    y = regfn.data.load_csv(scores, drop=["id"]).y
    for row in rows:
        assert row["mse"] == pytest.approx(row["loss"] * float(y.var(correction=0)), rel=1e-4)


def test_a_text_column_blocks_until_dropped(capsys, tmp_path, scores):
    code, _, err = _sweep(capsys, "--csv", str(scores), "--out", str(tmp_path))
    assert code == 2
    assert "column 'id'" in err
    assert "--drop id" in err
    code, out, err = _sweep(capsys, "--csv", str(scores), "--columns", "age,bp", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "val_mse" in out
    stored = regfn.SweepResult.from_json(tmp_path / "out" / "results.json")
    assert stored.provenance["spec"]["model"]["n_params"] == 2 * 6 + 6 + 6 * 4 + 4 + 4 + 1  # 2 features in


def test_load_csv_columns_and_drop(scores):
    kept = regfn.data.load_csv(scores, columns=["bp", "age"])
    assert kept.feature_names == ("age", "bp")
    full = regfn.data.load_csv(scores, drop=["id"])
    assert torch.equal(kept.x, full.x[:, [0, 2]])
    assert regfn.data.load_csv(scores, drop=[0, "bmi"]).feature_names == ("age", "bp")
    with pytest.raises(ValueError, match="column 'weight' not found"):
        regfn.data.load_csv(scores, drop=["id", "weight"])
    with pytest.raises(ValueError, match="columns names the target column 'progression'"):
        regfn.data.load_csv(scores, columns=["age", "progression"])
    with pytest.raises(ValueError, match="no feature column left"):
        regfn.data.load_csv(scores, columns=["id"], drop=["id"])
    with pytest.raises(TypeError, match="drop must be a list"):
        regfn.data.load_csv(scores, drop="id")


def test_columns_need_a_csv(capsys, tmp_path):
    code, _, err = _sweep(capsys, "--drop", "x0", "--out", str(tmp_path))
    assert code == 2
    assert "--drop needs --csv" in err
