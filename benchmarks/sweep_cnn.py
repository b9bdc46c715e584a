"""A small CNN on the 8x8 digits, K configurations (l2 x p x seed): regfn vs a torch loop vs ensembling vs JAX.

Workload (issue #13): ``DigitsCNN`` below, Conv2d(1, 16, 3, padding=1) ReLU
Dropout Conv2d(16, 32, 3, padding=1) ReLU Dropout MaxPool2d(2) Linear(512, 10)
(the issue's Conv-Conv-Linear(32*4*4, 10) with the shapes adapted to 8x8
inputs: padded 3x3 convolutions keep 8x8, one 2x2 max pool makes 32x4x4),
cross-entropy, Adam (lr 1e-3), mini-batches of 64 (last incomplete batch
dropped), E epochs, on scikit-learn's digits split 80/20 (stratified, keyed):
1,438 training images, 22 batches an epoch, 359 validation images. K
configurations: L2 strengths x dropout rates x seeds.

* regfn: ``regfn.sweep(regfn.from_module(DigitsCNN()), ...)`` (vmapped,
  compiled by default; ``--chunk-size``: regfn's ``chunk_size``, ``auto`` by
  default, as a user gets it). ``regfn_s`` is the second call's training time (the
  compiled program reused); ``regfn_compile_s`` the first call's compile time.
* seq: the same ``nn.Module`` trained one configuration after another with
  ``torch.optim.Adam(weight_decay=l2)`` (coupled decay adds ``l2 * w`` to the
  gradient, which is regfn's ``l2/2 * sum w**2`` penalty: ``l2_check``
  measures it), from regfn's initial weights and mini-batch order for the
  same seed (dropout from torch's global RNG). A few configurations are timed
  and the time is scaled to K.
* ensemble: torch's model-ensembling recipe: ``torch.func.stack_module_state``
  + ``functional_call`` + ``vmap(randomness="different")``, compiled. It cannot
  vary hyperparameters per model, so it trains K models of one setting (p =
  0.25, l2 = 1e-4) on shared mini-batches: less work than the sweep.
* jax: Flax modules (``nn.Dense``; the 3x3 convolutions as 9 shifted slices
  and one matmul with ``nn.Conv``'s parameters, or ``nn.Conv`` itself with
  ``--jax-conv lax``, which vmap turns into grouped convolutions, slow on
  CPU; dropout written with ``jax.random.bernoulli`` because the rate is a
  per-configuration value) and
  Optax (``add_decayed_weights(l2)`` then ``adam``: coupled, as torch's),
  ``jit(vmap(train))`` with ``lax.scan`` over epochs and batches, per-config
  shuffles (when jax, flax and optax are importable).

Every timed part runs with ``--threads`` threads (torch's intra-op threads; XLA's
CPU client set to one thread when it is 1). One JSON object per K is printed.

    python benchmarks/sweep_cnn.py --K 16,64 --epochs 10 --threads 1
    python benchmarks/sweep_cnn.py --K 64 --epochs 10 --threads 2 --repeats 3
    python benchmarks/sweep_cnn.py --device cuda --K 1024 --epochs 10 --seq-configs 2   # issue #22's target 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import regfn
import regfn.random as rr
from regfn._train import run_keys  # the (init, dropout, shuffle) split of a run's key

LR = 1e-3
BATCH = 64
L2S = (0.0, 1e-4, 1e-3, 1e-2)
PS = (0.0, 0.1, 0.25, 0.5)
ENSEMBLE_SETTING = {"l2": 1e-4, "p": 0.25}


class DigitsCNN(nn.Module):
    """Conv(1->16, 3x3, pad 1) ReLU Dropout Conv(16->32, 3x3, pad 1) ReLU Dropout MaxPool 2x2 Linear(512, 10)."""

    def __init__(self, p: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.drop1 = nn.Dropout(p)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.drop2 = nn.Dropout(p)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = self.drop1(F.relu(self.conv1(x)))
        x = self.drop2(F.relu(self.conv2(x)))
        return self.fc(F.max_pool2d(x, 2).flatten(1))


def load_data():
    data = regfn.data.digits()
    return regfn.data.train_val_split(rr.key(0), data, 0.2)  # stratified by class


def configs(k: int) -> list[dict]:
    """K configurations: every (l2, p) of a 4 x 4 grid for each of ceil(K / 16) seeds, cut to K."""
    seeds = -(-k // (len(L2S) * len(PS)))
    # lr explicitly: a sweep's lr defaults to the registry's 0.01 for every optimizer, not Adam's 1e-3
    return regfn.grid(l2=list(L2S), p=list(PS), seed=list(range(seeds)), lr=[LR])[:k]


# ----------------------------------------------------------------- regfn


def time_regfn(
    model,
    train,
    val,
    cfgs,
    epochs,
    threads,
    compile,
    key_impl="threefry2x32",
    engine="vmap",
    batch_size=BATCH,
    chunk_size="auto",
):
    kw = {
        "engine": engine,
        "key_impl": key_impl,
        "val": val,
        "loss": "cross_entropy",
        "optimizer": "adam",
        "batch_size": batch_size,
        "epochs": epochs,
        "log_every": epochs,
        "chunk_size": chunk_size,
        "quiet": True,
        "threads": threads,
        "compile": compile,
    }
    first = regfn.sweep(model, train, cfgs, **{**kw, "epochs": 1, "log_every": 1})  # compiles the same program
    second = regfn.sweep(model, train, cfgs, **kw)
    return second, first.timings["compile_s"]


def chunk_arg(text: str) -> str | int | None:
    """``--chunk-size``: ``auto`` (regfn's default), ``none`` (one chunk) or a number of configurations."""
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text.lower() in ("auto", "none"):
        return "auto" if text.lower() == "auto" else None
    raise argparse.ArgumentTypeError(f"--chunk-size must be auto, none or a positive integer, got {text!r}")


# ----------------------------------------------------------------- the torch loop, one config after another


def seq_setup(model, cfg, n, epochs, key_impl="threefry2x32", make_net=DigitsCNN, batch_size=BATCH, device="cpu"):
    """``make_net(p)`` (a DigitsCNN) with regfn's initial weights for ``cfg``'s seed, and regfn's mini-batch
    order per epoch."""
    init_key, _dropout_key, shuffle_key = run_keys(rr.key(cfg["seed"], impl=key_impl))
    net = make_net(cfg["p"])
    net.load_state_dict(model.init(init_key))
    net.to(device)
    orders = [regfn.data.batches(rr.fold_in(shuffle_key, e), n, batch_size) for e in range(epochs)]
    return net, orders


def adam(params, cfg):
    """The loop's optimizer: ``torch.optim.Adam`` with the configuration's L2 as its (coupled) weight decay."""
    return torch.optim.Adam(params, lr=LR, weight_decay=cfg["l2"])


def seq_train(net, cfg, train, orders, make_opt=adam, after_epoch=None):
    """Train ``net`` on ``train`` in ``orders`` (one ``(batches, rows)`` index tensor an epoch) with
    ``make_opt(net.parameters(), cfg)``; ``after_epoch(epoch)`` (counted from 1) is called after each epoch."""
    opt = make_opt(net.parameters(), cfg)
    net.train()
    for epoch, order in enumerate(orders, start=1):
        for idx in order:
            opt.zero_grad()
            F.cross_entropy(net(train.x[idx]), train.y[idx]).backward()
            opt.step()
        if after_epoch is not None:
            after_epoch(epoch)
    return net


def accuracy(net, data) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(data.x).argmax(1) == data.y).float().mean())


