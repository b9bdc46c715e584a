"""Schedules inside one sweep: successive halving, Hyperband, population-based training."""

from __future__ import annotations

import math

import pytest
import torch

import regfn
import regfn.random as rr
from regfn._sweep._strategies import Decision, Stage, Strategy
from regfn.search import hyperband, pbt, successive_halving
from regfn.search._schedules import schedule_from_dict

MODEL = regfn.mlp((2, 8, 1), output="logits")
RUN = {"compile": False, "threads": 1, "quiet": True, "log_every": 1}


@pytest.fixture(scope="module")
def split():
    data = regfn.data.quadrants(rr.key(0), 160)
    return regfn.data.train_val_split(rr.key(1), data)


CONFIGS = regfn.grid(l2=[0.0, 1e-3, 1e-2], p=[0.0, 0.25, 0.5], seed=[0, 1, 2], lr=[0.3])


def _same_row(row, ref, rel=1e-5):
    for name in ("loss", "penalty", "acc", "val_loss", "val_acc", "zero_frac"):
        assert row[name] == pytest.approx(ref[name], rel=rel, abs=1e-6), name


def test_survivors_train_as_in_a_plain_sweep_and_stopped_rows_keep_their_rung(split):
    train, val = split
    kw = RUN | {"val": val, "epochs": 9, "batch_size": 32}
    sh = successive_halving(min_epochs=1, eta=3)
    res = regfn.sweep(MODEL, train, CONFIGS, schedule=sh, **kw)
    plain = regfn.sweep(MODEL, train, CONFIGS, **kw)
    stopped = [r["stopped_epoch"] for r in res.rows]
    assert sorted(stopped) == [1] * 18 + [3] * 6 + [9] * 3  # 27 -> 9 -> 3 survive rungs at epochs 1 and 3
    assert [r["rung"] for r in res.rows] == [{1: 0, 3: 1, 9: 2}[e] for e in stopped]
    assert res.settings["chunk_sizes"] == [3, 9, 27]
    # the survivors: rows and whole curves equal the plain sweep's (dropout masks and batch orders are theirs)
    for i in (i for i, e in enumerate(stopped) if e == 9):
        _same_row(res.rows[i], plain.rows[i])
        for name, curve in res.curves.items():
            torch.testing.assert_close(curve[i], plain.curves[name][i], rtol=1e-5, atol=1e-6)
    # a stopped configuration: its curve up to its stop, NaN after; its row is a plain sweep's of that length
    i = stopped.index(3)
    assert torch.isnan(res.curves["val_loss"][i, 3:]).all()
    torch.testing.assert_close(res.curves["val_loss"][i, :3], plain.curves["val_loss"][i, :3], rtol=1e-5, atol=1e-6)
    short = regfn.sweep(MODEL, train, [CONFIGS[i]], **kw | {"epochs": 3})
    _same_row(res.rows[i], short.rows[0])
    assert not res.diverged


def test_the_rungs_keep_the_best_by_the_metric_ties_by_index(split):
    train, val = split
    res = regfn.sweep(
        MODEL, train, CONFIGS, val=val, epochs=4, schedule=successive_halving("val_acc", min_epochs=2, eta=4), **RUN
    )
    (bracket,) = res.schedule["brackets"]
    (rung,) = bracket["rungs"]
    assert (rung["epoch"], rung["live"], len(rung["kept"])) == (2, list(range(27)), 7)
    ranked = sorted(rung["live"], key=lambda i: (-rung["values"][i], i))
    assert rung["kept"] == sorted(ranked[:7])
    assert [i for i, r in enumerate(res.rows) if r["stopped_epoch"] == 4] == rung["kept"]
    for i in rung["live"]:  # the rung's value is the stopped row's metric
        if i not in rung["kept"]:
            assert res.rows[i]["val_acc"] == pytest.approx(rung["values"][i])


def test_hyperband_runs_its_brackets(split):
    train, val = split
    hb = hyperband(min_epochs=1, eta=3)
    assert hb.brackets(27, 9) == [(14, 1), (8, 3), (5, 9)]
    res = regfn.sweep(MODEL, train, CONFIGS, val=val, epochs=9, schedule=hb, **RUN)
    assert [r["bracket"] for r in res.rows] == [0] * 14 + [1] * 8 + [2] * 5
    assert [r["stopped_epoch"] for r in res.rows[22:]] == [9] * 5  # the last bracket trains every epoch
    assert sum(r["stopped_epoch"] == 9 for r in res.rows[:14]) == 2  # 14 -> 5 -> 2
    plain = regfn.sweep(MODEL, train, CONFIGS[22:], val=val, epochs=9, **RUN)
    for row, ref in zip(res.rows[22:], plain.rows, strict=True):
        _same_row(row, ref)


