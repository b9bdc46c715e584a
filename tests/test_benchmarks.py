"""Smoke tests: the benchmark scripts run and print their JSON lines (timings are not checked)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from conftest import skip_unless_triton_engine_runs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_sweep_benchmark_prints_one_json_line_per_k():
    rows = run(
        "sweep.py",
        "--device",
        "cpu",
        "--ks",
        "2,3",
        "--epochs",
        "2",
        "--no-jax",
        "--no-compile",
        "--seq-configs",
        "1",
        "--inductor",
        "max_autotune=False",
    )
    assert [r["K"] for r in rows] == [2, 3]
    assert all(r["inductor"] == {"max_autotune": False} for r in rows)
    for r in rows:
        assert {"K", "epochs", "device", "regfn_s", "seq_s", "jax_s", "regfn_vs_jax", "seq_vs_regfn"} <= set(r)
        assert r["jax_s"] is None
        assert r["regfn_s"] > 0
        assert r["diverged"] == 0


def test_sweep_benchmark_times_the_triton_engine():
    skip_unless_triton_engine_runs()  # on CPU the kernel runs in Triton's interpreter (conftest sets TRITON_INTERPRET)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = run(
        "sweep.py",
        "--device",
        device,
        "--ks",
        "2",
        "--epochs",
        "2",
        "--no-jax",
        "--no-compile",
        "--seq-configs",
        "1",
        "--triton",
        "--triton-tiles",
        "32x2",
    )
    (r,) = rows
    assert r["triton_s"] > 0
    assert set(r["triton_tiles_s"]) == {"32x2"}
    assert r["triton_loss_max_rel_diff"] < 1e-5


def test_triton_kernel_compiles_for_hopper_without_a_gpu():
    pytest.importorskip("triton")
    (row,) = run("triton_kernel_info.py", "--arch", "90", "--sizes", "8-6-4-1")
    assert row["tile"] == "64x4"
    assert row["arch"] == "sm_90"
    assert 0 < row["registers"] <= 255
    assert row["stack_bytes"] >= 0
    assert row["triton"]
    (row,) = run("triton_kernel_info.py", "--arch", "90", "--sizes", "8-6-4-1", "--key-impl", "philox4x32")
    assert row["key_impl"] == "philox4x32"
    assert 0 < row["registers"] <= 255


@pytest.mark.slow
def test_uniform_benchmark_runs():
    rows = run("random_uniform.py", "--device", "cpu", "--sizes", "1000", "--repeats", "1")
    assert [(r["impl"], r["mode"]) for r in rows] == [
        ("threefry2x32", "eager"),
        ("threefry2x32", "compiled"),
        ("philox4x32", "eager"),
        ("philox4x32", "compiled"),
    ]


def test_optim_benchmark_runs_every_variant():
    rows = run("optim_step.py", "--models", "8-6-4-1", "--cases", "sgd_momentum,adam", "--repeats", "1")
    assert [r["case"] for r in rows if "case" in r] == ["sgd_momentum", "adam"]
    for r in (r for r in rows if "case" in r):
        for variant in (
            "torch_single",
            "torch_foreach",
            "regfn_eager",
            "regfn_step",
            "regfn_inplace",
            "regfn_compiled",
        ):
            assert r[f"{variant}_us"] > 0
        assert {"eager_ratio", "step_ratio", "inplace_ratio", "compiled_ratio"} <= set(r)


def test_cnn_sweep_benchmark_prints_one_json_line_per_k():
    pytest.importorskip("sklearn")
    rows = run(
        "sweep_cnn.py", "--K", "2,3", "--epochs", "1", "--no-jax", "--no-compile", "--seq-configs", "1",
        "--key-impl", "philox4x32",
    )  # fmt: skip
    assert [r["K"] for r in rows] == [2, 3]
    assert {r["key_impl"] for r in rows} == {"philox4x32"}
    for r in rows:
        assert {"K", "epochs", "device", "regfn_s", "seq_s", "ensemble_s", "jax_s"} <= set(r)
        assert {"seq_vs_regfn", "regfn_vs_ensemble", "regfn_vs_jax"} <= set(r)
        assert r["jax_s"] is None
        assert min(r["regfn_s"], r["seq_s"], r["ensemble_s"]) > 0
        assert r["diverged"] == 0
        assert r["l2_check_max_abs_diff"] < 1e-5  # regfn's l2 is Adam's coupled weight_decay
        # the torch loop starts from regfn's weights with regfn's batch order: at p=0 the same run
        if r["best"]["p"] == 0.0:
            assert abs(r["regfn_best_val_acc"] - r["seq_same_config_val_acc"]) < 0.01


def test_the_loops_timed_configurations_stand_for_the_grid():
    """The loop times the grid's dropout rates in turn and weights each rate's mean by its share of the grid."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sweep_cnn
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    grid = [{"l2": l2, "p": p, "seed": 0} for l2 in (0.0, 1e-3) for p in (0.0, 0.1, 0.5)]
    assert [(c["l2"], c["p"]) for c in sweep_cnn.timed_configs(grid, 4)] == [
        (0.0, 0.0),
        (0.0, 0.1),
        (0.0, 0.5),
        (1e-3, 0.0),
    ]
    timed = sweep_cnn.timed_configs(grid, 4)
    assert sweep_cnn.grid_mean(grid, timed, [1.0, 4.0, 7.0, 3.0]) == pytest.approx((2.0 + 4.0 + 7.0) / 3)
    assert sweep_cnn.grid_mean(grid, timed[:1], [2.0]) == 2.0  # a rate never timed takes the overall mean


