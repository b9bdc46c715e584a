"""SweepResult.to_tensorboard and to_mlflow: what they write, read back with each tool's own reader."""

from __future__ import annotations

import pytest
import torch

import regfn


@pytest.fixture(scope="module")
def result():
    data = regfn.data.quadrants(regfn.random.key(0), 60)
    return regfn.sweep(
        regfn.nn.mlp((2, 4, 1), output="logits"),
        data,
        regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.2]),
        cv=3,
        epochs=6,
        log_every=2,
        compile=False,
        quiet=True,
    )


def test_tensorboard_runs_hold_curves_and_hparams(result, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    paths = result.to_tensorboard(tmp_path)
    assert [p.name for p in paths] == ["config-0", "config-1", "config-2", "config-3"]
    for i, path in enumerate(paths):
        acc = EventAccumulator(str(path))
        acc.Reload()
        loss = acc.Scalars("curves/loss")
        assert [e.step for e in loss] == result.curve_epochs == [2, 4, 6]
        assert [e.value for e in loss] == pytest.approx(result.curves["loss"][i].tolist(), rel=1e-6)
        assert [e.value for e in acc.Scalars("curves/val_acc")] == pytest.approx(result.curves["val_acc"][i].tolist())
        final = acc.Scalars("final/val_acc")
        assert final[0].step == 6
        assert final[0].value == pytest.approx(result.rows[i]["val_acc"])
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = {k: v.number_value for k, v in start.session_start_info.hparams.items()}
        assert hp == {h: float(result.rows[i][h]) for h in result.hyperparameters}
        assert {"l2", "p", "lr", "seed"} <= set(hp)
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        assert "final/val_acc" in {m.name.tag for m in experiment.metric_infos}


def test_mlflow_parent_and_child_runs(result, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default artifact root is ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = result.to_mlflow("regfn-test", tracking_uri=uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("regfn-test")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parent = next(r for r in runs if r.info.run_id == parent_id)
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id), key=lambda r: r.info.run_name
    )
    assert len(runs) == 5
    assert len(children) == 4
    assert parent.data.params["settings.folds"] == "3"
    assert parent.data.params["swept"] == '["l2", "p"]'
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert "results.json" in artifacts
    for i, child in enumerate(children):
        assert child.info.status == "FINISHED"
        assert child.data.params == {h: str(result.rows[i][h]) for h in result.hyperparameters}
        assert child.data.params["l2"] == str(result.rows[i]["l2"])
        assert child.data.metrics["val_acc"] == pytest.approx(result.rows[i]["val_acc"])
        history = client.get_metric_history(child.info.run_id, "curve_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [2, 4, 6]
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            result.curves["loss"][i].tolist(), rel=1e-6
        )


def test_missing_packages_name_the_extra(result, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'regfn\[mlflow\]'"):
        result.to_mlflow("x")
    with pytest.raises(ImportError, match=r"pip install 'regfn\[tensorboard\]'"):
        result.to_tensorboard("unused")
    assert torch.is_tensor(result.curves["loss"])


def test_sweep_command_writes_tensorboard_and_mlflow(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from regfn import cli

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    argv = [
        "sweep",
        "--n",
        "48",
        "--epochs",
        "3",
        "--l2",
        "0,1e-2",
        "--out",
        str(tmp_path / "out"),
        "--no-plots",
        "--quiet",
        "--tensorboard",
        str(tmp_path / "tb"),
        "--mlflow",
        uri,
        "--mlflow-experiment",
        "cli",
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    n = len((tmp_path / "out" / "results.csv").read_text().splitlines()) - 1
    assert n >= 2
    assert len(list((tmp_path / "tb").iterdir())) == n
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert len(runs) == n + 1


def test_sweep_command_refuses_a_missing_tracker_before_training(tmp_path, monkeypatch, capsys):
    import sys

    from regfn import cli

    monkeypatch.setitem(sys.modules, "mlflow", None)
    code = cli.main(["sweep", "--n", "48", "--epochs", "3", "--out", str(tmp_path), "--mlflow", "sqlite:///x.db"])
    assert code != 0
    assert "pip install 'regfn[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()
