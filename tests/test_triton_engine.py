"""regfn.sweep(engine="triton"): the fused kernel against the vmap engine and regfn.random.

Without a GPU the kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``,
which conftest.py sets before anything imports triton), which checks the
kernel's arithmetic on CPU; with CUDA the same tests run the compiled kernel.
Sizes stay small: the interpreter runs each program op by op.
"""

from __future__ import annotations

import importlib
import math
import warnings

import pytest
import torch
from conftest import CUDA, skip_unless_triton_engine_runs

import regfn
import regfn.random as rr
from regfn._hparams import OPTIMIZER_ARGS

triton = pytest.importorskip("triton")
tl = triton.language  # a module global: Triton resolves kernels' names there
engine_module = importlib.import_module("regfn._sweep._triton")
program_module = importlib.import_module("regfn._sweep._program")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
tm = None  # regfn._sweep._triton_mlp, imported by the test that probes its device functions


@pytest.fixture(scope="module")
def split():
    """The data; also skips where this Triton cannot run the kernel (conftest's check)."""
    skip_unless_triton_engine_runs()
    data = regfn.data.synthetic_diabetes(rr.key(0), n=120)
    data, _ = regfn.data.standardize(data)
    train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
    return train.to(DEVICE), val.to(DEVICE)


MODEL = regfn.mlp((8, 6, 4, 1), output="logits")
CONFIGS = [
    {"l2": 0.0, "p": 0.0, "seed": 0},
    {"l2": 1e-2, "p": 0.5, "seed": 1, "lr": 0.1},
    {"l1": 1e-2, "p": 0.2, "seed": 2, "lr": 0.05},
    {"norm2": 1e-2, "p": 0.5, "seed": 3, "momentum": 0.9, "lr": 0.1},
    {"weight_decay": 1e-2, "l2": 1e-3, "p": 1.0, "seed": 4, "lr": 0.1},
    {"l1": 1e-3, "norm2": 1e-3, "p": 0.3, "seed": 5, "momentum": 0.5, "lr": 0.2},
]
RUN = {"epochs": 4, "log_every": 2, "compile": False, "quiet": True}


def assert_rows_close(a, b, rel=2e-5, abs_=1e-6):
    assert len(a) == len(b)
    for i, (ra, rb) in enumerate(zip(a.rows, b.rows, strict=True)):
        assert ra.keys() == rb.keys()
        for name, va in ra.items():
            vb = rb[name]
            if isinstance(va, float):
                assert vb == pytest.approx(va, rel=rel, abs=abs_, nan_ok=True), (i, name)
            else:
                assert va == vb, (i, name)
    for name in a.curves:
        torch.testing.assert_close(b.curves[name], a.curves[name], rtol=rel, atol=abs_, equal_nan=True)


# ----------------------------------------------------------------- the cipher


def test_threefry_fold_in_and_masks_match_regfn_random():
    skip_unless_triton_engine_runs()
    global tm  # the probe kernel reaches the device functions through this global
    tm = importlib.import_module("regfn._sweep._triton_mlp")

    @triton.jit
    def probe(key_ptr, bits_ptr, fold_ptr, mask_ptr, keep, N: tl.constexpr):
        k0 = tl.load(key_ptr).to(tl.uint32, bitcast=True)
        k1 = tl.load(key_ptr + 1).to(tl.uint32, bitcast=True)
        i = tl.arange(0, N).to(tl.uint32)
        y0, y1 = tm._threefry(k0, k1, i * 0, i)
        tl.store(bits_ptr + tl.arange(0, N), (y0 ^ y1).to(tl.int32, bitcast=True))
        f0, f1 = tm._fold_in(k0, k1, tl.full((), 7, tl.uint32))
        tl.store(fold_ptr, f0.to(tl.int32, bitcast=True))
        tl.store(fold_ptr + 1, f1.to(tl.int32, bitcast=True))
        tl.store(mask_ptr + tl.arange(0, N), tm._keep_mask(k0, k1, i, keep).to(tl.int32))

    for seed in (0, 42, 2**31 + 5):
        key = rr.fold_in(rr.key(seed), 3)  # both words nonzero
        words = rr._wrap32(key).to(DEVICE)
        bits = torch.empty(64, dtype=torch.int32, device=DEVICE)
        fold = torch.empty(2, dtype=torch.int32, device=DEVICE)
        mask = torch.empty(64, dtype=torch.int32, device=DEVICE)
        keep = 0.7
        probe[(1,)](words, bits, fold, mask, keep, N=64)
        assert torch.equal(rr._unsigned(bits.cpu()), rr.bits(key, (64,)))
        assert torch.equal(rr._unsigned(fold.cpu()), rr.fold_in(key, 7))
        assert torch.equal(mask.cpu().bool(), rr.bernoulli(key, torch.tensor(keep), (64,)))