def test_mlp_sweep_benchmark_prints_one_json_line_per_k():
    pytest.importorskip("sklearn")
    rows = run("sweep_mlp.py", "--workload", "cancer", "--K", "2,3", "--epochs", "1", "--no-jax", "--no-compile",
               "--seq-configs", "1")  # fmt: skip
    assert [r["K"] for r in rows] == [2, 3]
    for r in rows:
        assert r["workload"].startswith("cancer: MLP 30-512-256-128-2")
        assert r["regfn_compiled"] is False
        assert min(r["regfn_s"], r["seq_s"]) > 0
        assert r["jax_s"] is None
        # the seconds are printed rounded to ms, the ratio from the unrounded ones
        assert r["seq_vs_regfn"] == pytest.approx(r["seq_s"] / r["regfn_s"], rel=0.1, abs=0.01)
        assert 0.5 < r["regfn_best_val_acc"] <= 1
        assert r["diverged"] == 0


def test_search_benchmark_prints_one_json_line_per_method(tmp_path):
    tasks = "diabetes"
    try:
        import sklearn  # noqa: F401

        tasks += ",digits"
    except ImportError:
        pass
    figure = tmp_path / "search.png"
    args = ["--tasks", tasks, "--epochs", "9", "--samples", "243", "--figure", str(figure)]
    try:
        import optuna  # noqa: F401

        args += ["--optuna-budget", "1"]
        optuna_rows = ["optuna"]
    except ImportError:
        args += ["--no-optuna", "--optuna-budget", "1"]
        optuna_rows = []
    rows = run("search.py", *args)
    for task in tasks.split(","):
        mine = [r for r in rows if r["task"] == task]
        methods = [r["method"] for r in mine]
        halvings = [f"halving {m} r={r} eta=3" for r in (1, 3) for m in ("val_acc", "val_loss")]
        samples = [f"random {n} + halving val_loss r=1" for n in (81, 243)]
        anytime = ["anytime 27", "anytime 81 + halving"]
        assert methods == ["grid", "1 configuration", *halvings, "random", *samples, *anytime, *optuna_rows, "summary"]
        assert all(0.0 <= r["best_val_acc"] <= 1.0 for r in mine[:-1])
        assert all(r["config_epochs"] < 81 * 9 for r in mine if r["method"].startswith("halving"))
        summary = mine[-1]
        assert set(summary["halving_vs_grid"]) == {*halvings, *samples}
        assert ("reach_optuna_best" in summary) == bool(optuna_rows)
    assert figure.exists()


@pytest.mark.slow
def test_distributed_benchmark_compares_one_and_two_ranks():
    (row,) = run("sweep_distributed.py", "--nproc", "2", "--K", "6", "--epochs", "2")
    assert (row["nproc"], row["chunk_size"], row["settingsN"]["world_size"]) == (2, 3, 2)
    assert row["rows_equal"] is True
    assert row["world1_s"] > 0
    assert row["worldN_s"] > 0


def test_checkpoint_benchmark_prints_its_json_line():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "checkpoint.py"),
            "--k",
            "8",
            "--epochs",
            "4",
            "--every",
            "2",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert row["k"] == 8
    assert row["files_bytes"] > 0
    assert 0 < row["saving_fraction"] < 1


