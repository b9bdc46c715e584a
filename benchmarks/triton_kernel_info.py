"""Compile the Triton sweep kernel for a GPU architecture, without a GPU, and report its resources.

For each MLP size and tile (rows per tile x warps) this compiles
``regfn._triton_mlp``'s kernel ahead of time for ``sm_<arch>`` (Triton's own
LLVM and ptxas; no device needed), then asks ptxas for registers per thread and
spill traffic. One JSON line per case. It checks that the kernel compiles for
the target and how many programs fit on one SM; it does not time anything.

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

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from regfn import _triton_mlp as kernels  # noqa: E402

POINTERS = {"x_ptr": "*fp32", "y_ptr": "*fp32", "theta_ptr": "*fp32", "buf_ptr": "*fp32", "hp_ptr": "*fp32",
            "key_ptr": "*i32", "out_ptr": "*fp32"}  # fmt: skip
SCALARS = {"epoch0": "i32", "n_epochs": "i32", "n_rows": "i32"}


def compile_case(sizes: tuple[int, ...], rows: int, warps: int, arch: int) -> dict:
    widths = sizes[:-1]
    fn = kernels.kernel(len(widths) - 1)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    constants = {f"S{i}": w for i, w in enumerate(widths)}
    constants.update({f"P{i}": kernels.padded(w) for i, w in enumerate(widths)})
    constants.update(N_PARAMS=n_params, N_HP=len(kernels.HP_COLUMNS), MSE=False, USE_L1=False, USE_L2=True,
                     USE_NORM=False, BLOCK_R=rows)  # fmt: skip
    signature = {**POINTERS, **SCALARS, **{name: "constexpr" for name in constants}}
    source = ASTSource(fn=fn, signature=signature, constexprs={(fn.arg_names.index(n),): v for n, v in constants.items()})
    t = time.perf_counter()
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
    seconds = time.perf_counter() - t
    return {"sizes": "-".join(map(str, sizes)), "tile": f"{rows}x{warps}", "arch": f"sm_{arch}",
            "compile_s": round(seconds, 2), **ptxas_report(compiled.asm["ptx"], arch)}  # fmt: skip


def ptxas_report(ptx: str, arch: int) -> dict:
    """Registers per thread and spill bytes, from ``ptxas -v`` on the kernel's PTX."""
    from triton.backends.nvidia.compiler import get_ptxas

    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        cmd = [get_ptxas(arch).path, "-v", f"--gpu-name=sm_{arch}{suffix}", path, "-o", os.path.join(tmp, "k.cubin")]
        text = subprocess.run(cmd, capture_output=True, text=True).stderr
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    return {
        "registers": int(regs.group(1)) if regs else None,
        "spill_store_bytes": int(spills.group(1)) if spills else None,
        "spill_load_bytes": int(spills.group(2)) if spills else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for H100/H200")
    parser.add_argument("--sizes", default="8-6-4-1", help="comma-separated MLP sizes, e.g. 8-6-4-1,8-5-1")
    parser.add_argument("--tiles", default="auto", help="ROWSxWARPS, comma-separated (auto: the engine's choice)")
    args = parser.parse_args()
    for text in args.sizes.split(","):
        sizes = tuple(int(v) for v in text.split("-"))
        for tile in args.tiles.split(","):
            if tile == "auto":
                rows, warps = kernels.auto_block_rows(sizes), kernels.NUM_WARPS
            else:
                rows, warps = (int(v) for v in tile.split("x"))
            print(json.dumps(compile_case(sizes, rows, warps, args.arch)), flush=True)


if __name__ == "__main__":
    main()
