"""regfn.sweep under torch.distributed (gloo, CPU): two ranks give the one-process rows, bit for bit.

Each multi-process test launches two ranks of tests/dist_worker.py (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT set, as torchrun would; one thread each), or
the regfn command under torchrun, and compares what rank 0 wrote with the same sweep
run in this process.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

import regfn
from regfn._sweep import _distributed

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "dist_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}", **extra)
    return env


def _launch(
    out: pathlib.Path, cases: list[str], timeout: float = 120, **extra: str
) -> list[subprocess.CompletedProcess]:
    """Run two ranks of the worker; their exit statuses and output, rank by rank."""
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = _env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.update(extra)
        cmd = [sys.executable, str(WORKER), str(out), *cases]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def _compared(result: regfn.SweepResult) -> dict:
    d = json.loads(json.dumps(result.to_dict()))
    return {k: d[k] for k in ("hyperparameters", "rows", "curve_epochs", "curves")}


def _written(path: pathlib.Path) -> dict:
    d = json.loads(path.read_text())
    return {k: d[k] for k in ("hyperparameters", "rows", "curve_epochs", "curves")}


@pytest.mark.slow
def test_two_ranks_give_the_one_process_rows_bit_for_bit(tmp_path: pathlib.Path) -> None:
    import dist_worker

    # mlp: full batch, K=7 in chunks of 2 (the last padded), gathered on rank 0;
    # minibatch: shuffled mini-batches and philox keys, 5 chunks of 1 (rank 0 runs three), gathered on every rank.
    # auto: automatic chunks hold one rank's share (4 of 7), where one process runs all 7 at once.
    # cv: 3 configurations x 3 folds of two sizes (mini-batches), 9 rows in chunks of 2: the fold statistics gather
    # across ranks.
    # sequential: the sequential engine, 5 configurations in chunks of 2.
    runs = _launch(tmp_path, ["mlp", "minibatch@all", "auto", "cv", "sequential"])
    for rank, run in enumerate(runs):
        assert run.returncode == 0, f"rank {rank}: {run.stderr[-3000:]}"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "auto.rank0.json",
        "cv.rank0.json",
        "minibatch.rank0.json",
        "minibatch.rank1.json",
        "mlp.rank0.json",  # gather="rank0": rank 1 returned None
        "sequential.rank0.json",
    ]
    for case in ("mlp", "minibatch", "cv", "sequential", "auto"):  # auto last: its settings are checked below
        single = dist_worker.sweep_case(case)
        assert single is not None
        assert single.settings["world_size"] == 1
        expected = _compared(single)
        assert len(expected["rows"]) in (3, 5, 7)
        assert single.settings["engine"] == ("sequential" if case == "sequential" else "vmap")
        assert _written(tmp_path / f"{case}.rank0.json") == expected  # floats round-trip exactly in JSON
        single.to_csv(tmp_path / f"{case}.single.csv")  # the same columns in the same order: the same bytes
        assert (tmp_path / f"{case}.rank0.csv").read_bytes() == (tmp_path / f"{case}.single.csv").read_bytes()
        _assert_same_params(tmp_path / f"{case}.rank0.params", single)
    settings = {case: json.loads((tmp_path / f"{case}.rank0.json").read_text())["settings"] for case in ("mlp", "auto")}
    assert settings["mlp"] == {
        "compile": False,
        "threads": 1,
        "chunk_size": 2,
        "padded": 8,
        "world_size": 2,
        "loss": "bce_logits",
        "loss_from_task": False,  # dist_worker passes its loss
        "key_impl": "threefry2x32",
        "engine": "vmap",
        "keep": "all",
    }
    assert (settings["auto"]["chunk_size"], single.settings["chunk_size"]) == (4, 7)
    assert _written(tmp_path / "minibatch.rank1.json") == _written(tmp_path / "minibatch.rank0.json")


def _assert_same_params(directory: pathlib.Path, single: regfn.SweepResult) -> None:
    """The parameters rank 0 gathered and saved in ``directory`` are the one-process sweep's, every kept row's,
    bit for bit (a row stopped by a schedule: where it stopped)."""
    import torch

    index = json.loads((directory / "params.json").read_text())
    assert single.trained is not None
    saved = {(e["config"], e["fold"]) for e in index["entries"]}
    folds = single.settings.get("folds")
    expected = {(c, f if folds else None) for c in single.trained.configs() for f in range(folds or 1)}
    assert saved == expected, directory.name
    for config, fold in saved:
        back = regfn.SweepResult.load_params(directory, config, fold)
        mine = single.params(config, fold=fold)
        assert list(back) == list(mine)
        assert all(torch.equal(back[n], mine[n]) for n in mine), (directory.name, config, fold)


def _nan_safe(value: object) -> object:
    """``value`` (JSON's lists, dicts and numbers) with every NaN as the string "nan", so that == compares them."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def _scheduled(d: dict) -> object:
    """What a scheduled sweep must give on any number of ranks: rows, curves (stopped ones NaN after their stop)
    and the schedule's record (rungs, kept, values; PBT's sources and hyperparameter history)."""
    return _nan_safe({k: d[k] for k in ("hyperparameters", "rows", "curve_epochs", "curves", "schedule")})


@pytest.mark.slow
def test_schedules_on_two_ranks_give_the_one_process_result_bit_for_bit(tmp_path: pathlib.Path) -> None:
    import dist_worker

    # Rows live on rank r % 2 and never move; the ranks share the metric at every rung or exploit, PBT's copied
    # rows (sources on the other rank too), and their results at the end. Eager, a row's numbers do not depend
    # on the rows beside it in its chunk, so everything equals one process's bit for bit, decisions included.
    # halving: 9 -> 3 -> 1 (after the last rung one rank has no live row); hyperband: three brackets;
    # pbt: 8 configurations, lr and p perturbed; halving_cv: 5 configurations x 3 folds, folds on both ranks.
    cases = ["halving", "hyperband@all", "pbt@all", "halving_cv"]
    runs = _launch(tmp_path, cases, timeout=300)
    for rank, run in enumerate(runs):
        assert run.returncode == 0, f"rank {rank}: {run.stderr[-3000:]}"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "halving.rank0.json",  # gather="rank0": rank 1 returned None
        "halving_cv.rank0.json",
        "hyperband.rank0.json",
        "hyperband.rank1.json",
        "pbt.rank0.json",
        "pbt.rank1.json",
    ]
    for case in dist_worker.SCHEDULED:
        single = dist_worker.sweep_case(case)
        assert single is not None
        expected = _scheduled(json.loads(json.dumps(single.to_dict())))
        written = json.loads((tmp_path / f"{case}.rank0.json").read_text())
        assert _scheduled(written) == expected, case
        assert written["settings"]["world_size"] == 2
        single.to_csv(tmp_path / f"{case}.single.csv")
        assert (tmp_path / f"{case}.rank0.csv").read_bytes() == (tmp_path / f"{case}.single.csv").read_bytes()
        _assert_same_params(tmp_path / f"{case}.rank0.params", single)
    record = json.loads((tmp_path / "pbt.rank0.json").read_text())["schedule"]
    copies = [(dst, src) for srcs in record["sources"] for dst, src in enumerate(srcs) if dst != src]
    assert {(dst - src) % 2 for dst, src in copies} == {0, 1}  # copies within a rank and across ranks
    (last,) = json.loads((tmp_path / "halving.rank0.json").read_text())["schedule"]["brackets"][0]["rungs"][-1:]
    assert len(last["kept"]) == 1  # the last stretch ran on one rank: the other had no live row
    for case in ("hyperband", "pbt"):  # gather="all": the same result on both ranks
        assert _scheduled(json.loads((tmp_path / f"{case}.rank1.json").read_text())) == _scheduled(
            json.loads((tmp_path / f"{case}.rank0.json").read_text())
        )