def test_cv_benchmark_prints_its_methods_and_the_folds_agree():
    rows = run("cv.py", "--epochs", "3", "--configs", "3", "--k", "3", "--loop-configs", "1")
    assert [r.get("method") for r in rows[:3]] == ["cv", "folds", "loop"]
    assert rows[1]["max_val_loss_gap"] < 1e-5  # one program of K x k rows equals k sweeps of K
    assert rows[3]["ratio_cv_over_folds"] > 0


def test_cv_benchmark_times_halving_under_cross_validation():
    rows = run("cv.py", "--halving", "--epochs", "27", "--k", "3")
    assert [r["method"] for r in rows] == ["grid", "halving val_loss", "halving val_acc"]
    assert rows[1]["config_fold_epochs"] < rows[0]["config_fold_epochs"]
    assert all(0.0 <= r["best_val_acc"] <= 1.0 for r in rows)


@pytest.mark.slow
def test_auto_compile_benchmark_prints_its_calibration_line():
    (row,) = run("auto_compile.py", "--workloads", "quadrants", "--repeats", "1")
    assert row["workload"] == "quadrants"
    assert row["work"] == row["k"] * row["rows_per_step"] * row["n_params"] * row["steps_per_epoch"]
    assert row["eager_epoch_s"] > 0
    assert row["compiled_epoch_s"] > 0
    assert 0 <= row["compiled_vs_eager"] < 1e-4  # compiled and eager differ in the last bits only
    assert isinstance(row["threads_change_bits"], bool)


