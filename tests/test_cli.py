"""The regfn command: end to end on the default data, value syntax, one-line errors, --help."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import skip_unless_triton_engine_runs

import regfn
import regfn.cli as cli

SMALL = ["--n", "64", "--epochs", "4", "--seeds", "2", "--l2", "0,1e-2", "--p", "0,0.5"]


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def good_csv(tmp_path):
    rows = ["a,b,c,label"] + [f"{i % 7},{(i * 3) % 5},{i / 10},{i % 2}" for i in range(40)]
    return write_csv(tmp_path / "good.csv", "\n".join(rows) + "\n")


# ----------------------------------------------------------------- value syntax


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("1e-4,1e-3", "l2", [1e-4, 1e-3]),
        ("1e-5:1e-1:5", "l2", [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
        ("log:1e-3:1e-1:3", "l1", [1e-3, 1e-2, 1e-1]),
        ("0,1e-3:1e-1:3", "l2", [0.0, 1e-3, 1e-2, 1e-1]),
        ("lin:0:0.5:6", "p", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        ("0.1,0.1,0.2", "lr", [0.1, 0.2]),
        ("1e-3:1e-1:1", "l2", [1e-3]),
        ("1", "p", [1.0]),
    ],
)
def test_parse_values(text, name, expected):
    assert cli.parse_values(text, name) == pytest.approx(expected, rel=1e-12)


def test_log_range_has_16_values_with_exact_ends():
    values = cli.parse_values("1e-5:1e-1:16", "l2")
    assert len(values) == 16
    assert values[0] == 1e-5
    assert values[-1] == 1e-1
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"), [("4", [0, 1, 2, 3]), ("0,5,9", [0, 5, 9]), ("7,", [7]), ("10:13", [10, 11, 12])]
)
def test_parse_seeds(text, expected):
    assert cli.parse_seeds(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("6,4", (6, 4)), ("16", (16,)), ("none", ()), ("", ())])
def test_parse_hidden(text, expected):
    assert cli.parse_hidden(text) == expected


# ----------------------------------------------------------------- end to end


def test_sweep_in_process_writes_table_and_files(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_main(capsys, "sweep", *SMALL, "--out", str(out_dir), "--quiet")
    assert code == 0, err
    assert "best 8 of 8 configs by val_acc" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("config"))
    assert header.split()[:4] == ["config", "l2", "p", "seed"]
    assert "val_acc" in header
    assert "diverged: 0 of 8 configs" in out
    assert re.search(r"time: [\d.]+ s wall clock \(compile/warm-up [\d.]+ s, training [\d.]+ s, figures", out)
    assert "best settings by mean val_acc over 2 seeds" in out
    rows = (out_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 9
    assert rows[0].startswith("lr,momentum,weight_decay,l1,l2,norm2,p,seed")
    data = json.loads((out_dir / "results.json").read_text())
    assert len(data["rows"]) == 8
    assert data["rows"][0]["momentum"] == 0.9
    assert data["rows"][0]["lr"] == 0.1
    pytest.importorskip("matplotlib")
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == ["curves.png", "heatmap_l2_p.png", "val_acc_vs_l2.png", "val_acc_vs_p.png"]
    assert all((out_dir / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_sweep_header_and_defaults_without_quiet(capsys, tmp_path):
    code, out, _ = run_main(
        capsys,
        "sweep",
        "--n",
        "40",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--p",
        "0",
        "--l2",
        "0",
        "--out",
        str(tmp_path),
        "--no-plots",
    )
    assert code == 0
    assert out.startswith("regfn sweep: 1 config on synthetic quadrants (n=40, --data-seed 0)")
    assert "model 2-6-4-1 (relu, bce_logits), sgd, 2 epochs, full batch, device cpu\n" in out
    # short: eager, one thread; the loss is the data's task's
    assert (
        "ran: vmap engine, loss bce_logits (the data's task), compile off, 1 thread, chunks of 1 config "
        "(1 padding, 50%)\n" in out  # a vmapped chunk runs two rows at least (Engine.min_rows)
    )
    assert "best 1 of 1 config by val_acc" in out
    assert "diverged: 0 of 1 config\n" in out
    assert not list(tmp_path.glob("*.png"))


def test_sweep_csv_regression_and_target_by_name(capsys, tmp_path):
    rows = ["x1,y,x2"] + [f"{i},{0.5 * i + (i % 3)},{(i * 7) % 11}" for i in range(30)]
    path = write_csv(tmp_path / "reg.csv", "\n".join(rows) + "\n")
    code, out, err = run_main(
        capsys,
        "sweep",
        "--csv",
        path,
        "--target",
        "y",
        "--epochs",
        "3",
        "--seeds",
        "1",
        "--l2",
        "0,1e-3",
        "--p",
        "0",
        "--lr",
        "1e-3",
        "--hidden",
        "none",
        "--out",
        str(tmp_path / "o"),
        "--no-plots",
        "--quiet",
    )
    assert code == 0, err
    assert "by val_mse" in out
    assert "val_mse" in out


def test_sweep_on_the_tutorial_csv(capsys, tmp_path, diabetes_csv):
    code, out, err = run_main(
        capsys,
        "sweep",
        "--csv",
        str(diabetes_csv),
        "--target",
        "Outcome",
        "--epochs",
        "3",
        "--seeds",
        "1",
        "--l2",
        "0",
        "--p",
        "0,0.5",
        "--out",
        str(tmp_path),
        "--no-plots",
    )
    assert code == 0, err
    assert "614 train / 154 val rows, 8 features, binary" in out


def test_sweep_without_matplotlib_still_writes_results(capsys, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = run_main(capsys, "sweep", *SMALL, "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert "pip install 'regfn[plot]'" in out
    assert (tmp_path / "results.csv").exists()
    assert (tmp_path / "results.json").exists()
    assert not list(tmp_path.glob("*.png"))


def test_train_prints_tutorial_lines(capsys):
    code, out, err = run_main(capsys, "train", "--n", "64", "--epochs", "20", "--log-every", "10", "--p", "0.5")
    assert code == 0, err
    assert re.search(r"^Epoch \[10/20\], Loss: \d+\.\d{4}$", out, re.M)
    assert re.search(r"^Epoch \[20/20\], Loss: \d+\.\d{4}$", out, re.M)
    assert re.search(r"train accuracy [\d.]+, validation accuracy [\d.]+ \(dropout off\)", out)


def test_train_with_penalties_and_adam(capsys):
    code, out, err = run_main(
        capsys,
        "train",
        "--n",
        "64",
        "--epochs",
        "5",
        "--optimizer",
        "adam",
        "--l1",
        "1e-3",
        "--l2",
        "1e-3",
        "--norm2",
        "1e-3",
        "--weight-decay",
        "1e-4",
        "--quiet",
    )
    assert code == 0, err
    assert "Epoch" not in out
    assert "train accuracy" in out


def test_train_names_each_loss(capsys):
    code, out, err = run_main(
        capsys, "train", "--n", "64", "--epochs", "20", "--log-every", "10", "--p", "0.5", "--l2", "1e-2"
    )
    assert code == 0, err
    last_epoch = re.findall(r"^Epoch \[20/20\], Loss: (\d+\.\d{4})$", out, re.M)
    objective = re.search(
        r"^final training objective (\d+\.\d{4}) \(data loss with dropout on \+ penalties, epoch 20: "
        r"the Loss of the Epoch lines\)$",
        out,
        re.M,
    )
    assert objective, out
    assert objective.group(1) == last_epoch[0]  # the same number, named
    data_loss = re.search(
        r"^final data loss with dropout off: train (\d+\.\d{4}), validation (\d+\.\d{4}) "
        r"\(penalties (\d+\.\d{4}) not included\)$",
        out,
        re.M,
    )
    assert data_loss, out
    assert "final loss " not in out  # the unnamed "final loss X" is gone
    # Without penalties, dropout or validation data, the lines say so.
    code, out, err = run_main(
        capsys, "train", "--n", "64", "--epochs", "5", "--p", "0", "--val-fraction", "0", "--quiet"
    )
    assert code == 0, err
    assert re.search(
        r"^final training objective \d+\.\d{4} \(data loss with dropout off \(p=0\), epoch 5\)$", out, re.M
    )
    assert re.search(r"^final data loss with dropout off: train \d+\.\d{4}$", out, re.M)


def test_sweep_out_is_checked_before_training(capsys, tmp_path, monkeypatch):
    import time

    (tmp_path / "afile").write_text("not a folder")
    trained = []

    class Trained(Exception):
        pass

    def sweep(*args, **kwargs):
        trained.append(1)
        raise Trained

    monkeypatch.setattr(regfn, "sweep", sweep)
    generous = ["--seeds", "16", "--epochs", "100000", "--l2", "0,1e-4:1e-1:8", "--p", "lin:0:0.5:6"]
    for out_dir, reason in (
        (tmp_path / "afile" / "sub", "Not a directory"),
        (tmp_path / "afile", "it is a file, not a directory"),
    ):
        t0 = time.perf_counter()
        code, out, err = run_main(capsys, "sweep", *generous, "--out", str(out_dir))
        seconds = time.perf_counter() - t0
        assert code == 2, (out, err)
        assert seconds < 2, seconds
        assert err.strip().splitlines() == [f"regfn: error: --out {out_dir}: cannot write results ({reason})"]
        assert "configs" not in out
    assert trained == []
    # A good --out is created before the sweep runs.
    good = tmp_path / "new" / "deeper"
    with pytest.raises(Trained):
        cli.main(["sweep", *generous, "--out", str(good), "--quiet"])
    assert trained == [1]
    assert good.is_dir()
    assert list(good.iterdir()) == []  # the write check leaves nothing behind


def test_main_restores_torch_threads(capsys):
    before = torch.get_num_threads()
    run_main(capsys, "train", "--n", "32", "--epochs", "2", "--threads", "1", "--quiet")
    assert torch.get_num_threads() == before


def _env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(regfn.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_dash_m_regfn_sweep(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regfn",
            "sweep",
            "--n",
            "48",
            "--epochs",
            "3",
            "--seeds",
            "2",
            "--l2",
            "0,1e-2",
            "--p",
            "0",
            "--out",
            str(tmp_path),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "regfn sweep: 4 configs (l2 2 x seed 2)" in proc.stdout
    assert "diverged: 0 of 4 configs" in proc.stdout
    assert (tmp_path / "results.csv").exists()
    assert (tmp_path / "results.json").exists()


def test_python_dash_m_regfn_bad_input_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "regfn", "sweep", "--csv", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 2
    expected = f"regfn: error: {tmp_path / 'missing.csv'}: no such file (the path does not exist)"
    assert proc.stderr.strip().splitlines() == [expected]
    assert proc.stdout == ""


# ----------------------------------------------------------------- any data, any model

# A tiny digits sweep: 120 of the 1,797 digits (the first ones: the ten digits take turns), 2 epochs, 1 seed.
DIGITS = ["--data", "digits", "--n", "120", "--epochs", "2", "--seeds", "1", "--l2", "0"]

MODULE_FILE = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, classes))

    def forward(self, x):
        return self.body(x)


class FiveLogits(Net):
    def __init__(self):
        super().__init__(classes=5)


class NeedsWidth(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(64, width)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


class CustomParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(64, 10))

    def forward(self, x):
        return x.flatten(1) @ self.w


class WrongInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        return self.fc(x)


NOT_A_MODULE = 3
"""