def test_pbt_copies_state_and_is_reproducible(split):
    train, val = split
    # without dropout and full batch, the keys do not matter: a copy (factor 1) then trains as its source
    configs = regfn.grid(l2=[0.0, 1e-3, 1e-2, 3e-2], seed=[0, 1], lr=[0.3])
    schedule = pbt(interval=3, quantile=0.25, perturb=(1.0, 1.0), key=rr.key(5))
    res = regfn.sweep(MODEL, train, configs, val=val, epochs=9, schedule=schedule, **RUN)
    rec = res.schedule
    assert (rec["kind"], rec["epochs"], rec["names"]) == ("pbt", [0, 3, 6], ["l2"])
    plain = regfn.sweep(MODEL, train, configs, val=val, epochs=9, **RUN)
    # up to the first exploit every configuration is a plain run
    torch.testing.assert_close(res.curves["val_loss"][:, :3], plain.curves["val_loss"][:, :3], rtol=1e-5, atol=1e-6)
    ranked = sorted(range(8), key=lambda i: (res.curves["val_loss"][i, 2].item(), i))
    copies = 0
    for j, (epoch, srcs) in enumerate(zip((3, 6), rec["sources"], strict=True)):
        if epoch == 3:  # the worst quarter copies the best quarter
            assert sorted(d for d, s in enumerate(srcs) if d != s) == sorted(ranked[-2:])
            assert {s for d, s in enumerate(srcs) if d != s} <= set(ranked[:2])
        for dst, src in enumerate(srcs):
            if dst == src:
                continue
            copies += 1
            assert res.rows[dst]["lineage"][j] == src
            assert rec["hp"]["l2"][dst][j + 1] == rec["hp"]["l2"][src][j + 1]
            # the copy took the source's parameters and optimizer state: it trains as the source until the next exploit
            torch.testing.assert_close(
                res.curves["val_loss"][dst, epoch : epoch + 3], res.curves["val_loss"][src, epoch : epoch + 3]
            )
    assert copies == 4  # 2 of 8 at each exploit
    again = regfn.sweep(MODEL, train, configs, val=val, epochs=9, schedule=schedule, **RUN)
    assert again.rows == res.rows
    assert again.schedule == res.schedule
    for name, curve in res.curves.items():
        assert torch.equal(curve, again.curves[name])


def test_pbt_perturbs_within_range_with_its_key(split):
    train, val = split
    configs = [
        {"p": p, "lr": lr, "seed": s} for p, lr, s in [(0.9, 0.3, 0), (0.5, 0.1, 1), (0.0, 0.03, 2), (0.1, 1.0, 3)]
    ]
    run = RUN | {"val": val, "epochs": 6, "batch_size": 32}
    a = regfn.sweep(MODEL, train, configs, schedule=pbt(2, 0.5, (1.5, 2.0), key=rr.key(1)), **run)
    b = regfn.sweep(MODEL, train, configs, schedule=pbt(2, 0.5, (1.5, 2.0), key=rr.key(2)), **run)
    assert a.schedule["names"] == ["lr", "p"]
    history = a.schedule["hp"]
    assert all(0.0 <= v <= 1.0 for row in history["p"] for v in row)
    for j, srcs in enumerate(a.schedule["sources"], start=1):
        for dst, src in enumerate(srcs):
            if dst != src:  # the source's values times 1.5 or 2 (the lr has no upper end)
                ratio = history["lr"][dst][j] / history["lr"][src][j]
                assert min(abs(ratio - 1.5), abs(ratio - 2.0)) < 1e-5
            else:
                assert history["lr"][dst][j] == history["lr"][dst][j - 1]
    assert a.rows[0]["hp_schedule"]["lr"][0] == pytest.approx(0.3)
    assert a.schedule["sources"] != b.schedule["sources"] or a.schedule["hp"] != b.schedule["hp"]


def test_pbt_perturbs_an_optimizer_argument_nobody_set(split):
    train, val = split
    configs = regfn.grid(seed=range(4), lr=[0.1])
    res = regfn.sweep(
        MODEL, train, configs, val=val, epochs=4, optimizer="sgd",
        schedule=pbt(1, 0.5, (1.2, 1.2), key=rr.key(0), names=["lr", "momentum", "dampening"]), **RUN,
    )  # fmt: skip
    dampening = res.schedule["hp"]["dampening"]
    assert all(v == 0.0 for row in dampening for v in row)  # 0 * 1.2 stays 0: the values are the registry's
    momentum = res.schedule["hp"]["momentum"]  # SGD's default 0.9, perturbed
    assert any(row[-1] != 0.9 for row in momentum)
    lr = res.schedule["hp"]["lr"]
    assert any(row[-1] != 0.1 for row in lr)