def timed_configs(cfgs: list[dict], n: int) -> list[dict]:
    """The ``n`` configurations the torch loop times: the grid's dropout rates in turn (the first configuration
    of each rate, then the second, ...), since a configuration's rate sets most of the loop's cost (``p = 0``
    draws no masks: on the digits CNN 0.27 s against 0.39-0.49 s for three epochs)."""
    rank: dict[float | None, int] = {}
    keyed = []
    for i, cfg in enumerate(cfgs):
        rank[cfg.get("p")] = rank.get(cfg.get("p"), -1) + 1
        keyed.append((rank[cfg.get("p")], i))
    return [cfgs[i] for _, i in sorted(keyed)[:n]]


def grid_mean(cfgs: list[dict], timed: list[dict], seconds: list[float]) -> float:
    """The loop's mean seconds per configuration over ``cfgs`` from the ``timed`` ones: each dropout rate's
    timed mean, weighted by its share of ``cfgs`` (the overall timed mean for a rate none was timed at)."""
    overall = statistics.fmean(seconds)
    by_rate: dict[float | None, list[float]] = {}
    for cfg, s in zip(timed, seconds, strict=True):
        by_rate.setdefault(cfg.get("p"), []).append(s)
    return statistics.fmean(statistics.fmean(by_rate[c.get("p")]) if c.get("p") in by_rate else overall for c in cfgs)


