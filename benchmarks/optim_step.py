"""Time one optimizer step: regfn.optim (eager and compiled) vs torch.optim.

For each model (the tutorial's 8-6-4-1 MLP and a 784-1024-1024-10 MLP) and
each optimizer (SGD with momentum, Adam, AdamW, RMSprop, Adagrad) the step is timed, gradients given:

* ``torch_single``: ``torch.optim`` with ``foreach=False`` (the single-tensor
  path regfn must not be slower than), ``opt.step()`` in place;
* ``torch_foreach``: ``torch.optim`` with ``foreach=True``, for reference;
* ``regfn_eager``: ``opt.update`` + ``apply_updates`` (new tensors each step);
* ``regfn_step``: ``optim.step`` (pure, the learning rate fused into the update);
* ``regfn_inplace``: ``optim.step_`` (params and state overwritten, like torch);
* ``regfn_compiled``: ``update`` + ``apply_updates`` under ``torch.compile(fullgraph=True)``.

Each variant runs ``--repeats`` interleaved rounds; the reported time per step
is the best round (least disturbed by other load). One JSON line per case,
with ``eager_ratio = regfn_eager / torch_single``, ``step_ratio``,
``inplace_ratio`` and ``compiled_ratio`` likewise (below 1: regfn faster).

Usage::

    python benchmarks/optim_step.py [--repeats 7] [--threads N] [--device cpu]
                                    [--models 8-6-4-1,...] [--cases adam,...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from regfn import optim

MODELS = {"8-6-4-1": (8, 6, 4, 1), "784-1024-1024-10": (784, 1024, 1024, 10)}
CASES = {
    "sgd_momentum": (
        lambda: optim.sgd(lr=0.01, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=False),
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=True),
    ),
    "adam": (
        lambda: optim.adam(lr=1e-3),
        lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False),
        lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
    ),
    "adamw": (
        lambda: optim.adamw(lr=1e-3, weight_decay=1e-2),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, foreach=False),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, foreach=True),
    ),
    "rmsprop": (
        lambda: optim.rmsprop(lr=1e-3),
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, foreach=False),
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, foreach=True),
    ),
    "adagrad": (
        lambda: optim.adagrad(lr=1e-2),
        lambda ps: torch.optim.Adagrad(ps, lr=1e-2, foreach=False),
        lambda ps: torch.optim.Adagrad(ps, lr=1e-2, foreach=True),
    ),
}


def make_params(sizes, device):
    gen = torch.Generator().manual_seed(0)
    params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        params[f"fc{i + 1}.weight"] = (torch.randn(fan_out, fan_in, generator=gen) / fan_in**0.5).to(device)
        params[f"fc{i + 1}.bias"] = torch.zeros(fan_out).to(device)
    grads = {k: (1e-2 * torch.randn(v.shape, generator=gen)).to(device) for k, v in params.items()}
    return params, grads


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_loop(fn, iters, device):
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def bench(model, case, device, repeats):
    params, grads = make_params(MODELS[model], device)
    n_params = sum(p.numel() for p in params.values())
    iters = 1000 if n_params < 10_000 else 30
    make_regfn, make_single, make_foreach = CASES[case]

    variants = {}
    for name, make in (("torch_single", make_single), ("torch_foreach", make_foreach)):
        tparams = [torch.nn.Parameter(p.clone()) for p in params.values()]
        for p, g in zip(tparams, grads.values(), strict=True):
            p.grad = g.clone()
        topt = make(tparams)
        variants[name] = topt.step

    opt = make_regfn()

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s

    torch.compiler.reset()  # a fresh compile per case (one step function, many optimizers)
    compiled = torch.compile(step, fullgraph=True)
    for name, fn in (("regfn_eager", step), ("regfn_compiled", compiled)):
        box = [dict(params), opt.init(params)]

        def run(fn=fn, box=box):
            box[0], box[1] = fn(box[0], box[1], grads)

        variants[name] = run

    pure_box = [dict(params), opt.init(params)]

    def run_step(box=pure_box):
        box[0], box[1] = optim.step(opt, box[0], grads, box[1])

    inplace_params = {k: p.clone() for k, p in params.items()}
    inplace_box = [opt.init(inplace_params)]

    def run_step_(box=inplace_box):
        box[0] = optim.step_(opt, inplace_params, grads, box[0])

    variants["regfn_step"], variants["regfn_inplace"] = run_step, run_step_

    for fn in variants.values():  # warm-up (and compilation)
        for _ in range(3):
            fn()
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            best[name] = min(best[name], time_loop(fn, iters, device))
    us = {f"{name}_us": round(t * 1e6, 1) for name, t in best.items()}
    return {
        "case": case,
        "model": model,
        "n_params": n_params,
        "device": str(device),
        "threads": torch.get_num_threads(),
        **us,
        "eager_ratio": round(best["regfn_eager"] / best["torch_single"], 3),
        "step_ratio": round(best["regfn_step"] / best["torch_single"], 3),
        "inplace_ratio": round(best["regfn_inplace"] / best["torch_single"], 3),
        "compiled_ratio": round(best["regfn_compiled"] / best["torch_single"], 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    args = parser.parse_args()
    models, cases = args.models.split(","), args.cases.split(",")
    for name, chosen, known in (("--models", models, MODELS), ("--cases", cases, CASES)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"{name}: unknown {unknown}; choose from {list(known)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(json.dumps({"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}))
    for model in models:
        for case in cases:
            print(json.dumps(bench(model, case, device, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
