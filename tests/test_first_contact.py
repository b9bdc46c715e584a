"""First contact: the README's defaults work, checks come before the work, and runs say how they ran."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import regfn
import regfn.random as rr
from regfn._sweep import _progress as progress_module

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_sweep_snippet() -> str:
    """The Sweeps guide's example (it was the README's before the site, docs/guides/sweeps.md)."""
    text = (ROOT / "docs" / "guides" / "sweeps.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_sweep_snippet_reaches_the_commands_accuracy(tmp_path):
    """The Sweeps guide's sweep, as written (its data from the tour), against `regfn sweep`'s defaults."""
    snippet = _readme_sweep_snippet()
    assert "epochs=300" in snippet
    setup = textwrap.dedent(
        """
        import regfn, regfn.random as rr
        data = regfn.data.quadrants(rr.key(1), 400)
        train, val = regfn.data.train_val_split(rr.key(2), data, 0.25)
        train, val, stats = regfn.data.standardize(train, val)
        model = regfn.mlp((2, 16, 8, 1), output="logits")
        """
    )
    code = setup + snippet.split("result.to_csv")[0].replace("print(result.table(10))", "")
    code = code.replace('"figures/"', repr(str(tmp_path / "figures")))
    scope: dict = {}
    exec(compile(code, "docs/guides/sweeps.md", "exec"), scope)
    readme = scope["result"]
    best_readme = max(r["val_acc"] for r in readme.rows)
    from regfn.cli import main

    assert main(["sweep", "--quiet", "--no-plots", "--out", str(tmp_path / "cli"), "--data-seed", "1"]) == 0
    lines = (tmp_path / "cli" / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    best_cli = max(float(line.split(",")[header.index("val_acc")]) for line in lines[1:])
    assert best_readme >= best_cli - 0.02, (best_readme, best_cli)
    assert best_readme >= 0.95
    assert readme.settings["compile"] is False  # a short CPU sweep runs eagerly: no minute of compiling


def test_train_is_a_sweep_of_one():
    data = regfn.data.quadrants(rr.key(0), 120)
    train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
    model = regfn.mlp((2, 8, 4, 1), output="logits")
    cfg = {"lr": 0.1, "momentum": 0.9, "l2": 1e-3, "p": 0.3, "seed": 7}
    swept = regfn.sweep(model, train, [cfg], val=val, epochs=20, batch_size=16, compile=False, quiet=True)
    single = regfn.train(
        model, train, optimizer=regfn.optim.sgd(0.1, momentum=0.9), penalties=[regfn.l2(1e-3)], p=0.3,
        key=rr.key(7), epochs=20, batch_size=16, val=val,
    )  # fmt: skip
    row = swept.rows[0]
    assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-6, abs=1e-7)
    assert row["acc"] == single.metrics["acc"]
    assert row["val_acc"] == single.val_metrics["acc"]
    assert row["collapsed"] == single.collapsed


def test_a_ten_million_config_grid_is_refused_at_once_without_memory():
    code = textwrap.dedent(
        """
        import resource, time, regfn
        data = regfn.data.quadrants(regfn.random.key(0), 64)
        grid = {"l2": [0.0] * 100, "p": [0.1] * 100, "seed": range(1000)}
        t = time.perf_counter()
        try:
            regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data, grid, epochs=300)
        except ValueError as err:
            print("refused:", err)
        print("seconds", time.perf_counter() - t)
        print("maxrss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "refused: regfn.sweep: 10,000,000 configurations need about" in out
    assert "sweep at most about" in out
    assert float(re.search(r"seconds (\S+)", out).group(1)) < 10
    assert float(re.search(r"maxrss_mb (\S+)", out).group(1)) < 1024


def test_cli_refuses_a_ten_million_config_grid_at_once(tmp_path):
    from regfn.cli import main

    argv = ["sweep", "--l2", "lin:0:1:100", "--p", "lin:0:0.5:100", "--seeds", "1000", "--out", str(tmp_path)]
    assert main([*argv, "--quiet"]) == 2


def test_settings_say_how_the_sweep_ran(monkeypatch):
    data = regfn.data.quadrants(rr.key(0), 64)
    model = regfn.mlp((2, 4, 1), output="logits")
    short = regfn.sweep(model, data, [{}] * 5, epochs=3, quiet=True)
    assert short.settings == {
        "compile": False,
        "threads": 1,
        "chunk_size": 5,
        "padded": 5,
        "world_size": 1,
        "loss": "bce_logits",
        "loss_from_task": True,
        "key_impl": "threefry2x32",
        "engine": "vmap",
        "keep": "all",
    }
    fixed = regfn.sweep(model, data, [{}] * 5, epochs=3, quiet=True, compile=False, threads=2)
    assert (fixed.settings["compile"], fixed.settings["threads"]) == (False, 2)
    from regfn._sweep import _vmap

    calls = []
    real = _vmap.VmapEngine.warm_up
    monkeypatch.setattr(_vmap.VmapEngine, "warm_up", lambda self, hp: calls.append(len(hp["lr"])) or real(self, hp))
    auto = regfn.sweep(model, data, [{"seed": s} for s in range(80)], epochs=30, quiet=True)  # 2400 config-epochs
    assert calls == []  # nothing timed: the choice is the workload's (regfn._sweep._auto)
    assert (auto.settings["compile"], auto.settings["threads"]) == (False, 1)
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        regfn.sweep(model, data, [{}], epochs=1, compile="yes")


def test_progress_bar_counts_configuration_epochs(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    bars = []

    class Recording:
        def __init__(self, **kwargs):
            self.kwargs, self.n = kwargs, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

        def close(self):
            pass

    monkeypatch.setattr(tqdm_auto, "tqdm", Recording)
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)
    data = regfn.data.quadrants(rr.key(0), 64)
    regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data, [{}] * 5, epochs=4, chunk_size=2, compile=False)
    (bar,) = bars
    assert bar.kwargs["total"] == 5 * 4
    assert bar.kwargs["unit"] == "config-epoch"
    assert bar.n == 20  # three chunks (2, 2, 1 real configs), the padding not counted


def test_progress_off_a_terminal_is_one_line_per_chunk_or_rung(capsys):
    # A bar's frames in a log file pile up as carriage returns: off a terminal the sweep prints lines instead.
    data = regfn.data.quadrants(rr.key(0), 64)
    model = regfn.mlp((2, 4, 1), output="logits")
    regfn.sweep(model, data, [{}] * 5, epochs=4, chunk_size=2, compile=False)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("sweep:")]
    assert [line.split(" (")[0] for line in lines] == [
        "sweep: 8/20 config-epochs, a chunk of 2 done",
        "sweep: 16/20 config-epochs, a chunk of 2 done",
        "sweep: 20/20 config-epochs, a chunk of 1 done",
    ]
    train, val = regfn.data.train_val_split(rr.key(1), data)
    halving = regfn.search.successive_halving(min_epochs=1, eta=2)
    regfn.sweep(model, train, [{"seed": s} for s in range(4)], val=val, epochs=2, compile=False, schedule=halving)
    lines = [line.split(" (")[0] for line in capsys.readouterr().err.splitlines() if line.startswith("sweep:")]
    assert lines == [
        "sweep: 4/6 config-epochs, epoch 1: 2 live, 2 stopped, 0 copied",
        "sweep: 6/6 config-epochs, a chunk of 2 done",
    ]
    regfn.sweep(model, data, [{}] * 5, epochs=4, chunk_size=2, compile=False, quiet=True)
    assert capsys.readouterr().err == ""