@pytest.fixture
def module_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(MODULE_FILE)
    return str(path)


def _rows(out_dir):
    return json.loads((out_dir / "results.json").read_text())["rows"]


def test_sweep_digits_cnn_writes_accuracy_and_figures(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_main(capsys, "sweep", *DIGITS, "--model", "cnn", "--p", "0,0.5", "--out", str(out_dir))
    assert code == 0, err
    assert out.startswith(
        "regfn sweep: 2 configs (p 2) on digits (the first 120 of 1797, 1x8x8 images): 96 train / 24 val"
    )
    assert "64 features, multiclass, 10 classes" in out
    assert "model small_cnn 1x8x8 -> 10 (9,930 parameters, cross_entropy), sgd, 2 epochs" in out
    assert "best 2 of 2 configs by val_acc" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("config"))
    assert header.split() == ["config", "p", "loss", "acc", "val_loss", "val_acc", "zero_frac", "diverged", "collapsed"]
    rows = _rows(out_dir)
    assert [r["p"] for r in rows] == [0.0, 0.5]
    assert all(0 <= r["val_acc"] <= 1 and 0 <= r["acc"] <= 1 for r in rows)
    pytest.importorskip("matplotlib")
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == ["curves.png", "val_acc_vs_p.png"]


def test_sweep_digits_mlp_takes_pixels_and_ranks_by_acc(capsys, tmp_path):
    code, out, err = run_main(
        capsys, "sweep", *DIGITS, "--p", "0", "--hidden", "16", "--by", "acc", "--out", str(tmp_path), "--no-plots"
    )
    assert code == 0, err
    assert "on digits (the first 120 of 1797, 64 pixels)" in out
    assert "model 64-16-10 (relu, cross_entropy)" in out
    assert "best 1 of 1 config by acc" in out