def test_auto_compile_fit_recovers_known_costs(tmp_path):
    """--fit: rows made from known constants give those constants back (the rule's, regfn/_sweep/_auto.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import auto_compile

    a, b, c = 4e-3, 2e-10, 3e-8
    shapes = [(24, 51, 11, 320, 1), (64, 87, 11, 768, 1), (16, 2410, 42, 128, 14), (32, 50826, 394, 128, 14)]
    lines = []
    for k, params, width, rows, steps in shapes:
        step = a + k * rows * (b * params + c * width)
        lines.append({"workload": f"w{params}", "kind": "mlp", "k": k, "n_params": params, "width": width,
                      "rows_per_step": rows, "steps_per_epoch": steps, "eager_epoch_s": step * steps,
                      "compiled_epoch_s": step * steps / 2})  # fmt: skip
    conv_step = a + 16 * 64 * 7e-9 * 9930
    lines.append({"workload": "cnn", "kind": "conv", "k": 16, "n_params": 9930, "width": 58, "rows_per_step": 64,
                  "steps_per_epoch": 22, "eager_epoch_s": conv_step * 22, "compiled_epoch_s": conv_step * 11,
                  "cold_compile_s": 33.0})  # fmt: skip
    (tmp_path / "costs.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    out = subprocess.run([sys.executable, "benchmarks/auto_compile.py", "--fit", str(tmp_path / "costs.jsonl")],
                         capture_output=True, text=True, cwd=ROOT, check=True)  # fmt: skip
    fitted = json.loads(out.stdout)
    assert fitted["eager"]["mlp"] == pytest.approx([a, b, c], rel=1e-6)
    assert fitted["compiled"]["mlp"] == pytest.approx([a / 2, b / 2, c / 2], rel=1e-6)
    assert fitted["eager"]["conv"] == pytest.approx([a, 7e-9, 0.0], rel=1e-6)
    assert set(fitted["eager"]["fit_over_measured"].values()) == {1.0}
    assert fitted["cold_compile_s"] == {"cnn": 33.0}
    assert auto_compile.fit(lines)["eager"]["mlp"] == pytest.approx([a, b, c], rel=1e-6)


def test_epoch_profile_prints_its_summary_and_the_operators():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "profile_epoch.py"),
            *("--eager", "--epochs", "1", "--profile-epochs", "1", "--rows", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    assert (summary["compiled"], summary["epochs"]) == (False, 1)
    assert "aten::bmm" in out.stdout  # the batched matmuls of the vmapped MLP


def test_second_process_benchmark_runs_two_fresh_processes():
    pytest.importorskip("sklearn")
    (line,) = run("second_process.py", "--no-compile")
    assert line["compile"] is False
    for part in ("cold", "warm"):
        assert line[part]["compile_s"] >= 0.0
        assert line[part]["sweep_s"] >= line[part]["total_s"] > 0.0


def test_bmm_shapes_benchmark_times_every_variant():
    (line,) = run("bmm_shapes.py", "--repeats", "1", "--no-jax")
    assert line["products"] == 8
    assert line["ms"]["jax"] is None
    assert min(line["ms"][k] for k in ("torch", "torch_transposed", "torch_rotating")) > 0


def test_roofline_benchmark_bounds_the_loop_by_its_matmuls():
    pytest.importorskip("sklearn")
    (row,) = run("roofline.py", "--workload", "digits", "--K", "2", "--epochs", "1", "--seq-configs", "1")
    assert row["workload"].startswith("digits: MLP 64-256-128-10")
    # 2 configurations x (1,437 training rows forward and backward + 360 validation rows forward), by hand
    per_row = 2 * (64 * 256 + 256 * 128 + 128 * 10)
    assert row["gflop"] == round(2 * (1437 * 3 * per_row - 1437 * 2 * 64 * 256 + 360 * per_row) / 1e9, 1)
    assert min(row["bmm_floor_s"], row["mm_floor_s"], row["loop_s"]) > 0
    # the seconds are printed rounded to ms (a tiny floor here), the ratio from the unrounded ones
    loop, floor = row["loop_s"], row["bmm_floor_s"]
    low, high = (loop - 5e-4) / (floor + 5e-4), (loop + 5e-4) / max(floor - 5e-4, 1e-9)
    assert low * 0.99 <= row["best_loop_vs_vmapped"] <= high * 1.01
    assert row["steps_per_epoch"] == 12


def test_epoch_profile_runs_the_wide_mlp_workload():
    pytest.importorskip("sklearn")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_epoch.py"),
         *("--workload", "cancer", "--eager", "--epochs", "1", "--profile-epochs", "1", "--rows", "40")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    assert (summary["compiled"], summary["epochs"]) == (False, 1)
    assert "aten::bmm" in out.stdout


def _cpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_check", ROOT / "benchmarks" / "cpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_check_judges_values_against_the_target_and_the_record():
    check = _cpu_check()
    by_name = {c.name: c for c in check.CHECKS}
    assert set(check.RUNS) == {c.run for c in check.CHECKS} == set(check.QUICK)
    tutorial, compile_s = by_name["tutorial sweep: loop / regfn"], by_name["digits MLP cold compile, s"]
    assert check.verdict(tutorial, 8.0) == "target met"
    assert check.verdict(tutorial, 7.5) == "target not met"  # within the slack of the record 10.1
    assert check.verdict(tutorial, 6.5) == "REGRESSED, target not met"  # rows first, as before session 13
    assert check.verdict(tutorial, 2.0) == "REGRESSED, target not met"  # session 10's compiled tutorial step
    assert check.verdict(compile_s, 10.0) == "target met"
    assert check.verdict(compile_s, 19.0) == "REGRESSED, target met"  # within the target, far above the record
    assert check.verdict(compile_s, 30.0) == "REGRESSED, target not met"
    assert check.verdict(compile_s, None) == "not measured"
    rows = check.report(
        {"tutorial": {"seq_vs_regfn": 7.5, "regfn_vs_jax": None}, "compile": {"cold": {"compile_s": 18}}}
    )
    values = {r["check"]: r["value"] for r in rows}
    assert values["tutorial sweep: loop / regfn"] == 7.5
    assert values["tutorial sweep: regfn / JAX"] is None
    assert values["digits MLP cold compile, s"] == 18.0


def test_cpu_check_runs_its_benchmarks_and_reports_every_check():
    pytest.importorskip("sklearn")
    (line,) = run("cpu_check.py", "--quick", "--runs", "tutorial,compile")
    assert [r["check"] for r in line["rows"]] == [c.name for c in _cpu_check().CHECKS]
    measured = {r["check"] for r in line["rows"] if r["value"] is not None}
    assert measured == {
        "tutorial sweep: loop / regfn",
        "digits MLP cold compile, s",
        "digits MLP second process compile, s",
    }
    assert set(line["lines"]) == {"tutorial", "compile"}


def test_first_call_benchmark_times_the_sweep_and_both_loops_in_a_fresh_process():
    rows = run("first_call.py", "--workloads", "digits", "--K", "2", "--epochs", "2", "--seq-configs", "1")
    assert len(rows) == 1
    row = rows[0]
    assert (row["workload"], row["K"], row["epochs"], row["log_every"]) == ("digits", 2, 2, 1)
    assert min(row["regfn_first_s"], row["loop_logged_s"], row["loop_s"]) > 0
    assert row["first_vs_loop"] == pytest.approx(row["regfn_first_s"] / row["loop_s"], rel=0.2)  # rounded seconds