def test_philox_fold_in_and_masks_match_regfn_random():
    skip_unless_triton_engine_runs()
    global tm
    tm = importlib.import_module("regfn._sweep._triton_mlp")
    tl = triton.language

    @triton.jit
    def probe(key_ptr, fold_ptr, mask_ptr, keep, N: tl.constexpr):
        k0, k1 = tm._load_key(key_ptr, 0, True)
        i = tl.arange(0, N).to(tl.uint32)
        f0, f1 = tm._key_fold_in(k0, k1, tl.full((), 7, tl.uint32), True)
        tl.store(fold_ptr, f0.to(tl.int64, bitcast=True))
        tl.store(fold_ptr + 1, f1.to(tl.int64, bitcast=True))
        tl.store(mask_ptr + tl.arange(0, N), tm._philox_keep_mask(k0, k1, i, keep).to(tl.int32))

    for seed in (0, 42, 2**40 + 5):
        key = rr.fold_in(rr.key(seed, impl="philox4x32"), 3)  # all four words nonzero
        fold = torch.empty(2, dtype=torch.int64, device=DEVICE)
        mask = torch.empty(64, dtype=torch.int32, device=DEVICE)
        probe[(1,)](rr._wrap32(key).to(DEVICE), fold, mask, 0.7, N=64)
        packed = fold.cpu()
        words = torch.stack([packed & 0xFFFFFFFF, (packed >> 32) & 0xFFFFFFFF], dim=1).reshape(-1)
        assert torch.equal(words, rr.fold_in(key, 7))
        assert torch.equal(mask.cpu().bool(), rr.bernoulli(key, torch.tensor(0.7), (64,)))


@pytest.mark.parametrize("batch_size", [None, 30])
def test_philox_keys_match_vmap_engine(split, batch_size):
    train, val = split
    run = dict(RUN, epochs=3, log_every=1, key_impl="philox4x32", batch_size=batch_size)
    a = regfn.sweep(MODEL, train, CONFIGS[1:3], val=val, **run)
    b = regfn.sweep(MODEL, train, CONFIGS[1:3], val=val, engine="triton", **run)
    assert (a.engine, b.engine) == ("vmap", "triton")
    assert b.settings["key_impl"] == "philox4x32"
    assert_rows_close(a, b)
    threefry = regfn.sweep(MODEL, train, CONFIGS[1:3], val=val, engine="triton", **dict(run, key_impl="threefry2x32"))
    assert threefry.rows[0]["loss"] != b.rows[0]["loss"]  # the masks differ by key kind


# ----------------------------------------------------------------- against the vmap engine


@pytest.mark.parametrize("loss", ["bce_logits", "mse"])
def test_matches_vmap_engine(split, loss):
    train, val = split
    a = regfn.sweep(MODEL, train, CONFIGS, val=val, loss=loss, **RUN)
    b = regfn.sweep(MODEL, train, CONFIGS, val=val, loss=loss, engine="triton", **RUN)
    assert (a.engine, b.engine) == ("vmap", "triton")
    assert b.curve_epochs == a.curve_epochs == [2, 4]
    assert_rows_close(a, b)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "adagrad"])
def test_other_optimizers_match_vmap_engine(split, optimizer):
    train, val = split
    takes = set(OPTIMIZER_ARGS[optimizer])
    configs = [{k: v for k, v in c.items() if k != "momentum" or "momentum" in takes} for c in CONFIGS]
    for c in configs:
        c["lr"] = c.get("lr", 0.01) / 10
    a = regfn.sweep(MODEL, train, configs, val=val, optimizer=optimizer, **RUN)
    b = regfn.sweep(MODEL, train, configs, val=val, optimizer=optimizer, engine="triton", **RUN)
    assert b.engine == "triton"
    assert_rows_close(a, b)
    # Mini-batches: Adam's step count runs across batches and launches (bias corrections).
    run = dict(RUN, epochs=3, log_every=1)
    a = regfn.sweep(MODEL, train, configs[1:3], optimizer=optimizer, batch_size=30, **run)
    b = regfn.sweep(MODEL, train, configs[1:3], optimizer=optimizer, batch_size=30, engine="triton", **run)
    assert_rows_close(a, b)


@pytest.mark.parametrize("batch_size", [16, 30])  # 90 rows: 5 full batches of 16 (10 rows left out); 3 of 30
def test_mini_batches_match_vmap_engine(split, batch_size):
    train, val = split
    configs = [CONFIGS[1], CONFIGS[3]]
    run = dict(RUN, epochs=3, log_every=1)
    a = regfn.sweep(MODEL, train, configs, val=val, batch_size=batch_size, **run)
    b = regfn.sweep(MODEL, train, configs, val=val, batch_size=batch_size, engine="triton", **run)
    assert b.engine == "triton"
    assert_rows_close(a, b)