def test_sweep_a_module_from_a_file(capsys, tmp_path, module_file):
    code, out, err = run_main(
        capsys,
        "sweep",
        *DIGITS,
        "--model",
        f"module:{module_file}:Net",
        "--p",
        "0,0.3",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--beta2",
        "0.99,0.999",
        "--out",
        str(tmp_path / "o"),
        "--no-plots",
    )
    assert code == 0, err
    assert f"model Net from {module_file} (1,210 parameters, cross_entropy), adam" in out
    assert "4 configs (beta2 2 x p 2)" in out
    assert sorted({r["beta2"] for r in _rows(tmp_path / "o")}) == [0.99, 0.999]


def test_sweep_label_smoothing_is_a_swept_column(capsys, tmp_path):
    code, out, err = run_main(
        capsys, "sweep", *DIGITS, "--p", "0", "--label-smoothing", "0,0.1", "--out", str(tmp_path), "--no-plots"
    )
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.strip().startswith("config"))
    assert header.split()[:2] == ["config", "label_smoothing"]
    assert (tmp_path / "results.csv").read_text().splitlines()[0].split(",")[6] == "label_smoothing"
    rows = _rows(tmp_path)
    assert [r["label_smoothing"] for r in rows] == [0.0, 0.1]
    assert rows[0]["loss"] != rows[1]["loss"]  # the smoothed loss is another number


