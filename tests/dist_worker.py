"""One rank of the distributed sweep tests (tests/test_distributed.py launches two).

Usage: ``python tests/dist_worker.py OUT_DIR CASE...``, with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment (or under
torchrun). Each case is one sweep (see :func:`sweep_case`), ``CASE@all`` gathered on every rank; a rank that returns a
result writes it (and its settings) to ``OUT_DIR/<case>.rank<r>.json``, its rows to ``<case>.rank<r>.csv`` and its
kept parameters to ``<case>.rank<r>.params/``. ``REGFN_TEST_FAIL_RANK=r`` makes
rank ``r``'s loss raise (``REGFN_TEST_FAIL_HOW=exit``: its process exits instead; ``kill``: it SIGKILLs
itself), from its call number ``REGFN_TEST_FAIL_AFTER + 1`` on (default: its first call).
``REGFN_TEST_CHECKPOINT=DIR`` checkpoints each case in ``DIR/<case>`` (every
``REGFN_TEST_CHECKPOINT_EVERY`` epochs, default 2).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys

import torch

import regfn

CALLS = [0]
"""This process's loss calls (``main`` prints them: ``loss calls: rank R: N``)."""


def _loss() -> regfn.losses.Loss:
    """The BCE-with-logits loss, counted, and sabotaged on the rank ``REGFN_TEST_FAIL_RANK`` names."""
    base = regfn.losses.get_loss("bce_logits")
    fail = os.environ.get("REGFN_TEST_FAIL_RANK")
    broken = fail is not None and int(os.environ.get("RANK", "0")) == int(fail)
    after = int(os.environ.get("REGFN_TEST_FAIL_AFTER", "0"))

    def counted(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        CALLS[0] += 1
        if not broken or CALLS[0] <= after:
            return base.fn(output, target)
        if os.environ.get("REGFN_TEST_FAIL_HOW") == "exit":
            os._exit(3)
        if os.environ.get("REGFN_TEST_FAIL_HOW") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("the test's loss fails on purpose")

    return base._replace(fn=counted)  # the same name: a checkpoint of a sabotaged run resumes without it


SCHEDULED = ("halving", "hyperband", "pbt", "halving_cv")
"""The scheduled cases: each runs on every rank's rows and shares its decisions (see :func:`sweep_case`)."""


def sweep_case(case: str, **kwargs: object) -> regfn.SweepResult | None:
    """The sweeps the tests compare: ``mlp`` (full batch, K=7, chunks of 2), ``minibatch``, ``sequential``, ``cv``, ``auto``,
    and the schedules of :data:`SCHEDULED`."""
    data = regfn.data.quadrants(regfn.random.key(0), 64)
    model = regfn.nn.mlp((2, 4, 1), output="logits")
    if case in SCHEDULED:
        return _scheduled(case, data, **kwargs)
    if case == "mlp":  # K = 7 in chunks of 2: the last chunk padded
        configs = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.2], seed=[0, 1])[:7]
        settings: dict[str, object] = {"epochs": 3, "chunk_size": 2}
    elif case == "minibatch":  # shuffled mini-batches, Adam, philox keys; 5 chunks of 1: rank 0 runs three
        configs = regfn.grid(l1=[0.0, 1e-3, 1e-2], p=[0.1, 0.3], seed=[3], lr=[1e-2])[:5]
        settings = {"epochs": 2, "chunk_size": 1, "batch_size": 16, "optimizer": "adam", "key_impl": "philox4x32"}
    elif case == "sequential":  # the sequential engine, mini-batches, Adam; 5 configurations in chunks of 2
        configs = regfn.grid(l2=[0.0, 1e-2, 1e-1], p=[0.1, 0.3], seed=[8])[:5]
        settings = {"epochs": 2, "chunk_size": 2, "batch_size": 16, "optimizer": "adam", "engine": "sequential"}
    elif case == "cv":  # 3 configurations x 3 folds = 9 rows in chunks of 2: a configuration's folds split across ranks
        configs = regfn.grid(l2=[0.0, 1e-2, 1e-1], p=[0.2], seed=[4])
        held = [range(0, 22), range(22, 43), range(43, 64)]  # folds of 42, 43, 43 training rows: 2 batches of 16 each
        folds = regfn.data.Folds.from_splits([(sorted(set(range(64)) - set(v)), list(v)) for v in held], 64)
        settings = {"epochs": 2, "chunk_size": 2, "cv": folds, "batch_size": 16}
    elif case == "auto":  # automatic chunks: at most one rank's share (4 of 7 on two ranks)
        configs = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.2], seed=[5, 6])[:7]
        settings = {"epochs": 2, "chunk_size": "auto"}
    else:
        raise ValueError(case)
    return regfn.sweep(
        model,
        data,
        configs,
        loss=_loss(),
        compile=False,
        threads=1,
        quiet=True,
        **settings,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def _scheduled(case: str, data: regfn.data.Dataset, **kwargs: object) -> regfn.SweepResult | None:
    """Successive halving (K=9: 9 -> 3 -> 1), Hyperband (brackets of 5, 3, 1), PBT (K=8, lr and p perturbed) and
    halving with cv=3 (5 configurations x 3 folds = 15 rows: a configuration's folds on both ranks), with
    dropout and shuffled mini-batches, in chunks of 2 (a rank regroups its survivors; padded chunks)."""
    from regfn.search import hyperband, pbt, successive_halving

    model = regfn.nn.mlp((2, 6, 1), output="logits")
    train, val = regfn.data.train_val_split(regfn.random.key(1), data)
    configs = regfn.grid(lr=[0.1, 0.3, 1.0], p=[0.0, 0.2, 0.4], seed=[7])
    settings: dict[str, object] = {"val": val, "epochs": 9, "batch_size": 16, "log_every": 1, "chunk_size": 2}
    if case == "halving":
        settings["schedule"] = successive_halving("val_loss", min_epochs=1, eta=3)
    elif case == "hyperband":
        settings["schedule"] = hyperband("val_acc", min_epochs=1, eta=3)
    elif case == "pbt":
        configs = [{**c, "seed": i} for i, c in enumerate(configs[:8])]
        settings["schedule"] = pbt(interval=2, quantile=0.25, perturb=(0.8, 1.25), key=regfn.random.key(3))
    else:  # halving_cv
        train, configs = data, configs[:5]
        settings.update(val=None, cv=3, schedule=successive_halving("val_loss", min_epochs=2, eta=2))
    return regfn.sweep(
        model,
        train,
        configs,
        loss=_loss(),
        compile=False,
        threads=1,
        quiet=True,
        **settings,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def main(argv: list[str]) -> int:
    out = pathlib.Path(argv[0])
    for spec in argv[1:]:  # "mlp" (gather="rank0") or "mlp@all"
        case, _, gather = spec.partition("@")
        saved: dict[str, object] = {}
        if os.environ.get("REGFN_TEST_CHECKPOINT"):
            saved["checkpoint"] = pathlib.Path(os.environ["REGFN_TEST_CHECKPOINT"]) / case
            saved["checkpoint_every"] = int(os.environ.get("REGFN_TEST_CHECKPOINT_EVERY", "2"))
        result = sweep_case(case, gather=gather or "rank0", **saved)
        rank = int(os.environ.get("RANK", "0"))
        if result is not None:
            written = {**result.to_dict(), "settings": result.settings}
            (out / f"{case}.rank{rank}.json").write_text(json.dumps(written))
            result.to_csv(out / f"{case}.rank{rank}.csv")
            result.save(out / f"{case}.rank{rank}.params")  # every kept row's parameters, gathered
    print(f"loss calls: rank {os.environ.get('RANK', '0')}: {CALLS[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