def time_seq(model, train, cfgs, epochs, n_timed, make_net=DigitsCNN, batch_size=BATCH):
    """Seconds per configuration of the torch loop over ``cfgs`` (:func:`grid_mean` of ``n_timed`` configurations
    of :func:`timed_configs`), after one untimed epoch: torch.optim's first step imports ``torch._dynamo`` (a
    second or two), which the loop pays once per process, not once per configuration."""
    seconds = []
    warm, warm_orders = seq_setup(model, cfgs[0], len(train), 1, make_net=make_net, batch_size=batch_size,
                                  device=train.x.device)  # fmt: skip
    seq_train(warm, cfgs[0], train, warm_orders)
    timed = timed_configs(cfgs, n_timed)
    for i, cfg in enumerate(timed):
        torch.manual_seed(i)
        device = train.x.device
        net, orders = seq_setup(model, cfg, len(train), epochs, make_net=make_net, batch_size=batch_size, device=device)
        t = time.perf_counter()
        seq_train(net, cfg, train, orders)
        synchronize(device)
        seconds.append(time.perf_counter() - t)
    return grid_mean(cfgs, timed, seconds)


def l2_check(model, train, steps: int = 20) -> float:
    """Largest |difference| of the weights after ``steps`` Adam steps at p=0: regfn's l2 vs Adam's weight_decay."""
    cfg = {"seed": 0, "p": 0.0, "l2": 1e-2}
    net, orders = seq_setup(model, cfg, len(train), 1)
    order = orders[0][:steps]
    params = model.init(run_keys(rr.key(cfg["seed"]))[0])
    opt = regfn.optim.adam(LR)
    state = opt.init(params)
    loss_fn = regfn.l2(cfg["l2"])(lambda ps, x, y: F.cross_entropy(model.apply(ps, x), y))
    for idx in order:
        grads = torch.func.grad(loss_fn)(params, train.x[idx], train.y[idx])
        params, state = regfn.optim.step(opt, params, grads, state)
    torch_opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=cfg["l2"])
    for idx in order:
        torch_opt.zero_grad()
        F.cross_entropy(net(train.x[idx]), train.y[idx]).backward()
        torch_opt.step()
    return max(float((params[k] - v).abs().max()) for k, v in net.state_dict().items())


# ----------------------------------------------------------------- torch's model-ensembling recipe


