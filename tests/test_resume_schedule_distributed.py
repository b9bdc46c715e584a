"""Scheduled sweeps with checkpoints under torch.distributed (issue #21): a rank SIGKILLs itself after a
decision was checkpointed; the sweep resumes on two ranks and on one, and its results file and schedule
record equal an uninterrupted one-process sweep's, byte for byte (eager, CPU, gloo, one thread a rank).

The two-rank launches are tests/test_distributed.py's (tests/dist_worker.py, RANK, WORLD_SIZE, ...).
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import dist_worker
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_distributed import WORKER, _env, _launch, _scheduled

from regfn._sweep._checkpoint import Checkpoint, resume_point


def _reference(case: str, out: pathlib.Path) -> tuple[object, bytes, int]:
    """One uninterrupted process, in this one: its result, its results file's bytes and its loss calls."""
    dist_worker.CALLS[0] = 0
    single = dist_worker.sweep_case(case)
    assert single is not None
    single.to_csv(out / f"{case}.single.csv")
    return (
        _scheduled(json.loads(json.dumps(single.to_dict()))),
        (out / f"{case}.single.csv").read_bytes(),
        dist_worker.CALLS[0],
    )


def _run(ranks: int, out: pathlib.Path, case: str, checkpoint: pathlib.Path, **extra: str) -> list:
    """``case`` on ``ranks`` processes (1: no torch.distributed), checkpointed in ``checkpoint``."""
    out.mkdir(parents=True, exist_ok=True)
    extra = {"REGFN_TEST_CHECKPOINT": str(checkpoint), "REGFN_DIST_TIMEOUT": "20", **extra}
    if ranks == 2:
        return _launch(out, [case], timeout=150, **extra)
    cmd = [sys.executable, str(WORKER), str(out), case]
    return [subprocess.run(cmd, env=_env(**extra), capture_output=True, text=True, timeout=150)]


def _calls(runs: list) -> int:
    return sum(int(n) for run in runs for n in re.findall(r"loss calls: rank \d+: (\d+)", run.stdout))


def _generation(directory: pathlib.Path) -> int | None:
    """The generation a resume of ``directory`` starts from (``None``: from the start)."""
    files = Checkpoint(directory, 1).schedules()
    found = resume_point({w: {r: list(g) for r, g in ranks.items()} for w, ranks in files.items()}, 2)
    return None if found is None else found[1]


def _check_resumed(runs: list, out: pathlib.Path, case: str, expected: object, csv: bytes, ck: pathlib.Path) -> None:
    """The resumed run gave the expected result and results file, and its ranks' rows did not overlap."""
    for rank, run in enumerate(runs):
        assert run.returncode == 0, f"rank {rank}: {run.stderr[-3000:]}"
    written = json.loads((out / f"{case}.rank0.json").read_text())
    assert _scheduled(written) == expected
    assert (out / f"{case}.rank0.csv").read_bytes() == csv
    assert written["settings"]["world_size"] == len(runs)
    store = Checkpoint(ck / case, 1)
    owned = [store.load_schedule(store.schedule_path(r, len(runs)).name)[1]["owned"] for r in range(len(runs))]
    rows = len(written["rows"]) * written["settings"].get("folds", 1)
    assert sorted(r for mine in owned for r in mine) == list(range(rows))  # each row on one rank