def test_mini_batch_orders_are_cut_into_launches_that_fit(split, monkeypatch):
    train, _ = split
    configs = [CONFIGS[1], CONFIGS[3]]
    run = dict(RUN, epochs=3, log_every=3, batch_size=30)
    whole = regfn.sweep(MODEL, train, configs, engine="triton", **run)
    monkeypatch.setattr(engine_module, "_ORDER_LIMIT", 1)  # one epoch per launch
    cut = regfn.sweep(MODEL, train, configs, engine="triton", **run)
    assert cut.rows == whole.rows


@pytest.mark.parametrize("sizes", [(8, 5, 1), (8, 7, 3, 2, 1)], ids=["1-hidden", "3-hidden"])
def test_other_depths_match_vmap_engine(split, sizes):
    train, val = split
    model = regfn.mlp(sizes, output="logits")
    configs = [CONFIGS[1], CONFIGS[3], CONFIGS[5]]
    a = regfn.sweep(model, train, configs, val=val, **RUN)
    b = regfn.sweep(model, train, configs, val=val, engine="triton", **RUN)
    assert b.engine == "triton"
    assert_rows_close(a, b)


def test_kernel_source_is_generated_per_depth():
    tm = importlib.import_module("regfn._sweep._triton_mlp")
    two = tm.kernel_source(2)
    assert "z2 = _dense(a1, w2, b2)" in two
    assert "z3" not in two
    assert "w3 = _load_vector" in two
    assert "for bt in tl.static_range(1):" in two
    assert "order_ptr +" not in two
    shuffled = tm.kernel_source(2, shuffled=True)
    assert "for bt in range(n_batches):" in shuffled
    assert "tl.load(order_ptr +" in shuffled
    assert tm.kernel(2) is tm.kernel(2)  # generated and compiled once per depth and batching
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        tm.kernel_source(0)


def test_row_equals_a_single_training_run(split):
    train, _ = split
    row = CONFIGS[3]
    result = regfn.sweep(MODEL, train, [row], engine="triton", **RUN)
    opt = regfn.optim.sgd(row["lr"], momentum=row["momentum"])
    single = regfn.train(MODEL, train, optimizer=opt, penalties=[regfn.norm(row["norm2"], 2)], p=row["p"],
                         key=rr.key(row["seed"]), epochs=4, log_every=2)  # fmt: skip
    assert result.rows[0]["loss"] == pytest.approx(single.metrics["loss"], rel=2e-5)
    assert [h["loss"] for h in single.history] == pytest.approx(result.curves["loss"][0].tolist(), rel=2e-5)


def test_chunks_and_repeats_are_bit_identical(split):
    train, val = split
    configs, run = CONFIGS[1:4], dict(RUN, epochs=3)
    whole = regfn.sweep(MODEL, train, configs, val=val, engine="triton", chunk_size=None, **run)
    chunked = regfn.sweep(MODEL, train, configs, val=val, engine="triton", chunk_size=2, **run)
    again = regfn.sweep(MODEL, train, configs, val=val, engine="triton", chunk_size=None, **run)
    for other in (chunked, again):
        assert other.rows == whole.rows
        for name in whole.curves:
            assert torch.equal(other.curves[name], whole.curves[name])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow notes, in the interpreter
def test_diverging_config_is_flagged_and_neighbours_are_exact(split):
    train, _ = split
    bad = {"lr": 1e30, "seed": 9}
    with_bad = regfn.sweep(MODEL, train, [CONFIGS[1], bad, CONFIGS[2]], engine="triton", **RUN)
    without = regfn.sweep(MODEL, train, [CONFIGS[1], CONFIGS[2]], engine="triton", **RUN)
    assert with_bad.diverged == [1]
    assert with_bad.rows[1]["diverged"]
    assert not math.isfinite(with_bad.rows[1]["loss"])
    assert [with_bad.rows[0], with_bad.rows[2]] == without.rows