def time_ensemble(train, k, epochs, compile):
    """K copies of DigitsCNN (one setting), stacked and vmapped; returns (seconds, first-epoch seconds)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    torch.manual_seed(0)
    nets = [DigitsCNN(ENSEMBLE_SETTING["p"]).to(train.x.device) for _ in range(k)]
    params, _ = stack_module_state(nets)
    base = DigitsCNN(ENSEMBLE_SETTING["p"]).to("meta")

    def loss(p, x, y):
        return F.cross_entropy(functional_call(base, p, (x,)), y)

    grads_fn = vmap(grad(loss), in_dims=(0, None, None), randomness="different")
    if compile:
        grads_fn = torch.compile(grads_fn)
    opt = torch.optim.Adam(list(params.values()), lr=LR, weight_decay=ENSEMBLE_SETTING["l2"])
    gen = torch.Generator().manual_seed(0)
    n_batches = len(train) // BATCH

    def epoch():
        order = torch.randperm(len(train), generator=gen)[: n_batches * BATCH].view(n_batches, BATCH)
        for idx in order:
            grads = grads_fn(params, train.x[idx], train.y[idx])
            for name, g in grads.items():
                params[name].grad = g
            opt.step()

    t = time.perf_counter()
    epoch()  # compiles
    synchronize(train.x.device)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(epochs):
        epoch()
    synchronize(train.x.device)
    return time.perf_counter() - t, first


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a CUDA device's kernels run asynchronously; nothing on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------- JAX: Flax + Optax


def time_jax(train, val, cfgs, epochs, conv_kind="slices"):
    try:
        import flax.linen as fnn
        import jax
        import jax.numpy as jnp
        import optax  # noqa: F401 - time_flax needs it; absent, JAX is skipped
    except ImportError:
        return None
    x = jnp.asarray(train.x.permute(0, 2, 3, 1).cpu().numpy())  # NHWC, on JAX's default device
    y = jnp.asarray(train.y.cpu().numpy())
    xv = jnp.asarray(val.x.permute(0, 2, 3, 1).cpu().numpy())
    yv = jnp.asarray(val.y.cpu().numpy())

    def dropout(key, h, p):
        keep = 1.0 - p
        return jnp.where(jax.random.bernoulli(key, keep, h.shape), h / keep, 0.0)

    class SlicedConv(fnn.Module):
        """nn.Conv(features, (3, 3), padding="SAME")'s function and parameters, as 9 shifted slices and one matmul."""

        features: int

        @fnn.compact
        def __call__(self, h):
            c = h.shape[-1]
            kernel = self.param("kernel", fnn.initializers.lecun_normal(), (3, 3, c, self.features))
            bias = self.param("bias", fnn.initializers.zeros_init(), (self.features,))
            hp = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
            rows, cols = h.shape[1], h.shape[2]
            patches = jnp.concatenate([hp[:, i : i + rows, j : j + cols] for i in range(3) for j in range(3)], -1)
            return patches @ kernel.reshape(9 * c, self.features) + bias

    def conv(features):
        if conv_kind == "lax":  # vmapped, XLA makes it a grouped convolution: slow on CPU
            return fnn.Conv(features, (3, 3), padding="SAME")
        return SlicedConv(features)

    class CNN(fnn.Module):
        @fnn.compact
        def __call__(self, h, key=None, p=0.0):
            h = fnn.relu(conv(16)(h))
            if key is not None:
                h = dropout(jax.random.fold_in(key, 0), h, p)
            h = fnn.relu(conv(32)(h))
            if key is not None:
                h = dropout(jax.random.fold_in(key, 1), h, p)
            h = fnn.max_pool(h, (2, 2), strides=(2, 2))
            return fnn.Dense(10)(h.reshape(h.shape[0], -1))

    return time_flax(CNN(), x, y, xv, yv, cfgs, epochs, BATCH)


def time_flax(net, x, y, xv, yv, cfgs, epochs, batch):
    """``jit(vmap)`` over the configurations of training a Flax ``net`` (``net.apply(params, x, key, p)``):
    Adam with coupled weight decay ``l2``, ``lax.scan`` over batches and epochs. Returns (seconds of the
    second call, seconds of the first, best validation accuracy)."""
    import jax
    import jax.numpy as jnp
    import optax

    n = len(x)
    n_batches = n // batch

    def train_one(seed, l2, p):
        init_key, drop_key, shuffle_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        params = net.init(init_key, x[:1])
        tx = optax.chain(optax.add_decayed_weights(l2), optax.adam(LR))  # coupled, as torch's weight_decay
        opt_state = tx.init(params)

        def loss_fn(params, xb, yb, key):
            logits = net.apply(params, xb, key, p)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def step(carry, inp):
            params, opt_state = carry
            idx, key = inp
            grads = jax.grad(loss_fn)(params, x[idx], y[idx], key)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def epoch(carry, e):
            perm = jax.random.permutation(jax.random.fold_in(shuffle_key, e), n)[: n_batches * batch]
            keys = jax.random.split(jax.random.fold_in(drop_key, e), n_batches)
            return jax.lax.scan(step, carry, (perm.reshape(n_batches, batch), keys))[0], None

        (params, _), _ = jax.lax.scan(epoch, (params, opt_state), jnp.arange(epochs))
        return (net.apply(params, xv).argmax(-1) == yv).mean()

    run = jax.jit(jax.vmap(train_one))
    seeds = jnp.asarray([c["seed"] for c in cfgs], jnp.uint32)
    l2s = jnp.asarray([c["l2"] for c in cfgs], jnp.float32)
    ps = jnp.asarray([c["p"] for c in cfgs], jnp.float32)
    t = time.perf_counter()
    run(seeds, l2s, ps).block_until_ready()
    first = time.perf_counter() - t
    t = time.perf_counter()
    accs = run(seeds, l2s, ps).block_until_ready()
    return time.perf_counter() - t, first, float(accs.max())


