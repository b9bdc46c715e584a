"""Checkpoints: resume bit-identical, refuse damaged files and other sweeps; provenance and regfn.verify."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pathlib
import sys
import textwrap

import pytest
import torch
from conftest import Crash, crash_after, kill_after_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import regfn
import regfn.random as rr
from regfn.cli import main

checkpoint_module = importlib.import_module("regfn._sweep._checkpoint")
ROOT = pathlib.Path(__file__).resolve().parents[1]

MODEL = regfn.mlp((2, 8, 4, 1), output="logits")
CONFIGS = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1, 2])  # 12 configurations


def kwargs(val, **kw):
    base = {"val": val, "epochs": 23, "log_every": 3, "compile": False, "threads": 1, "quiet": True, "chunk_size": 5}
    return {**base, **kw}


def assert_same_params(a, b):
    """Every row's kept parameters, bit for bit (a resumed row's from the checkpoint, or trained on from a save)."""
    assert sorted(a.trained.params) == sorted(b.trained.params) == list(range(len(a) * a.settings.get("folds", 1)))
    for row, params in a.trained.params.items():
        assert list(params) == list(b.trained.params[row])
        assert all(torch.equal(p, b.trained.params[row][n]) for n, p in params.items()), row


def assert_same(a, b):
    assert json.dumps(a.rows) == json.dumps(b.rows)  # NaN-safe, bit for bit (repr of floats)
    assert a.curve_epochs == b.curve_epochs
    assert set(a.curves) == set(b.curves)
    for name in a.curves:
        assert torch.equal(a.curves[name], b.curves[name]), name
    assert_same_params(a, b)


def interrupted_then_resumed(monkeypatch, train, directory, calls, every, kw, resume_every=None):
    with crash_after(monkeypatch, calls), pytest.raises(Crash):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=every, **kw)
    return regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=resume_every or every, **kw)


@pytest.mark.parametrize(
    ("batch_size", "key_impl"),
    [(None, "threefry2x32"), (16, "threefry2x32"), (16, "philox4x32")],
    ids=["full", "minibatch", "minibatch-philox"],
)
def test_resumed_equals_uninterrupted(split, tmp_path, monkeypatch, batch_size, key_impl):
    train, val = split
    kw = kwargs(val, batch_size=batch_size, key_impl=key_impl)
    reference = regfn.sweep(MODEL, train, CONFIGS, **kw)
    # 23 epochs, saved every 7: 4 stretches a chunk; crash in the second chunk's third stretch
    resumed = interrupted_then_resumed(monkeypatch, train, tmp_path, 6, 7, kw)
    assert_same(resumed, reference)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"chunk-{s:06d}-000005.done.safetensors" for s in (0, 5, 10)]
    whole = regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path / "whole", checkpoint_every=7, **kw)
    assert_same(whole, reference)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(every=st.integers(1, 24), calls=st.integers(0, 10), resume_every=st.integers(1, 30))
def test_any_split_point_gives_the_same_bits(split, tmp_path_factory, monkeypatch, every, calls, resume_every):
    """advance(a) then advance(b) equals advance(a + b): whatever the save points, before and after a crash."""
    train, val = split
    kw = kwargs(val, batch_size=16, epochs=11, log_every=2, chunk_size=12)
    reference = regfn.sweep(MODEL, train, CONFIGS, **kw)
    directory = tmp_path_factory.mktemp("split")
    with crash_after(monkeypatch, calls), contextlib.suppress(Crash):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=every, **kw)
    resumed = regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=resume_every, **kw)
    assert_same(resumed, reference)


CHILD = """
import sys, regfn, regfn.random as rr
data = regfn.data.quadrants(rr.key(0), 64)
train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
regfn.sweep(regfn.mlp((2, 8, 4, 1), output="logits"), train, regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1]),
            val=val, epochs=EPOCHS, log_every=50, batch_size=16, compile=False, threads=1, quiet=True, chunk_size=4,
            checkpoint=sys.argv[1], checkpoint_every=10)
