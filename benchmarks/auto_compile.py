"""What ``compile="auto"`` is calibrated on: eager vs compiled epochs, cold compiles, and the bits they change.

For each workload (a model, its data, K configurations, full batch or
mini-batches) the script runs ``regfn.sweep`` eagerly and compiled, side by
side in one process (the compiled program is warmed first, so its epochs are
timed without the compile), and prints one JSON line with:

* ``eager_epoch_s`` and ``compiled_epoch_s``: seconds per epoch of the K
  configurations (best of ``--repeats``);
* ``work``: configurations x rows per step x parameters x steps per epoch,
  the quantity the rule in :mod:`regfn._sweep._auto` scales with;
* ``compiled_vs_eager``: the largest absolute difference of any final metric
  between the compiled and the eager result (the tolerance the README states);
* ``threads_change_bits``: whether the eager result on two threads differs
  from the eager result on one thread in any bit;
* with ``--cold``: ``cold_compile_s``, the compile time of a fresh process
  with an empty ``TORCHINDUCTOR_CACHE_DIR`` (a subprocess of this script).

    taskset -c 0 python benchmarks/auto_compile.py --workloads mlp,quadrants --cold mlp > costs.jsonl
    python benchmarks/auto_compile.py --fit costs.jsonl   # the constants of regfn/_sweep/_auto.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

import regfn
from regfn._sweep._auto import model_kind


def workload(name: str) -> dict:
    rr = regfn.random
    if name == "mlp":  # the tutorial's: 8-6-4-1 on a 768 x 8 table, full batch
        data = regfn.data.standardize(regfn.data.synthetic_diabetes(rr.key(0)))[0]
        model = regfn.mlp((8, 6, 4, 1), output="logits")
        return {"model": model, "data": data, "k": 64, "batch_size": None, "epochs": 40, "loss": "bce_logits"}
    if name == "quadrants":  # the command's default sweep: 2-6-4-1 on 320 rows, 24 configurations
        data = regfn.data.quadrants(rr.key(0), 320)
        model = regfn.mlp((2, 6, 4, 1), output="logits")
        return {"model": model, "data": data, "k": 24, "batch_size": None, "epochs": 60, "loss": "bce_logits"}
    if name == "digits_mlp":  # 64-32-10 on the digits, mini-batches of 128
        data = regfn.data.digits(flat=True)
        model = regfn.mlp((64, 32, 10), output="logits")
        return {"model": model, "data": data, "k": 16, "batch_size": 128, "epochs": 4, "loss": "cross_entropy"}
    if name == "digits_mlp_wide":  # issue #22's: 64-256-128-10 on the digits, mini-batches of 128
        data = regfn.data.digits(flat=True)
        model = regfn.mlp((64, 256, 128, 10), output="logits")
        return {"model": model, "data": data, "k": 32, "batch_size": 128, "epochs": 4, "loss": "cross_entropy"}
    if name == "cancer_mlp_wide":  # sweep_mlp.py's cancer MLP 30-512-256-128-2, mini-batches of 64
        sys.path.insert(0, os.path.dirname(__file__))
        from sweep_mlp import load_data

        model = regfn.mlp((30, 512, 256, 128, 2), output="logits")
        return {"model": model, "data": load_data("cancer")[0], "k": 32, "batch_size": 64, "epochs": 3,
                "loss": "cross_entropy"}  # fmt: skip
    if name == "cancer_module":  # an nn.Module MLP 30-64-32-1 on breast cancer, full batch
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        raw = regfn.data.Dataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        data = regfn.data.standardize(raw)[0]
        net = torch.nn.Sequential(
            torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Dropout(0.25),
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.25), torch.nn.Linear(32, 1),
        )  # fmt: skip
        model = regfn.from_module(net)
        return {"model": model, "data": data, "k": 72, "batch_size": None, "epochs": 20, "loss": "bce_logits"}
    if name == "cnn_digits":  # benchmarks/sweep_cnn.py's DigitsCNN on 1,437 digit images, mini-batches of 64
        sys.path.insert(0, os.path.dirname(__file__))
        from sweep_cnn import DigitsCNN

        data = regfn.data.digits()[:1437]
        return {"model": regfn.from_module(DigitsCNN()), "data": data, "k": 16, "batch_size": 64, "epochs": 2,
                "loss": "cross_entropy"}  # fmt: skip
    if name == "cnn":  # regfn.nn.small_cnn on 256 digit images, mini-batches of 64
        data = regfn.data.digits()[:256]
        model = regfn.from_module(regfn.nn.small_cnn(in_channels=1, n_classes=10, image_size=8))
        return {"model": model, "data": data, "k": 8, "batch_size": 64, "epochs": 2, "loss": "cross_entropy"}
    raise SystemExit(f"unknown workload {name!r}")


def run(w: dict, compile: bool, threads: int, engine: str = "vmap", chunk_size: str | None = None) -> regfn.SweepResult:
    configs = [{"seed": s, "p": 0.25, "l2": 1e-3} for s in range(w["k"])]
    return regfn.sweep(
        w["model"],
        w["data"],
        configs,
        loss=w["loss"],
        epochs=w["epochs"],
        batch_size=w["batch_size"],
        compile=compile,
        threads=threads,
        engine=engine,
        chunk_size=chunk_size,
        quiet=True,
    )


def max_difference(a: regfn.SweepResult, b: regfn.SweepResult) -> float:
    worst = 0.0
    for x, y in zip(a.rows, b.rows, strict=True):
        for name, value in x.items():
            if isinstance(value, float) and isinstance(y[name], float):
                worst = max(worst, abs(value - y[name]))
    return worst


def same_bits(a: regfn.SweepResult, b: regfn.SweepResult) -> bool:
    return a.rows == b.rows and all(torch.equal(a.curves[n], b.curves[n]) for n in a.curves)


def cold_compile(name: str) -> float:
    """The compile seconds of a fresh process with an empty inductor cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        code = (
            "import sys, json; sys.path.insert(0, 'benchmarks'); import auto_compile as a; "
            f"w = a.workload({name!r}); w['epochs'] = 1; "
            "print(json.dumps(a.run(w, True, 1).timings['compile_s']))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def measure(name: str, repeats: int, cold: bool, chunk_size: str | None = None) -> dict:
    w = workload(name)
    params = w["model"].init(regfn.random.key(0))
    n_params = sum(p.numel() for p in params.values())
    rows = w["batch_size"] or len(w["data"])
    steps = len(w["data"]) // rows
    compiled = run(w, True, 1, chunk_size=chunk_size)  # warms the compiled program
    eager_s, compiled_s, sequential_s = [], [], []
    for _ in range(repeats):  # side by side: eager, compiled, then the sequential engine (eager), per repeat
        eager = run(w, False, 1, chunk_size=chunk_size)  # run_s: the training loop (log points included)
        eager_s.append(eager.timings["run_s"] / w["epochs"])
        compiled = run(w, True, 1, chunk_size=chunk_size)
        compiled_s.append(compiled.timings["run_s"] / w["epochs"])
        sequential = run(w, False, 1, "sequential")
        sequential_s.append(sequential.timings["run_s"] / w["epochs"])
    two = run(w, False, 2)
    out = {
        "workload": name,
        "k": w["k"],
        "n_params": n_params,
        "width": sum(p.numel() for p in params.values() if p.ndim == 1),
        "kind": model_kind(w["model"], params),
        "rows_per_step": rows,
        "steps_per_epoch": steps,
        "work": w["k"] * rows * n_params * steps,
        "chunk_size": [eager.settings["chunk_size"], compiled.settings["chunk_size"]],
        "eager_epoch_s": round(min(eager_s), 5),
        "compiled_epoch_s": round(min(compiled_s), 5),
        "sequential_epoch_s": round(min(sequential_s), 5),
        "compiled_vs_eager": max_difference(eager, compiled),
        "sequential_vs_vmap": max_difference(eager, sequential),
        "threads_change_bits": not same_bits(eager, two),
        "torch": torch.__version__,
    }
    if cold:
        out["cold_compile_s"] = round(cold_compile(name), 1)
    return out


def fit(lines: list[dict]) -> dict:
    """``regfn._sweep._auto``'s constants from this script's output lines.

    Seconds per step ``a + rows x (b x params + c x width)`` (``rows``: K x rows
    per step) by least squares on relative errors over the MLP workloads,
    eager and compiled; a convolutional or other module model keeps the MLPs'
    ``a`` and gets ``b`` from its own (first) measurement, ``c`` = 0.
    """
    import numpy as np

    out: dict = {}
    for mode in ("eager", "compiled"):
        seconds = {r["workload"]: r[f"{mode}_epoch_s"] / r["steps_per_epoch"] for r in lines}
        rows = {r["workload"]: r["k"] * r["rows_per_step"] for r in lines}
        mlps = [r for r in lines if r["kind"] == "mlp"]
        design = np.array([[1.0, rows[r["workload"]] * r["n_params"], rows[r["workload"]] * r["width"]] for r in mlps])
        target = np.array([seconds[r["workload"]] for r in mlps])
        (a, b, c), *_ = np.linalg.lstsq(design / target[:, None], np.ones(len(mlps)), rcond=None)
        out[mode] = {"mlp": (a, b, c)}
        for r in mlps:
            out[mode].setdefault("fit_over_measured", {})[r["workload"]] = round(
                (a + rows[r["workload"]] * (b * r["n_params"] + c * r["width"])) / seconds[r["workload"]], 3
            )
        for r in lines:
            if r["kind"] != "mlp" and r["kind"] not in out[mode]:
                out[mode][r["kind"]] = (a, (seconds[r["workload"]] - a) / (rows[r["workload"]] * r["n_params"]), 0.0)
    out["cold_compile_s"] = {r["workload"]: r["cold_compile_s"] for r in lines if "cold_compile_s" in r}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mlp,quadrants,digits_mlp,cnn", help="comma-separated workload names")
    parser.add_argument("--cold", default="", help="comma-separated workloads whose cold compile to time as well")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--chunk-size", default="none", choices=["none", "auto"],
        help="none: every configuration in one chunk (how the constants are fitted); auto: as a sweep cuts them",
    )  # fmt: skip
    parser.add_argument(
        "--fit", metavar="FILE", help="print the rule's constants fitted to FILE (this script's output)"
    )
    args = parser.parse_args(argv)
    if args.fit:
        with open(args.fit) as f:
            print(json.dumps(fit([json.loads(line) for line in f if line.startswith("{")]), default=float, indent=1))
        return
    torch.set_num_threads(1)
    cold = set(filter(None, args.cold.split(",")))
    for name in args.workloads.split(","):
        chunk = None if args.chunk_size == "none" else "auto"
        print(json.dumps(measure(name, args.repeats, name in cold, chunk)), flush=True)


if __name__ == "__main__":
    main()
