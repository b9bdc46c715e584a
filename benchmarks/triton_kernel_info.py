"""Compile the Triton sweep kernel for a GPU architecture, without a GPU, and report its resources.

For each MLP size and tile (rows per tile x warps) this compiles
``regfn._sweep._triton_mlp``'s kernel ahead of time for ``sm_<arch>`` (Triton's own
LLVM and ptxas; no device needed) and reports, from the cubin (``cuobjdump``),
its registers per thread and stack bytes (where register spills go). One JSON
line per case. It checks that the kernel compiles for the target and how many
programs fit on one SM; it does not time anything.

    python benchmarks/triton_kernel_info.py --arch 90 --sizes 8-6-4-1,8-5-1 --tiles 32x2,64x4,128x4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time

os.environ["TRITON_INTERPRET"] = "0"  # compile for real, even where tests run kernels in the interpreter
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default (fused multiply-adds), stated

import itertools

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from regfn._sweep import _triton_mlp as kernels
from regfn._sweep._triton import HP_COLUMNS

POINTERS = {"x_ptr": "*fp32", "y_ptr": "*fp32", "theta_ptr": "*fp32", "buf_ptr": "*fp32", "hp_ptr": "*fp32",
            "key_ptr": "*i32", "order_ptr": "*i32", "bias_ptr": "*fp32", "out_ptr": "*fp32"}  # fmt: skip
SCALARS = {"epoch0": "i32", "n_epochs": "i32", "n_batches": "i32", "batch_rows": "i32"}


def compile_case(
    sizes: tuple[int, ...],
    rows: int,
    warps: int,
    arch: int,
    shuffled: bool = False,
    optimizer: str = "sgd",
    key_impl: str = "threefry2x32",
) -> dict:
    widths = sizes[:-1]
    fn = kernels.kernel(len(widths) - 1, shuffled, optimizer)
    n_params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    constants = {f"S{i}": w for i, w in enumerate(widths)}
    constants.update({f"P{i}": kernels.padded(w) for i, w in enumerate(widths)})
    constants.update(N_PARAMS=n_params, N_HP=len(HP_COLUMNS), MSE=False, DECOUPLED=False, USE_L1=False,
                     USE_L2=True, USE_NORM=False, BLOCK_R=rows, PHILOX=key_impl == "philox4x32")  # fmt: skip
    signature = {**POINTERS, **SCALARS, **dict.fromkeys(constants, "constexpr")}
    source = _ast_source(fn, signature, constants)
    t = time.perf_counter()
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
    seconds = time.perf_counter() - t
    return {"sizes": "-".join(map(str, sizes)), "tile": f"{rows}x{warps}", "arch": f"sm_{arch}", "mini_batches": shuffled,
            "optimizer": optimizer, "key_impl": key_impl,
            "compile_s": round(seconds, 2), "triton": triton.__version__, **resources(compiled.asm["cubin"])}  # fmt: skip


def _ast_source(fn, signature: dict, constants: dict) -> ASTSource:
    """Triton >= 3.3 takes ``constexprs`` keyed by argument paths; older ones ``constants`` by name."""
    try:
        return ASTSource(
            fn=fn, signature=signature, constexprs={(fn.arg_names.index(n),): v for n, v in constants.items()}
        )
    except TypeError:
        plain = {n: t for n, t in signature.items() if t != "constexpr"}
        return ASTSource(fn=fn, signature=plain, constants=constants)


def _cuobjdump() -> str:
    from triton.backends.nvidia import compiler as nvidia

    bundled = os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump")
    return bundled if os.path.exists(bundled) else "cuobjdump"


def resources(cubin: bytes) -> dict:
    """Registers per thread and local (spill) memory of the compiled kernel, from ``cuobjdump``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        text = subprocess.run([_cuobjdump(), "--dump-resource-usage", path], capture_output=True, text=True).stdout
    usage = dict(re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", text))
    return {"registers": int(usage["REG"]), "local_bytes": int(usage["LOCAL"]), "stack_bytes": int(usage["STACK"]),
            "shared_bytes": int(usage["SHARED"])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for H100/H200")
    parser.add_argument("--sizes", default="8-6-4-1", help="comma-separated MLP sizes, e.g. 8-6-4-1,8-5-1")
    parser.add_argument("--tiles", default="auto", help="ROWSxWARPS, comma-separated (auto: the engine's choice)")
    parser.add_argument("--mini-batches", action="store_true", help="the kernel that gathers shuffled mini-batches")
    parser.add_argument(
        "--optimizer",
        default="sgd",
        choices=["sgd", "adam", "rmsprop", "adagrad"],
        help="the kernel's update (adam: Adam and AdamW)",
    )
    parser.add_argument(
        "--key-impl", default="threefry2x32", choices=["threefry2x32", "philox4x32"], help="the dropout keys' kind"
    )
    args = parser.parse_args()
    for text in args.sizes.split(","):
        sizes = tuple(int(v) for v in text.split("-"))
        for tile in args.tiles.split(","):
            if tile == "auto":
                rows, warps = kernels.auto_block_rows(sizes), kernels.NUM_WARPS
            else:
                rows, warps = (int(v) for v in tile.split("x"))
            case = compile_case(sizes, rows, warps, args.arch, args.mini_batches, args.optimizer, args.key_impl)
            print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