"""


def test_sigkill_mid_run_then_resume_is_bit_identical(split, tmp_path):
    train, val = split
    epochs = 160
    directory = tmp_path / "ck"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).replace("EPOCHS", str(epochs)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kill_after_file([sys.executable, str(script), str(directory)], env, directory, "chunk-*.safetensors")
    left = sorted(p.name for p in directory.glob("chunk-*.safetensors"))
    assert (left and not all(".done." in n for n in left)) or len(left) < 3  # killed mid-run
    kw = {"val": val, "epochs": epochs, "log_every": 50, "batch_size": 16, "compile": False, "threads": 1}
    kw.update(quiet=True, chunk_size=4)
    configs = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1])
    resumed = regfn.sweep(MODEL, train, configs, checkpoint=directory, checkpoint_every=10, **kw)
    assert_same(resumed, regfn.sweep(MODEL, train, configs, **kw))


def test_finished_chunks_are_not_rerun(split, tmp_path, monkeypatch):
    train, val = split
    kw = kwargs(val)
    with crash_after(monkeypatch, 6), pytest.raises(Crash):  # chunk 0 done (4 stretches), chunk 1 at epoch 14
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    with crash_after(monkeypatch, 100) as calls:
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    assert len(calls) == 2 + 4  # chunk 1 from epoch 14 (to 21, to 23), chunk 2 whole
    with crash_after(monkeypatch, 0):  # everything done: no training at all
        again = regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    assert_same(again, regfn.sweep(MODEL, train, CONFIGS, **kw))


def test_done_rows_are_reassembled_across_another_chunking(split, tmp_path):
    """Rows are keyed by global index: a driver whose chunks start elsewhere reuses finished rows."""
    train, val = split
    store = checkpoint_module.Checkpoint(tmp_path, 7)
    regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kwargs(val))
    whole = store.finished(0, 12)
    part = store.finished(3, 6)  # rows 3 .. 8 span the first two files
    assert part is not None
    assert whole is not None
    (part_tensors, meta), (whole_tensors, _) = part, whole
    assert meta["names"]["metrics"][:3] == ["loss", "penalty", "acc"]  # the columns' order
    assert torch.equal(part_tensors["curves/loss"], whole_tensors["curves/loss"][3:9])
    assert torch.equal(part_tensors["metrics/loss"], whole_tensors["metrics/loss"][3:9])
    assert store.finished(10, 3) is None  # row 12 does not exist


def damage(path, how):
    blob = bytearray(path.read_bytes())
    if how == "truncate":
        blob = blob[: len(blob) - 10]
    elif how == "header":
        blob[12] ^= 0xFF
    else:  # a byte of tensor data
        blob[-3] ^= 0x01
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["truncate", "header", "data"])
@pytest.mark.parametrize("kind", ["done", "running"])
def test_damaged_checkpoint_is_refused(split, tmp_path, monkeypatch, how, kind):
    train, val = split
    kw = kwargs(val)
    if kind == "done":
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
        path = tmp_path / "chunk-000005-000005.done.safetensors"
    else:
        with crash_after(monkeypatch, 2), pytest.raises(Crash):
            regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
        path = tmp_path / "chunk-000000-000005.safetensors"
    damage(path, how)
    with pytest.raises(ValueError, match=r"checkpoint .*chunk-0000\d\d-000005.*is damaged .*delete it to restart"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    path.unlink()  # as the message says: that chunk restarts, the others are kept
    assert_same(
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw),
        regfn.sweep(MODEL, train, CONFIGS, **kw),
    )


def test_another_sweep_is_refused_naming_what_differs(split, tmp_path, monkeypatch):
    train, val = split
    kw = kwargs(val)
    with crash_after(monkeypatch, 2), pytest.raises(Crash):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    other = [*CONFIGS[:-1], {**CONFIGS[-1], "l2": 0.5}]
    with pytest.raises(ValueError, match=r"written by a different sweep: configurations differ \(hash \w+ != \w+\)"):
        regfn.sweep(MODEL, train, other, checkpoint=tmp_path, checkpoint_every=7, **kw)
    with pytest.raises(ValueError, match=r"epochs differs \(23 != 24\); log_every differs \(3 != 4\)"):
        regfn.sweep(
            MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **{**kw, "epochs": 24, "log_every": 4}
        )
    with pytest.raises(ValueError, match=r"chunk_size differs \(5 != 6; .* pass an int chunk_size to resume on"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, **{**kw, "chunk_size": 6})
    with pytest.raises(ValueError, match=r"validation data differs"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, **{**kw, "val": train})
    with pytest.raises(ValueError, match=r"key_impl differs \('threefry2x32' != 'philox4x32'\)"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, **{**kw, "key_impl": "philox4x32"})


def test_checkpoint_every_is_checked(split, tmp_path):
    train, _ = split
    with pytest.raises(ValueError, match=r"regfn\.sweep: checkpoint_every must be an int >= 1, got 0"):
        regfn.sweep(MODEL, train, CONFIGS, epochs=2, checkpoint=tmp_path, checkpoint_every=0, quiet=True)
    with pytest.raises(TypeError, match="checkpoint_every must be an int"):
        regfn.sweep(MODEL, train, CONFIGS, epochs=2, checkpoint=tmp_path, checkpoint_every=2.5, quiet=True)


def test_a_crash_between_write_and_replace_keeps_the_previous_file(split, tmp_path, monkeypatch):
    train, val = split
    kw = kwargs(val)
    with crash_after(monkeypatch, 2), pytest.raises(Crash):  # chunk 0 saved at epoch 14
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    path = tmp_path / "chunk-000000-000005.safetensors"
    before = path.read_bytes()

    def replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    with pytest.raises(OSError, match="disk gone"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw)
    assert path.read_bytes() == before
    assert (tmp_path / "chunk-000000-000005.safetensors.tmp").exists()  # the write that never landed
    monkeypatch.undo()
    assert_same(
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=7, **kw),
        regfn.sweep(MODEL, train, CONFIGS, **kw),
    )


# ----------------------------------------------------------------- provenance and verify


def test_provenance_is_written_and_read_back(split, tmp_path):
    train, val = split
    result = regfn.sweep(MODEL, train, CONFIGS, **kwargs(val))
    prov = result.provenance
    assert prov["configurations"] == [{"l2": c["l2"], "p": c["p"], "seed": c["seed"]} for c in CONFIGS]
    assert prov["spec"]["model"]["mlp"]["sizes"] == [2, 8, 4, 1]
    assert prov["spec"]["loss"] == "bce_logits"
    assert prov["spec"]["epochs"] == 23
    assert prov["data_sha256"] == checkpoint_module.data_fingerprint(train)
    assert prov["versions"]["torch"] == torch.__version__
    assert prov["versions"]["regfn"] == regfn.__version__
    assert prov["device"] == "cpu"
    assert prov["world_size"] == 1
    assert prov["arguments"]["chunk_size"] == 5
    assert prov["arguments"]["compile"] is False
    result.to_json(tmp_path / "results.json")
    back = regfn.SweepResult.from_json(tmp_path / "results.json")
    assert back.provenance == json.loads(json.dumps(prov))
    assert back.rows == result.rows
    assert back.curve_epochs == result.curve_epochs
    assert back.hyperparameters == result.hyperparameters
    assert back.settings == result.settings
    assert torch.equal(back.curves["loss"], result.curves["loss"].double())
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"not a regfn results\.json"):
        regfn.SweepResult.from_json(tmp_path / "bad.json")


def test_verify_untouched_and_edited(split, tmp_path):
    train, val = split
    path = tmp_path / "results.json"
    regfn.sweep(MODEL, train, CONFIGS, **kwargs(val, batch_size=16)).to_json(path)
    report = regfn.verify(path, MODEL, train, val=val)
    assert report.identical
    assert report.differences == []
    assert "all 12 rows are bit-identical" in str(report)
    assert not any("when recorded" in note for note in report.notes)
    edited = json.loads(path.read_text())
    edited["provenance"]["versions"]["regfn"] = "0.0.1"  # a rerun by another release may differ in the last bits
    edited["rows"][4]["val_acc"] += 0.125
    edited["curves"]["loss"][7][2] *= 1.0000001
    path.write_text(json.dumps(edited))
    report = regfn.verify(path, MODEL, train, val=val)
    assert not report.identical
    assert report.differing_rows == [4, 7]
    (row, column, stored, rerun), second = report.differences
    assert (row, column, stored - rerun) == (4, "val_acc", 0.125)
    assert second[:2] == (7, "curves.loss[2]")
    assert "2 of 12 rows differ: 4, 7" in str(report)
    assert "by 0.125" in str(report)
    assert f"note: regfn {regfn.__version__} here, 0.0.1 when recorded" in report.notes
    with pytest.raises(ValueError, match=r"regfn\.verify: data is not the data the sweep ran on"):
        regfn.verify(path, MODEL, val, val=val)
    with pytest.raises(ValueError, match=r"regfn\.verify: the model is not the one"):
        regfn.verify(path, regfn.mlp((2, 8, 1), output="logits"), train, val=val)


def test_cli_checkpoint_and_verify_exit_statuses(tmp_path):
    out = tmp_path / "out"
    argv = ["sweep", "--n", "64", "--epochs", "6", "--seeds", "2", "--l2", "0,1e-2", "--p", "0", "--no-plots"]
    argv += ["--quiet", "--no-compile", "--threads", "1", "--top", "0", "--out", str(out)]
    argv += ["--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "4"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["chunk-000000-000004.done.safetensors"]
    results = out / "results.json"
    assert json.loads(results.read_text())["provenance"]["argv"] == argv
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["verify", str(results)]) == 0
    assert "all 4 rows are bit-identical" in stdout.getvalue()
    edited = json.loads(results.read_text())
    edited["rows"][1]["loss"] = 0.5
    results.write_text(json.dumps(edited))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["verify", str(results)]) == 1
    assert "1 of 4 rows differ: 1" in stdout.getvalue()
    assert "row 1 loss: stored 0.5" in stdout.getvalue()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["verify", str(tmp_path / "missing.json")]) == 2
        del edited["provenance"]["argv"]
        results.write_text(json.dumps(edited))
        assert main(["verify", str(results)]) == 2
    assert "no such file" in stderr.getvalue()
    assert "not written by 'regfn sweep'" in stderr.getvalue()


# ----------------------------------------------------------------- schedules (schedule.safetensors on one process)

SCHEDULES = {
    "halving": lambda: regfn.search.successive_halving("val_loss", min_epochs=2, eta=3),
    "hyperband": lambda: regfn.search.hyperband("val_acc", min_epochs=2, eta=3),
    "pbt": lambda: regfn.search.pbt(interval=4, key=rr.key(3)),
}


def scheduled_run(split, kind, cv=False):
    train, val = split
    kw = {"epochs": 18, "log_every": 1, "compile": False, "threads": 1, "quiet": True, "chunk_size": 5}
    kw["schedule"] = SCHEDULES[kind]()
    if cv:
        kw["cv"] = 3
        return train, kw
    kw["val"] = val
    return train, kw


def assert_same_schedule(a, b):
    assert json.dumps(a.rows) == json.dumps(b.rows)
    assert a.curve_epochs == b.curve_epochs
    assert set(a.curves) == set(b.curves)
    for name in a.curves:  # stopped configurations' curves are NaN after their stop: NaN-safe, bit for bit
        torch.testing.assert_close(a.curves[name], b.curves[name], rtol=0, atol=0, equal_nan=True)
    assert a.schedule == b.schedule
    assert a.settings == b.settings  # chunk sizes and configuration-epochs too
    assert_same_params(a, b)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.integers(0, 30))
@pytest.mark.parametrize(("kind", "cv"), [("halving", False), ("hyperband", False), ("pbt", False), ("halving", True)])
def test_an_interrupted_schedule_resumes_bit_identical(split, tmp_path_factory, monkeypatch, kind, cv, calls):
    train, kw = scheduled_run(split, kind, cv)
    reference = regfn.sweep(MODEL, train, CONFIGS, **kw)
    with crash_after(monkeypatch, 10**6) as every_call:  # a whole checkpointed run: its stretches of 3 epochs
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path_factory.mktemp("whole"), checkpoint_every=3, **kw)
    directory = tmp_path_factory.mktemp("ck")
    with crash_after(monkeypatch, calls), contextlib.suppress(Crash):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=3, **kw)
    saved = calls > 0 and (directory / "schedule.safetensors").exists()  # a stretch trained, then saved
    with crash_after(monkeypatch, 10**6) as resumed_calls:
        resumed = regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=3, **kw)
    assert_same_schedule(resumed, reference)
    if saved:  # it went on from the save: fewer stretches than a whole run
        assert len(resumed_calls) < len(every_call)


def test_a_finished_schedule_is_not_rerun_and_another_schedule_is_refused(split, tmp_path, monkeypatch):
    train, kw = scheduled_run(split, "halving")
    first = regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=3, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schedule.safetensors"]
    with crash_after(monkeypatch, 0):  # nothing left to train
        again = regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=3, **kw)
    assert_same_schedule(again, first)
    other = {**kw, "schedule": regfn.search.successive_halving("val_loss", min_epochs=3, eta=3)}
    with pytest.raises(ValueError, match=r"schedule differs .*min_epochs=2.* != .*min_epochs=3"):
        regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path, checkpoint_every=3, **other)
    pbt_kw = {**kw, "schedule": regfn.search.pbt(interval=4, key=rr.key(3))}
    regfn.sweep(MODEL, train, CONFIGS, checkpoint=tmp_path / "pbt", checkpoint_every=3, **pbt_kw)
    with pytest.raises(ValueError, match="schedule differs"):  # PBT's key decides the copies: part of the record
        regfn.sweep(
            MODEL,
            train,
            CONFIGS,
            checkpoint=tmp_path / "pbt",
            checkpoint_every=3,
            **{**kw, "schedule": regfn.search.pbt(interval=4, key=rr.key(4))},
        )


SCHEDULED_CHILD = """
import sys, regfn, regfn.random as rr
data = regfn.data.quadrants(rr.key(0), 64)
train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
regfn.sweep(regfn.mlp((2, 8, 4, 1), output="logits"), train, regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1, 2]),
            val=val, epochs=600, log_every=50, batch_size=16, compile=False, threads=1, quiet=True,
            schedule=regfn.search.successive_halving("val_loss", min_epochs=60, eta=3),
            checkpoint=sys.argv[1], checkpoint_every=20)
"""


def test_sigkill_mid_schedule_then_resume_is_bit_identical(split, tmp_path):
    train, val = split
    directory = tmp_path / "ck"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(SCHEDULED_CHILD))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # killed once the first rung's outcome is saved (the first save of generation 1 moves generation 0's aside)
    kill_after_file([sys.executable, str(script), str(directory)], env, directory, "schedule.previous.safetensors")
    kw = {"val": val, "epochs": 600, "log_every": 50, "batch_size": 16, "compile": False, "threads": 1, "quiet": True}
    kw["schedule"] = regfn.search.successive_halving("val_loss", min_epochs=60, eta=3)
    resumed = regfn.sweep(MODEL, train, CONFIGS, checkpoint=directory, checkpoint_every=20, **kw)
    assert_same_schedule(resumed, regfn.sweep(MODEL, train, CONFIGS, **kw))