@pytest.mark.slow
@pytest.mark.parametrize(("how", "after"), [("raise", 0), ("raise", 14), ("exit", 14)])
def test_a_failing_rank_stops_a_scheduled_sweep_with_its_name(tmp_path: pathlib.Path, how: str, after: int) -> None:
    # after=14: rank 1's loss works for 14 calls (training to the first rung, evaluating, finishing the stopped
    # rows), then fails in the first step of its regrouped survivor
    t0 = time.perf_counter()
    runs = _launch(
        tmp_path,
        ["halving"],
        timeout=90,
        REGFN_TEST_FAIL_RANK="1",
        REGFN_TEST_FAIL_HOW=how,
        REGFN_TEST_FAIL_AFTER=str(after),
        REGFN_DIST_TIMEOUT="20",
    )
    assert time.perf_counter() - t0 < 75
    rank0, rank1 = runs
    assert rank0.returncode != 0
    assert rank1.returncode != 0
    if how == "raise":
        assert "RankFailed: regfn.sweep: rank 1 failed: ValueError: the test's loss fails on purpose" in rank0.stderr
        assert "ValueError: the test's loss fails on purpose" in rank1.stderr
    else:
        assert rank1.returncode == 3
        assert "RankLost: regfn.sweep: rank 0:" in rank0.stderr
        assert "rank 1 did not answer" in rank0.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failing_rank_stops_the_other_with_its_name(tmp_path: pathlib.Path, how: str) -> None:
    t0 = time.perf_counter()
    runs = _launch(
        tmp_path, ["mlp"], timeout=90, REGFN_TEST_FAIL_RANK="1", REGFN_TEST_FAIL_HOW=how, REGFN_DIST_TIMEOUT="20"
    )
    assert time.perf_counter() - t0 < 75  # no hang: well within the launch's own timeout
    rank0, rank1 = runs
    assert rank0.returncode != 0
    assert rank1.returncode != 0
    if how == "raise":
        assert "RankFailed: regfn.sweep: rank 1 failed: ValueError: the test's loss fails on purpose" in rank0.stderr
        assert "ValueError: the test's loss fails on purpose" in rank1.stderr  # its own exception
    else:
        assert rank1.returncode == 3
        assert "RankLost: regfn.sweep: rank 0:" in rank0.stderr
        assert "rank 1 did not answer" in rank0.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_command_under_torchrun_writes_once_from_rank_0(tmp_path: pathlib.Path) -> None:
    args = ["sweep", "--epochs", "3", "--l2", "0,1e-2", "--p", "0,0.2", "--seeds", "2", "--chunk-size", "3"]
    args += ["--threads", "1", "--no-compile", "--no-plots", "--device", "cpu"]
    port = str(_free_port())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "regfn"]
    run = subprocess.run(
        [*cmd, *args, "--out", str(tmp_path / "two")], env=_env(), capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1
    assert run.stdout.count("regfn sweep: 8 configs") == 1
    assert "world size 2" in run.stdout
    one = subprocess.run(
        [sys.executable, "-m", "regfn", *args, "--out", str(tmp_path / "one")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    assert _written(tmp_path / "two" / "results.json") == _written(tmp_path / "one" / "results.json")


def test_without_a_process_group_the_sweep_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    import torch

    assert _distributed.setup(torch.device("cpu"), None) == _distributed.SINGLE
    assert _distributed.is_lead()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert _distributed.setup(torch.device("cpu"), None) == _distributed.SINGLE


def test_bad_distributed_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = regfn.data.quadrants(regfn.random.key(0), 16)
    model = regfn.nn.mlp((2, 4, 1), output="logits")
    with pytest.raises(ValueError, match="gather must be 'rank0' or 'all'"):
        regfn.sweep(model, data, [{}], epochs=1, gather="rank1", quiet=True)
    monkeypatch.setenv("REGFN_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="REGFN_DIST_TIMEOUT must be a number of seconds"):
        _distributed.timeout_seconds(None)
    assert _distributed.timeout_seconds(5) == 5.0
    with pytest.raises(ValueError, match="dist_timeout must be a number of seconds > 0"):
        _distributed.timeout_seconds(0)
    monkeypatch.delenv("REGFN_DIST_TIMEOUT")
    assert _distributed.timeout_seconds(None) == _distributed.DEFAULT_TIMEOUT_S
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="WORLD_SIZE is set but RANK is not"):
        _distributed.setup(__import__("torch").device("cpu"), None)


def test_gathered_results_keep_the_order_of_their_columns() -> None:
    # results.csv's columns follow the metrics' order; a gather sorted them, so two ranks wrote acc,loss,penalty
    # where one process wrote loss,penalty,acc.
    import torch

    from regfn._sweep._outputs import Results

    sent = Results(3, 2, 1)
    sent.metrics = {"loss": torch.ones(3), "penalty": torch.zeros(3), "acc": torch.ones(3)}
    sent.flags = {"constant": torch.zeros(3)}
    got = Results(3, 2, 1)
    got.fill([0, 2], sent.tensors([0, 2]), sent.names())
    assert list(got.outputs().metrics) == ["loss", "penalty", "acc"]
    assert got.outputs().metrics["loss"].tolist()[::2] == [1.0, 1.0]


def test_a_failure_message_travels_as_bytes() -> None:
    err = ValueError("é" * 600)
    status = _distributed._encode(err)
    assert status.shape == (1 + _distributed.MESSAGE_BYTES,)
    assert int(status[0]) == 1
    assert _distributed._decode(status).startswith("ValueError: éé")
    assert int(_distributed._encode(None).sum()) == 0


def test_shared_values_travel_as_json_and_safetensors() -> None:
    import torch

    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)[:, 1:], "flag": torch.tensor([True, False])}
    value = {"rows": [3, 5], "values": [0.1, float("nan"), float("inf")]}
    got, back = _distributed._unframe(_distributed._frame(value, tensors))
    assert got["rows"] == [3, 5]
    assert got["values"][0] == 0.1
    assert math.isnan(got["values"][1])
    assert got["values"][2] == float("inf")
    assert set(back) == {"w", "flag"}
    assert torch.equal(back["w"], tensors["w"])
    assert back["flag"].dtype == torch.bool
    assert _distributed._unframe(_distributed._frame([1, 2], {})) == ([1, 2], {})
    one = _distributed.share(_distributed.SINGLE, "nothing", value, tensors)  # one process: its own arguments
    assert one is not None
    assert one[0][0] is value
    assert one[0][1]["w"] is tensors["w"]