def test_bad_schedules_are_refused(split):
    train, val = split
    with pytest.raises(ValueError, match=r"successive_halving: eta must be an int >= 2, got 1"):
        successive_halving(min_epochs=1, eta=1)
    with pytest.raises(TypeError, match=r"successive_halving: eta must be an int, got float 2.5"):
        successive_halving(min_epochs=1, eta=2.5)
    with pytest.raises(ValueError, match=r"hyperband: min_epochs must be an int >= 1, got 0"):
        hyperband(min_epochs=0)
    with pytest.raises(ValueError, match=r"pbt: quantile must be in \(0, 0.5\], got 0.6"):
        pbt(5, 0.6, key=rr.key(0))
    with pytest.raises(ValueError, match=r"pbt: quantile must be in \(0, 0.5\], got 0"):
        pbt(5, 0, key=rr.key(0))
    with pytest.raises(ValueError, match=r"pbt: perturb must be > 0, got -1"):
        pbt(5, perturb=(-1, 2), key=rr.key(0))
    with pytest.raises(TypeError, match=r"pbt: perturb must be a pair"):
        pbt(5, perturb=(1.0, 2.0, 3.0), key=rr.key(0))
    with pytest.raises(ValueError, match=r"metric must be one of \['val_loss', 'val_acc', 'val_mse'\], got 'acc'"):
        successive_halving("acc", min_epochs=1)
    sh = successive_halving(min_epochs=1)
    with pytest.raises(ValueError, match=r"ranks configurations on validation data: pass val="):
        regfn.sweep(MODEL, train, CONFIGS[:2], epochs=3, schedule=sh, **RUN)
    with pytest.raises(ValueError, match=r"metric must be one of \['val_loss', 'val_acc'\] .*got 'val_mse'"):
        regfn.sweep(
            MODEL, train, CONFIGS[:2], val=val, epochs=3, schedule=successive_halving("val_mse", min_epochs=1), **RUN
        )
    with pytest.raises(ValueError, match=r"pbt names must be float hyperparameters .*got 'seed'"):
        regfn.sweep(MODEL, train, CONFIGS[:2], val=val, epochs=3, schedule=pbt(1, key=rr.key(0), names=["seed"]), **RUN)
    with pytest.raises(ValueError, match=r"optimizer 'sgd' has no beta1"):
        regfn.sweep(
            MODEL, train, CONFIGS[:2], val=val, epochs=3, schedule=pbt(1, key=rr.key(0), names=["beta1"]), **RUN
        )
    with pytest.raises(TypeError, match=r"schedule must be made by regfn.search"):
        regfn.sweep(MODEL, train, CONFIGS[:2], val=val, epochs=3, schedule="halving", **RUN)


def test_successive_halving_rungs():
    assert successive_halving(min_epochs=1, eta=3).rungs(27) == [1, 3, 9]
    assert successive_halving(min_epochs=5, eta=2).rungs(5) == []
    assert successive_halving(min_epochs=1, eta=2, max_rungs=1).rungs(100) == [1]
    assert sum(n for n, _ in hyperband(min_epochs=1, eta=3).brackets(5, 81)) == 5
    assert math.prod(1 for _ in hyperband(min_epochs=2).brackets(100, 81)) == 1


@pytest.mark.slow
def test_compiled_schedules_compile_a_bounded_number_of_programs(split):
    """Successive halving compiles one program per bucket size it meets; PBT's exploit steps compile nothing."""
    from torch._dynamo.utils import counters

    train, val = split
    run = RUN | {"compile": True, "val": val, "epochs": 4}
    configs = CONFIGS[:6]
    before = counters["stats"]["unique_graphs"]
    res = regfn.sweep(MODEL, train, configs, schedule=successive_halving(min_epochs=1, eta=3), **run)
    assert res.settings["chunk_sizes"] == [1, 2, 6]  # bucket sizes for 6 -> 2 -> 1 configurations
    # per bucket size: the step, the evaluation on train and on validation data (and at most one graph break)
    assert counters["stats"]["unique_graphs"] - before <= 4 * len(res.settings["chunk_sizes"])
    graphs = counters["stats"]["unique_graphs"]
    again = regfn.sweep(MODEL, train, configs, schedule=successive_halving(min_epochs=1, eta=3), **run)
    assert counters["stats"]["unique_graphs"] == graphs  # a second schedule reuses every program
    assert [r["stopped_epoch"] for r in again.rows] == [r["stopped_epoch"] for r in res.rows]
    plain = regfn.sweep(MODEL, train, configs, **run)  # compiles the 6-configuration program's eval if needed
    graphs = counters["stats"]["unique_graphs"]
    regfn.sweep(MODEL, train, configs, schedule=pbt(1, 0.5, key=rr.key(0)), **run)
    assert counters["stats"]["unique_graphs"] == graphs  # copies and new hyperparameter values are data
    assert plain.settings["chunk_size"] == 6