# ----------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", default="16,64", help="comma-separated numbers of configurations")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every timed part")
    parser.add_argument(
        "--device", default="cpu", help="where regfn, the torch loop and the ensemble train (JAX: its default)"
    )
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument(
        "--jax-conv",
        default="slices",
        choices=["slices", "lax"],
        help="JAX's 3x3 convolutions: 9 shifted slices + one matmul, or flax's nn.Conv (lax.conv; vmapped: grouped)",
    )
    parser.add_argument("--no-compile", action="store_true", help="regfn and the ensemble eager (a smoke test)")
    parser.add_argument("--repeats", type=int, default=1, help="time everything this many times per K")
    parser.add_argument(
        "--key-impl", default="threefry2x32", choices=["threefry2x32", "philox4x32"], help="regfn's keys (masks)"
    )
    parser.add_argument(
        "--seq-configs", type=int, default=4, help="configurations of the torch loop to time (one rate after another)"
    )
    parser.add_argument("--engine", default="vmap", choices=["vmap", "sequential"], help="regfn's engine")
    parser.add_argument("--no-ensemble", action="store_true", help="skip torch's ensembling recipe")
    parser.add_argument("--chunk-size", default="auto", type=chunk_arg, help="regfn's chunk_size: auto, none or N")
    args = parser.parse_args(argv)
    if args.threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    torch.set_num_threads(args.threads)
    cpu_train, cpu_val = load_data()
    train, val = cpu_train.to(args.device), cpu_val.to(args.device)
    device = train.x.device
    model = regfn.from_module(DigitsCNN())
    compile = not args.no_compile
    check = l2_check(model, cpu_train)
    for k in (int(s) for s in args.K.split(",")):
        cfgs = configs(k)
        for repeat in range(args.repeats):
            result, regfn_compile_s = time_regfn(
                model, train, val, cfgs, args.epochs, args.threads, compile, args.key_impl, args.engine,
                chunk_size=args.chunk_size,
            )  # fmt: skip
            regfn_s = result.timings["run_s"]
            best = max(result.rows, key=lambda r: r["val_acc"])
            best_cfg = {name: best[name] for name in ("l2", "p", "seed")}
            seq_per_config = time_seq(model, train, cfgs, args.epochs, min(args.seq_configs, k))
            torch.manual_seed(0)
            net, orders = seq_setup(model, best_cfg, len(train), args.epochs, args.key_impl, device=device)
            seq_best_acc = accuracy(seq_train(net, best_cfg, train, orders), val)
            seq_s = seq_per_config * k
            ensemble_s, ensemble_first_s = (
                (None, None) if args.no_ensemble else time_ensemble(train, k, args.epochs, compile)
            )
            jax = None if args.no_jax else time_jax(train, val, cfgs, args.epochs, args.jax_conv)
            jax_s = None if jax is None else jax[0]

            def ratio(a, b):
                return None if a is None or b is None else round(a / b, 3)

            row = {
                "K": k,
                "epochs": args.epochs,
                "key_impl": args.key_impl,
                "engine": result.engine,
                "device": f"cpu ({torch.get_num_threads()} threads)"
                if device.type == "cpu"
                else torch.cuda.get_device_name(device),
                "regfn_s": round(regfn_s, 3),
                "seq_s": round(seq_s, 3),
                "ensemble_s": None if ensemble_s is None else round(ensemble_s, 3),
                "jax_s": None if jax_s is None else round(jax_s, 3),
                "seq_vs_regfn": ratio(seq_s, regfn_s),
                "regfn_vs_ensemble": ratio(regfn_s, ensemble_s),
                "regfn_vs_jax": ratio(regfn_s, jax_s),
                "regfn_compile_s": round(regfn_compile_s, 2),
                "regfn_second_call_compile_s": round(result.timings["compile_s"], 2),  # not in regfn_s
                "regfn_compiled": result.settings["compile"],
                "regfn_chunk_size": result.settings["chunk_size"],
                "ensemble_first_epoch_s": None if ensemble_first_s is None else round(ensemble_first_s, 2),
                "jax_compile_s": None if jax is None else round(jax[1] - jax_s, 2),
                "seq_per_config_s": round(seq_per_config, 4),
                "best": best_cfg,
                "regfn_best_val_acc": round(best["val_acc"], 4),
                "seq_same_config_val_acc": round(seq_best_acc, 4),
                "jax_best_val_acc": None if jax is None else round(jax[2], 4),
                "jax_conv": None if jax is None else args.jax_conv,
                "diverged": len(result.diverged),
                "l2_check_max_abs_diff": check,
                "repeat": repeat,
                "torch": torch.__version__,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