# ----------------------------------------------------------------- what it refuses, and falling back


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": regfn.mlp((8, 1), output="logits")}, "needs a hidden layer"),
        # two logits for binary data: the two-row check before training refuses it first (regfn._preflight)
        ({"model": regfn.mlp((8, 6, 4, 2), output="logits")}, r"the data needs shape \(2, 1\)"),
        ({"model": regfn.mlp((8, 6, 4, 1), "tanh", output="logits")}, "activation must be 'relu'"),
        ({"model": regfn.mlp((8, 6, 4, 1))}, "output must be 'logits'"),
        ({"model": regfn.Model(MODEL.init, lambda params, x, **kw: MODEL.apply(params, x, **kw))}, "regfn.mlp"),
        ({"loss": "bce"}, "loss must be one of"),
        ({"engine": "jit"}, "engine must be one of"),
    ],
)
def test_refuses_what_it_does_not_run(split, kwargs, message):
    train, _ = split
    args = {"model": MODEL, "engine": "triton", "epochs": 1, "quiet": True, "compile": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        regfn.sweep(args.pop("model"), train, [{}], **args)


def test_refuses_data_too_large_for_32_bit_dropout_counters():
    big = torch.zeros(1, 8).expand(2**31 // 6 + 1, 8)  # a stride-0 view: the shape without the memory
    spec = program_module.Spec(MODEL, regfn.losses.get_loss("bce_logits"), "sgd", ("lr",), (), False)
    problems = engine_module._problems(spec, big, torch.device(DEVICE))
    assert "rows x widest hidden layer must be below 2**31, got 357913942 x 6" in problems


def _job(spec, data, **kw):
    return engine_module.Job(spec, data, None, 2, None, 1, False, False, **kw)


def test_a_penalty_the_kernel_lacks_is_refused_not_dropped():
    # The kernel applies l1, l2 and norm2 by flag; a penalty it has no flag for would silently train without it.
    data = regfn.data.synthetic_diabetes(rr.key(0), n=16)
    bce = regfn.losses.get_loss("bce_logits")
    spec = program_module.Spec(MODEL, bce, "sgd", ("lr",), ("l2", "elastic"), False)
    problems = engine_module.TritonEngine.problems(_job(spec, data))
    assert "it applies only the penalties l1, l2, norm2, not elastic" in problems
    kept = program_module.Spec(MODEL, bce, "sgd", ("lr",), engine_module.PENALTIES, False)
    assert not any("penalties" in p for p in engine_module.TritonEngine.problems(_job(kept, data)))
    vmap = importlib.import_module("regfn._sweep._vmap").VmapEngine
    assert vmap.problems(_job(spec, data)) == []  # the vmap engine applies any penalty


def test_what_an_engine_does_not_run_is_refused_naming_it():
    data = regfn.data.synthetic_diabetes(rr.key(0), n=16)
    train, val = regfn.data.train_val_split(rr.key(1), data, 0.25)
    schedule = regfn.search.pbt(interval=1, key=rr.key(0))
    with pytest.raises(ValueError, match=r"engine='triton' is not available: .*a PBT schedule copies rows"):
        regfn.sweep(MODEL, train, [{"lr": 0.1}, {"lr": 0.2}], val=val, engine="triton", schedule=schedule, **RUN)
    with pytest.raises(ValueError, match=r"engine='triton' is not available: .*cross-validation \(cv=\)"):
        regfn.sweep(MODEL, data, [{}], cv=2, engine="triton", **RUN)


def test_refuses_cpu_without_the_interpreter(split, monkeypatch):
    train, _ = split
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="runs on CUDA, got device cpu"):
        regfn.sweep(MODEL, train.to("cpu"), [{}], engine="triton", epochs=1, quiet=True, compile=False)


def test_a_failing_kernel_falls_back_to_vmap_with_a_warning(split, monkeypatch):
    train, _ = split

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(engine_module.Packed, "train", broken)
    for compile in (False, True):
        run = dict(RUN, compile=compile)
        with pytest.warns(
            UserWarning, match="Triton kernel failed .*RuntimeError: no kernel today.*engine='vmap'"
        ) as record:
            result = regfn.sweep(MODEL, train, CONFIGS[:2], engine="triton", **run)
        ours = [w for w in record if str(w.message).startswith("regfn.")]
        assert [w.filename for w in ours] == [__file__]  # one warning, at the caller; no compile failure
        assert result.engine == "vmap"
        assert result.rows == regfn.sweep(MODEL, train, CONFIGS[:2], **run).rows


def test_mlp_settings_describe_the_model():
    settings = regfn.mlp((8, 6, 4, 1), output="logits").apply.mlp_settings
    assert settings == regfn.nn.MLPSettings((8, 6, 4, 1), "relu", "logits", torch.float32)


@CUDA
def test_cuda_compiled_kernel_matches_vmap_engine_compiled(split):
    train, val = (d.to("cuda") for d in split)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        b = regfn.sweep(MODEL, train, CONFIGS, val=val, engine="triton", epochs=40, log_every=10, quiet=True)
    assert not [str(w.message) for w in record if str(w.message).startswith("regfn.")]  # no fallback here
    a = regfn.sweep(MODEL, train, CONFIGS, val=val, epochs=40, log_every=10, quiet=True)
    assert b.engine == "triton"
    assert_rows_close(a, b, rel=1e-4, abs_=1e-5)