def test_plot_all_draws_the_schedule(split, tmp_path):
    pytest.importorskip("matplotlib")
    import regfn.plot

    train, val = split
    run = RUN | {"val": val, "epochs": 4}
    sh = regfn.sweep(MODEL, train, CONFIGS[:8], schedule=hyperband(min_epochs=1, eta=2), **run)
    assert "rungs.png" in [p.name for p in regfn.plot.plot_all(sh, tmp_path / "sh")]
    pb = regfn.sweep(MODEL, train, CONFIGS[:8], schedule=pbt(2, key=rr.key(0)), **run)
    assert "pbt.png" in [p.name for p in regfn.plot.plot_all(pb, tmp_path / "pbt")]
    with pytest.raises(ValueError, match="no PBT schedule"):
        regfn.plot.plot_pbt(sh, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no successive-halving or Hyperband schedule"):
        regfn.plot.plot_rungs(pb, tmp_path / "x.png")
    assert pb.to_dict()["schedule"]["kind"] == "pbt"


@pytest.mark.parametrize(
    "schedule",
    [successive_halving("val_acc", min_epochs=1), hyperband(min_epochs=1), pbt(3, key=rr.key(2))],
    ids=["halving", "hyperband", "pbt"],
)
def test_verify_reruns_the_schedule_from_the_provenance(split, tmp_path, schedule):
    train, val = split
    result = regfn.sweep(MODEL, train, CONFIGS[:9], val=val, epochs=9, schedule=schedule, **RUN)
    path = tmp_path / "results.json"
    result.to_json(path)
    recorded = regfn.SweepResult.from_json(path).provenance["arguments"]["schedule"]
    assert (
        recorded["kind"]
        == {"SuccessiveHalving": "successive_halving", "Hyperband": "hyperband", "PBT": "pbt"}[type(schedule).__name__]
    )
    report = regfn.verify(path, MODEL, train, val=val)
    assert report.identical, str(report)


# ----------------------------------------------------------------- a schedule of one's own


class StopTheWorseHalfOnce(Strategy):
    """A schedule written outside regfn (CONTRIBUTING.md's recipe): halfway, the worse half by val_loss stops."""

    metric = "val_loss"
    stops = True

    def stages(self, n_configs, epochs):
        return [Stage(list(range(n_configs)), [epochs // 2])]

    def decide(self, stage, epoch, configs, values):
        ranked = [c for _, c in sorted(zip(values, configs, strict=True))]
        return Decision(stop=sorted(ranked[len(ranked) // 2 :]))


def test_a_schedule_from_outside_the_package_runs_in_the_same_loop(split):
    train, val = split
    configs = CONFIGS[:6]
    kw = RUN | {"val": val, "batch_size": 32, "chunk_size": 4}
    res = regfn.sweep(MODEL, train, configs, schedule=StopTheWorseHalfOnce(), epochs=6, **kw)
    whole = regfn.sweep(MODEL, train, configs, epochs=6, **kw)
    half = regfn.sweep(MODEL, train, configs, epochs=3, **kw)
    ranked = sorted(range(6), key=lambda i: (half.rows[i]["val_loss"], i))
    kept, stopped = sorted(ranked[:3]), sorted(ranked[3:])
    for i in kept:  # trained on as in a plain sweep, bit for bit (eager)
        assert res.rows[i] == whole.rows[i]
    for i in stopped:  # stopped halfway: the results of a 3-epoch sweep, NaN curves after
        assert res.rows[i] == half.rows[i]
        assert torch.isnan(res.curves["val_loss"][i, 3:]).all()
        assert torch.equal(res.curves["val_loss"][i, :3], half.curves["val_loss"][i])
    assert res.settings["chunk_sizes"] == [3, 4]  # 6 rows in chunks of 4 (padded), then the 3 kept
    assert res.schedule == {}
    recorded = res.provenance["arguments"]["schedule"]
    assert recorded["kind"] == "StopTheWorseHalfOnce"
    with pytest.raises(ValueError, match=r"'StopTheWorseHalfOnce' is not one of regfn\.search's"):
        schedule_from_dict(recorded)  # so regfn.verify refuses to rerun it, naming it