def test_sweep_per_call_rates_with_a_two_hidden_layer_mlp(capsys, tmp_path):
    code, out, err = run_main(
        capsys,
        "sweep",
        *SMALL[:4],
        "--seeds",
        "1",
        "--l2",
        "0,1e-2",
        "--p1",
        "0.1,0.3",
        "--p2",
        "0.5",
        "--out",
        str(tmp_path),
        "--no-plots",
    )
    assert code == 0, err
    assert "regfn sweep: 4 configs (l2 2 x p1 2)" in out  # --p defaults to 0 alone when --p1 .. are given
    header = next(line for line in out.splitlines() if line.strip().startswith("config"))
    assert header.split()[:3] == ["config", "l2", "p1"]
    rows = _rows(tmp_path)
    assert sorted({(r["p"], r["p1"], r["p2"]) for r in rows}) == [(0.0, 0.1, 0.5), (0.0, 0.3, 0.5)]


def test_sweep_csv_with_class_labels(capsys, tmp_path):
    names = ("cat", "dog", "eel")
    rows = ["a,b,kind"] + [f"{i % 5},{(i * 3) % 7},{names[i % 3]}" for i in range(45)]
    path = write_csv(tmp_path / "kinds.csv", "\n".join(rows) + "\n")
    code, out, err = run_main(
        capsys,
        "sweep",
        "--csv",
        path,
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--p",
        "0",
        "--l2",
        "0",
        "--out",
        str(tmp_path / "o"),
        "--no-plots",
    )
    assert code == 0, err
    assert "36 train / 9 val rows, 2 features, multiclass, 3 classes" in out
    assert "model 2-6-4-3 (relu, cross_entropy)" in out
    numbers = ["a,b,rating"] + [f"{i % 5},{(i * 3) % 7},{1 + i % 4}" for i in range(40)]
    path = write_csv(tmp_path / "ratings.csv", "\n".join(numbers) + "\n")
    code, out, err = run_main(capsys, "train", "--csv", path, "--task", "multiclass", "--epochs", "2", "--quiet")
    assert code == 0, err
    assert "train accuracy" in out


def test_train_digits_cnn_prints_accuracy(capsys):
    code, out, err = run_main(
        capsys,
        "train",
        "--data",
        "digits",
        "--model",
        "cnn",
        "--n",
        "120",
        "--epochs",
        "2",
        "--log-every",
        "1",
        "--p1",
        "0.1",
        "--p2",
        "0.3",
        "--label-smoothing",
        "0.1",
    )
    assert code == 0, err
    assert "model small_cnn 1x8x8 -> 10 (9,930 parameters, cross_entropy)" in out
    assert "label_smoothing=0.1" in out
    assert re.search(r"^Epoch \[2/2\], Loss: \d+\.\d{4}$", out, re.M)
    assert re.search(r"train accuracy [\d.]+, validation accuracy [\d.]+ \(dropout off\)", out)