@pytest.mark.slow
def test_a_sigkilled_rank_resumes_on_two_ranks_and_on_one_bit_for_bit(tmp_path: pathlib.Path) -> None:
    # PBT (8 configurations, exploits at epochs 2, 4, 6, 8; copies within and across ranks): rank 1 SIGKILLs
    # itself at its 41st loss call, in epoch 4, after the first exploit's generation was saved on both ranks.
    expected, csv, whole = _reference("pbt", tmp_path)
    ck = tmp_path / "ck"
    killed = _run(2, tmp_path / "killed", "pbt", ck, REGFN_TEST_FAIL_RANK="1", REGFN_TEST_FAIL_HOW="kill",
                  REGFN_TEST_FAIL_AFTER="40")  # fmt: skip
    assert killed[1].returncode == -signal.SIGKILL
    assert "rank 1 did not answer" in killed[0].stderr
    generation = _generation(ck / "pbt")
    assert generation is not None
    assert generation >= 1  # an exploit's outcome was checkpointed by both ranks
    shutil.copytree(ck, tmp_path / "ck1")

    two = _run(2, tmp_path / "two", "pbt", ck)
    _check_resumed(two, tmp_path / "two", "pbt", expected, csv, ck)
    assert _calls(two) < whole  # it went on from the save
    assert sorted(p.name for p in (ck / "pbt").iterdir()) == [
        "schedule-rank0-of-2.safetensors",  # the previous generation's files are removed at the end
        "schedule-rank1-of-2.safetensors",
    ]

    one = _run(1, tmp_path / "one", "pbt", tmp_path / "ck1")  # another world size: rank 0 takes every row
    _check_resumed(one, tmp_path / "one", "pbt", expected, csv, tmp_path / "ck1")
    assert _calls(one) < whole
    assert sorted(p.name for p in (tmp_path / "ck1" / "pbt").iterdir()) == ["schedule.safetensors"]

    again = _run(2, tmp_path / "again", "pbt", tmp_path / "ck1")  # finished on one: two ranks train nothing
    _check_resumed(again, tmp_path / "again", "pbt", expected, csv, tmp_path / "ck1")
    assert _calls(again) == 0

    shutil.copytree(tmp_path / "ck1" / "pbt", tmp_path / "other" / "halving")  # another sweep's checkpoint
    other = _run(2, tmp_path / "refused", "halving", tmp_path / "other")
    for run in other:  # every rank refuses it before training, naming what differs
        assert run.returncode != 0
        assert "ValueError: regfn.sweep: checkpoint" in run.stderr
        assert re.search(r"written by a different sweep: configurations differ .*; schedule differs", run.stderr)


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.sampled_from(["halving", "hyperband", "halving_cv"]),
    killed_on=st.sampled_from([1, 2]),
    resumed_on=st.sampled_from([1, 2]),
    after=st.integers(0, 40),
)
@example(case="hyperband", killed_on=1, resumed_on=2, after=40)  # one process killed in bracket 0, two resume
def test_any_interruption_point_and_world_size_resume_bit_for_bit(
    tmp_path_factory: pytest.TempPathFactory, case: str, killed_on: int, resumed_on: int, after: int
) -> None:
    tmp = tmp_path_factory.mktemp("run")
    expected, csv, _ = _reference(case, tmp)
    ck = tmp / "ck"
    # rank 0 (the one with the most rows) SIGKILLs itself at its loss call after + 1 (or finishes first)
    killed = _run(killed_on, tmp / "killed", case, ck, REGFN_TEST_FAIL_RANK="0", REGFN_TEST_FAIL_HOW="kill",
                  REGFN_TEST_FAIL_AFTER=str(after))  # fmt: skip
    assert killed[0].returncode in (0, -signal.SIGKILL)
    resumed = _run(resumed_on, tmp / "resumed", case, ck)
    _check_resumed(resumed, tmp / "resumed", case, expected, csv, ck)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ranks=st.integers(1, 3),
    steps=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=40),
    crash=st.booleans(),
)
def test_ranks_always_share_a_saved_generation(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, ranks: int, steps: list, crash: bool
) -> None:
    # Ranks save as the loop does: each its generation 0 first, then, in any order, again in its generation or
    # in the next one, which a rank enters only once every other rank has reached its own (the decision
    # between them is a collective). Whatever the order, and a rank killed as it moves its file aside, the
    # latest generation every rank holds is the lowest a rank stands in.
    store = Checkpoint(tmp_path_factory.mktemp("ck"), 1)
    at = [0] * ranks
    tensors = {"x": torch.zeros(1)}
    for r in range(ranks):
        store.save_schedule(dict(tensors), {"generation": 0}, r, ranks)
    for who, advance in steps:
        r = who % ranks
        if advance and all(g >= at[r] for g in at):
            at[r] += 1
        store.save_schedule(dict(tensors), {"generation": at[r]}, r, ranks)
        names = sorted(p.name for p in store.directory.iterdir())
        assert len(names) <= 2 * ranks, names  # two generations a rank at most
    if crash:  # the slowest rank is killed between moving its file aside and writing the next generation's
        r = at.index(min(at))
        if all(g >= at[r] for g in at):

            def killed(*args: object) -> None:
                raise OSError("killed")

            monkeypatch.setattr(store, "_write", killed)
            with pytest.raises(OSError, match="killed"):
                store.save_schedule(dict(tensors), {"generation": at[r] + 1}, r, ranks)
    files = store.schedules()
    assert resume_point({w: {q: list(g) for q, g in rs.items()} for w, rs in files.items()}, ranks) == (ranks, min(at))