def model_cases(module_file, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    digits = ["sweep", "--data", "digits", "--n", "40", "--epochs", "1", "--seeds", "1", "--no-plots"]
    digits += ["--out", str(tmp_path / "o")]
    mod = f"module:{module_file}"
    return [
        ([*digits, "--model", f"module:{tmp_path / 'none.py'}:Net"], f"--model: {tmp_path / 'none.py'}: no such file"),
        (
            [*digits, "--model", f"{mod}:Nope"],
            "has no class 'Nope'; it defines CustomParameter, FiveLogits, NeedsWidth, Net, WithBatchNorm, WrongInput",
        ),
        ([*digits, "--model", f"{mod}:NOT_A_MODULE"], "NOT_A_MODULE in "),
        ([*digits, "--model", f"{mod}:NeedsWidth"], "--model: NeedsWidth() needs arguments"),
        ([*digits, "--model", f"{mod}:WithBatchNorm"], "--model: from_module: module 'bn' (BatchNorm1d) has buffers"),
        ([*digits, "--model", f"{mod}:CustomParameter"], "--model: from_module: no initialiser for parameter 'w'"),
        (
            [*digits, "--model", f"{mod}:FiveLogits"],
            "gives outputs of shape (2, 5) for 2 rows; the data needs shape (2, 10): 10 logits, one per class",
        ),
        ([*digits, "--model", f"{mod}:WrongInput"], "fails on two rows of the data (x of shape (2, 1, 8, 8))"),
        ([*digits, "--model", f"module:{broken}:Net"], "importing"),
        ([*digits, "--model", module_file], "--model: use mlp, cnn or module:PATH.py:ClassName"),
        ([*digits, "--model", "resnet"], "--model: use mlp, cnn or module:PATH.py:ClassName"),
        ([*digits, "--model", "cnn", "--hidden", "8"], "--hidden is an option of --model mlp"),
        ([*digits, "--model", "cnn", "--activation", "tanh"], "--activation is an option of --model mlp"),
        ([*digits, "--model", "cnn", "--p1", "0.1"], "--p1: from_module: the module made 2 dropout calls but 1 rate"),
        ([*digits, "--p1", "0.1", "--p2", "0.1", "--p3", "0.1"], "--p3: --model mlp has 2 hidden layers"),
        ([*digits, "--hidden", "none", "--p1", "0.1"], "--p1: --model mlp without hidden layers has no dropout"),
        ([*digits, "--task", "binary"], "--task binary: the digits are multiclass"),
        ([*digits, "--target", "digit"], "--target needs --csv"),
        ([*digits, "--label-smoothing", "1.5"], "--label-smoothing: 1.5 is out of range"),
        ([*digits, "--data", "mnist"], "invalid choice: 'mnist'"),
        (["sweep", "--model", "cnn"], "--model cnn needs square images (N, C, S, S)"),
        (["sweep", "--task", "multiclass"], "--task multiclass needs --csv"),
        (["sweep", "--label-smoothing", "0.1"], "--label-smoothing: only the cross_entropy loss"),
        (["sweep", "--label-smoothing", "0,0.1"], "--label-smoothing: only the cross_entropy loss"),
        (["train", "--label-smoothing", "0.1"], "--label-smoothing: only the cross_entropy loss"),
        (["sweep", "--p9", "0.1"], "unrecognized arguments: --p9"),
        (["sweep", "--dropout", "0.1"], "unrecognized arguments: --dropout"),
    ]


def test_bad_models_and_data_are_one_line_errors(capsys, tmp_path, module_file):
    for argv, message in model_cases(module_file, tmp_path):
        code, out, err = run_main(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2, (argv, out, err)
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("regfn: error: "), (argv, err)
        assert message in lines[0], (argv, lines[0])
        assert "best" not in out  # nothing trained
    assert not (tmp_path / "o").exists()  # nothing written


def test_sweep_warnings_keep_regfns_once_and_drop_torchs():
    import warnings

    from regfn.cli._report import sweep_warnings

    inside_torch = os.path.join(os.path.dirname(torch.__file__), "jit", "_script.py")
    caught = [
        warnings.WarningMessage(UserWarning("regfn.sweep: compile failed"), UserWarning, "user.py", 1),
        warnings.WarningMessage(DeprecationWarning("script_method"), DeprecationWarning, inside_torch, 1),
        warnings.WarningMessage(UserWarning("regfn.sweep: compile failed"), UserWarning, "user.py", 1),
    ]
    assert sweep_warnings(caught) == ["regfn.sweep: compile failed"]


# ----------------------------------------------------------------- bad input


def bad_cases(tmp_path):
    numbers = ["a,b,label"] + [f"{i},{i * 2},{i % 2}" for i in range(10)]
    text_cell = write_csv(tmp_path / "text.csv", "a,b,label\n1,2,0\n3,abc,1\n4,5,0\n")
    good = write_csv(tmp_path / "good.csv", "\n".join(numbers) + "\n")
    return [
        (["sweep", "--csv", str(tmp_path / "nope.csv")], "no such file"),
        (["sweep", "--csv", text_cell], "row 3, column 'b': 'abc' is not a number"),
        (["sweep", "--csv", good, "--target", "Outcome"], "target column 'Outcome' not found"),
        (["sweep", "--csv", good, "--target", "7"], "target column index 7 does not exist"),
        (["sweep", "--csv", good, "--target", "a", "--task", "binary"], "is not 0 or 1"),
        (["sweep", "--csv", str(tmp_path)], "is a directory"),
        (["sweep", "--target", "y"], "--target needs --csv"),
        (["sweep", "--engine", "triton", "--activation", "tanh", *SMALL], "activation must be 'relu'"),
        (["sweep", "--l2", "1e-3:1e-1:0"], "empty range"),
        (["sweep", "--l2", ""], "empty list"),
        (["sweep", "--l2", ","], "empty list"),
        (["sweep", "--seeds", ""], "--seeds: empty"),
        (["sweep", "--seeds", "0"], "a count must be >= 1"),
        (["sweep", "--seeds", "5:5"], "gives no seeds"),
        (["sweep", "--seeds", "a,b"], "'a' is not an integer"),
        (["sweep", "--p", "1.5"], "--p: 1.5 is out of range (p is a dropout rate, in [0, 1])"),
        (["sweep", "--p", "-0.1"], "out of range"),
        (["sweep", "--p", "lin:0:2:3"], "--p: 2 is out of range"),
        (
            ["sweep", "--l1", "-1e-3"],
            "--l1: -0.001 is out of range (l1 is an L1 strength (s * sum|w|), >= 0 and finite)",
        ),
        (["sweep", "--weight-decay", "-1"], "out of range"),
        (["sweep", "--norm2", "-1"], "out of range"),
        (["sweep", "--lr", "-0.1"], "--lr: -0.1 is out of range (lr is the learning rate, >= 0)"),
        (["sweep", "--momentum", "-1"], "out of range"),
        (["sweep", "--beta2", "1"], "--beta2: 1 is out of range (beta2 is Adam's second-moment decay, in [0, 1))"),
        (["sweep", "--optimizer", "adam", "--alpha", "0.9"], "--alpha: optimizer 'adam' has no alpha"),
        (["sweep", "--l2", "1e-3:1e-1"], "bad range '1e-3:1e-1'"),
        (["sweep", "--l2", "lin:0:1"], "--l2: lin:0:1 is a search range; add --search random:N or give a count"),
        (["sweep", "--l2", "0:1e-1:4"], "log range '0:1e-1:4' needs ends > 0"),
        (["sweep", "--l2", "1e-3:1e-1:x"], "is not an integer"),
        (["sweep", "--l2", "abc"], "'abc' is not a number"),
        (["sweep", "--l2", "nan"], "not a finite number"),
        (["sweep", "--hidden", "6,x"], "--hidden: 'x' is not an integer"),
        (["sweep", "--hidden", "6,-1"], "widths must be >= 1"),
        (["sweep", "--epochs", "0"], "must be >= 1"),
        (["sweep", "--val-fraction", "1"], "must be in [0, 1)"),
        (["sweep", "--optimizer", "adam", "--momentum", "0.9"], "optimizer 'adam' has no momentum"),
        (["sweep", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
        (
            [
                "sweep",
                "--n",
                "40",
                "--batch-size",
                "1000",
                "--epochs",
                "1",
                "--seeds",
                "1",
                "--no-plots",
                "--out",
                str(tmp_path / "o"),
            ],
            "batch_size must be an int in [1, 32]",
        ),
        (["sweep", "--by", "accuracy"], "--by: unknown metric 'accuracy'"),
        (["sweep", "--device", "tpu:9"], "--device"),
        (["sweep", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--l2", "1e-3,1e-2"], "takes one value"),
        (["train", "--p", "2"], "out of range"),
        (["train", "--csv", str(tmp_path / "nope.csv")], "no such file (the path does not exist)"),
        (["sweep", "--csv", str(tmp_path / "diabetes.csv")], "is the Pima Indians Diabetes table"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]


def test_bad_inputs_are_one_line_errors(capsys, tmp_path):
    for argv, message in bad_cases(tmp_path):
        code, out, err = run_main(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2, (argv, out, err)
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("regfn: error: "), (argv, err)
        assert message in lines[0], (argv, lines[0])
        assert "Traceback" not in err
        assert "Traceback" not in out


def test_sweep_with_the_triton_engine(capsys, tmp_path):
    skip_unless_triton_engine_runs()  # on CPU it runs in Triton's interpreter (conftest sets TRITON_INTERPRET)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    argv = [
        "sweep",
        "--n",
        "48",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--l2",
        "0,1e-2",
        "--p",
        "0.5",
        "--hidden",
        "6,4",
        "--device",
        device,
        "--no-plots",
        "--out",
        str(tmp_path),
        "--engine",
    ]
    code, out, err = run_main(capsys, *argv, "triton")
    assert code == 0, err
    _, out_v, _ = run_main(capsys, *argv, "vmap")
    assert "best 2 of 2 configs" in out
    assert "diverged: 0 of 2" in out
    # The same tables to the printed digits (the engines agree to float tolerance); timings differ.
    assert out.split("best", 1)[1].split("time:")[0] == out_v.split("best", 1)[1].split("time:")[0]


def test_cuda_device_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = run_main(capsys, "sweep", "--device", "cuda")
    assert code == 2
    assert "--device cuda: device 'cuda' asks for a GPU, but there is no CUDA device here" in err
    assert "--device cpu" in err


# ----------------------------------------------------------------- help


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["train", "--help"], ["-h"]])
def test_help(capsys, argv):
    code, out, err = run_main(capsys, *argv)
    assert code == 0
    assert err == ""
    assert "usage: regfn" in out
    assert "examples:" in out


def test_sweep_help_documents_syntax(capsys):
    _, out, _ = run_main(capsys, "sweep", "--help")
    for text in (
        "--l1",
        "--l2",
        "--norm2",
        "--weight-decay",
        "--p",
        "--lr",
        "--momentum",
        "--seeds",
        "--csv",
        "--target",
        "--val-fraction",
        "--hidden",
        "--epochs",
        "--batch-size",
        "--optimizer",
        "--device",
        "--no-compile",
        "--chunk-size",
        "--top",
        "--out",
        "--quiet",
        "--data",
        "--model",
        "module:PATH.py:ClassName",
        "--label-smoothing",
        "--p1",
        "lin:LOW:HIGH:N",
        "--seeds 4 = seeds 0,1,2,3",
        "regfn[plot]",
    ):
        assert text in out, text


def _subparsers():
    parser = cli.build_parser()
    (choices,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, choices


@pytest.mark.parametrize("command", ["sweep", "train"])
def test_every_option_has_help_and_one_default(capsys, command):
    parser, commands = _subparsers()
    sub = commands[command]
    for action in [*parser._actions, *sub._actions]:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        assert (action.help or "").strip(), action.option_strings
    code, out, _ = run_main(capsys, command, "--help")
    assert code == 0
    assert "(default: None)" not in out
    assert "default: False" not in out
    # One entry per option: its line and the more indented lines under it.
    entries: list[str] = []
    for line in out.split("examples:")[0].splitlines():
        if re.match(r"^  -", line):
            entries.append(line)
        elif entries and re.match(r"^ {4,}\S", line):
            entries[-1] += " " + line.strip()
    options = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    assert len(entries) == len([a for a in sub._actions if a.option_strings])
    joined = " ".join(entries)
    assert all(option in joined for option in options)
    for entry in entries:
        assert len(re.findall(r"\bdefault\b", entry)) <= 1, entry  # "default:", "(default)": said once
        if "default:" in entry:  # lists shown as typed (0,0.001), not [0.0, 0.001]
            assert "[" not in entry.split("default:")[-1], entry


def test_no_command_prints_help(capsys):
    code, out, _ = run_main(capsys)
    assert code == 2
    assert "sweep" in out
    assert "train" in out


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert out.startswith("regfn ")


# ----------------------------------------------------------------- --search (random and Sobol sampling)

SEARCH = ["--l2", "log:1e-5:1e-1", "--p", "lin:0:0.5", "--seeds", "2", "--epochs", "2", "--n", "64"]


def read_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_search_random_samples_points_and_runs_every_seed(capsys, tmp_path):
    code, out, err = run_main(capsys, "sweep", "--search", "random:6", *SEARCH, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "regfn sweep: random search: 6 points x 2 seeds = 12 configs (l2 log:1e-5:1e-1, p lin:0:0.5;" in out
    assert "best settings by mean" in out  # each point's two seeds averaged
    rows = read_rows(tmp_path / "a" / "results.csv")
    assert len(rows) == 12
    assert [int(r["seed"]) for r in rows] == [0, 1] * 6  # every point with every seed
    l2 = [float(r["l2"]) for r in rows[::2]]
    p = [float(r["p"]) for r in rows[::2]]
    assert [float(r["l2"]) for r in rows[1::2]] == l2
    assert all(1e-5 <= v < 1e-1 for v in l2)
    assert all(0 <= v < 0.5 for v in p)
    assert len(set(l2)) == 6
    assert not set(l2) & set(cli.parse_values("1e-5:1e-1:6", "l2"))
    # log-spread: half the points below 1e-2 (uniform in [1e-5, 1e-1) would put 9 in 10 above)
    assert sum(v < 1e-2 for v in l2) >= 3
    assert max(l2) / min(l2) > 10
    # the points are regfn.search.sample's, keyed by --search-seed (default 0)
    expected = regfn.search.sample(
        regfn.random.key(0),
        6,
        l2=regfn.search.loguniform(1e-5, 1e-1),
        p=regfn.search.uniform(0, 0.5),
    )
    assert l2 == [c["l2"] for c in expected]
    assert p == [c["p"] for c in expected]
    # figures: one per swept name and the curves; no heatmap of scattered points
    assert sorted(f.name for f in (tmp_path / "a").glob("*.png")) == [
        "curves.png",
        "val_acc_vs_l2.png",
        "val_acc_vs_p.png",
    ]
    # the same command gives the same results.csv
    code, _, err = run_main(
        capsys, "sweep", "--search", "random:6", *SEARCH, "--out", str(tmp_path / "b"), "--no-plots"
    )
    assert code == 0, err
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    # another --search-seed, other points
    code, _, err = run_main(
        capsys, "sweep", "--search", "random:6", "--search-seed", "1", *SEARCH, "--out", str(tmp_path / "c"), "--quiet"
    )
    assert code == 0, err
    assert {float(r["l2"]) for r in read_rows(tmp_path / "c" / "results.csv")}.isdisjoint(l2)


def test_search_sobol_and_lists_as_choices(capsys, tmp_path):
    argv = ["sweep", *SEARCH, "--lr", "0.05,0.1", "--no-plots", "--quiet"]
    code, _, err = run_main(capsys, *argv, "--search", "sobol:4", "--out", str(tmp_path / "s"))
    assert code == 0, err
    code, _, err = run_main(capsys, *argv, "--search", "random:4", "--out", str(tmp_path / "r"))
    assert code == 0, err
    sobol, rand = read_rows(tmp_path / "s" / "results.csv"), read_rows(tmp_path / "r" / "results.csv")
    assert len(sobol) == len(rand) == 8
    assert [r["l2"] for r in sobol] != [r["l2"] for r in rand]
    assert {float(r["lr"]) for r in sobol + rand} <= {0.05, 0.1}  # a list is a choice among its values
    assert {float(r["momentum"]) for r in sobol} == {0.9}  # a single value is a constant


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--search", "grid:5"], "argument --search: use random:N or sobol:N"),
        (["--search", "random:0"], "argument --search: the number of points must be >= 1, got 0"),
        (["--search", "random:x"], "argument --search: the number of points 'x' is not an integer"),
        (["--search", "random:4", "--p", "lin:0:2"], "argument --p: lin:0:2 reaches out of range"),
        (["--search", "random:4", "--l2", "log:0:1"], "log range 'log:0:1' needs LOW > 0; use lin:0:1"),
        (["--search", "random:4", "--l2", "0,log:1e-3:1e-1"], "must be the option's only value"),
        (
            ["--l2", "log:1e-6:1e-1"],
            "--l2: log:1e-6:1e-1 is a search range; add --search random:N or give a count, log:1e-6:1e-1:5",
        ),
        (["--search", "random:4", "--optimizer", "adam", "--momentum", "lin:0:0.9"], "has no momentum"),
    ],
)
def test_search_bad_input_is_a_one_line_error(capsys, tmp_path, argv, message):
    code, out, err = run_main(capsys, "sweep", *argv, "--epochs", "1", "--out", str(tmp_path / "o"))
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("regfn: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------- --cv (cross-validation)


def test_cv_cross_validates_every_config_and_verifies(capsys, tmp_path):
    argv = ["sweep", "--cv", "4", "--l2", "0,1e-2", "--p", "0", "--seeds", "1", "--epochs", "3", "--n", "50"]
    code, out, err = run_main(capsys, *argv, "--out", str(tmp_path / "a"), "--no-plots")
    assert code == 0, err
    assert "50 rows in 4 folds" in out
    assert "4-fold cross-validation (8 rows)" in out
    assert "val_acc_std" in out
    rows = read_rows(tmp_path / "a" / "results.csv")
    assert len(rows) == 2
    folds = json.loads(rows[0]["val_acc_folds"])
    assert len(folds) == 4
    assert float(rows[0]["val_acc"]) == pytest.approx(sum(folds) / 4)
    # the folds are kfold's with a key from --data-seed, on all 50 rows standardized together
    data, _ = regfn.data.standardize(regfn.data.quadrants(regfn.random.key(0), 50))
    expected = regfn.data.kfold(regfn.random.fold_in(regfn.random.key(0), 2), data, 4)
    stored = json.loads((tmp_path / "a" / "results.json").read_text())["provenance"]["arguments"]["cv"]
    assert stored["val"] == expected.val.tolist()
    code, out, err = run_main(capsys, "verify", str(tmp_path / "a" / "results.json"))
    assert code == 0, err
    assert "bit-identical" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cv", "1"], "argument --cv: must be >= 2, got 1"),
        (["--cv", "60", "--n", "50"], "--cv 60: more folds than the 50 rows"),
        (["--cv", "x"], "argument --cv: 'x' is not an integer"),
    ],
)
def test_cv_bad_input_is_a_one_line_error(capsys, tmp_path, argv, message):
    code, _, err = run_main(capsys, "sweep", *argv, "--epochs", "2", "--out", str(tmp_path))
    assert code == 2
    assert message in err


def test_sweep_key_impl_is_recorded_and_verified(capsys, tmp_path):
    argv = ["sweep", "--p", "0.5", "--seeds", "2", "--epochs", "3", "--n", "40", "--key-impl", "philox4x32"]
    code, _, err = run_main(capsys, *argv, "--out", str(tmp_path / "a"), "--no-plots", "--quiet")
    assert code == 0, err
    stored = json.loads((tmp_path / "a" / "results.json").read_text())
    assert stored["settings"]["key_impl"] == stored["provenance"]["arguments"]["key_impl"] == "philox4x32"
    code, out, err = run_main(capsys, "verify", str(tmp_path / "a" / "results.json"))
    assert code == 0, err
    assert "bit-identical" in out
    code, _, err = run_main(capsys, *argv[:-2], "--out", str(tmp_path / "b"), "--no-plots", "--quiet")
    assert code == 0, err
    threefry = json.loads((tmp_path / "b" / "results.json").read_text())
    assert threefry["settings"]["key_impl"] == "threefry2x32"
    assert threefry["rows"] != stored["rows"]


def test_train_key_impl_draws_from_a_philox_key(capsys):
    argv = ["train", "--epochs", "3", "--p", "0.5", "--n", "40"]
    code, threefry, err = run_main(capsys, *argv)
    assert code == 0, err
    code, philox, err = run_main(capsys, *argv, "--key-impl", "philox4x32")
    assert code == 0, err
    last = [line for line in philox.splitlines() if line.startswith("final training objective")]
    assert last
    assert last[0] not in threefry  # other weights and masks
    code, _, err = run_main(capsys, *argv, "--key-impl", "rbg")
    assert code != 0
    assert "--key-impl" in err
