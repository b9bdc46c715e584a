"""regfn._malloc: after one CPU sweep or training run starts, blocks of a few MiB come from glibc's heap.

glibc's state is per process, so each case runs in a fresh interpreter and counts the mapped blocks
(``mallinfo2().hblks``) one allocation adds: 1 where it got pages of its own, 0 where the heap served it
(the probe keeps its blocks: freeing a mapped one would raise the threshold itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_PROBE = r"""
import ctypes, torch
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
kept = []  # never freed: freeing a mapped block would itself raise the threshold
def mapped(nbytes):
    before = libc.mallinfo2().hblks
    kept.append(torch.empty(nbytes, dtype=torch.uint8))
    return libc.mallinfo2().hblks - before
sizes = (4 << 20, 20 << 20)
print(*[mapped(n) for n in sizes])
{action}
print(*[mapped(n) for n in sizes], mapped(48 << 20))
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


needs_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)"
)


def run_probe(action: str) -> list[list[int]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(action=action)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return [[int(v) for v in line.split()] for line in out.stdout.strip().splitlines()[-2:]]


@needs_glibc
def test_blocks_of_a_few_mib_come_from_the_heap_after_the_warm_up():
    before, after = run_probe("import regfn._malloc as m; m.heap_for_step_buffers(); m.heap_for_step_buffers()")
    assert before == [1, 1]  # a fresh process maps them (else this check could not tell anything)
    assert after == [0, 0, 1]  # the heap serves them now; above the 32 MiB ceiling, still mapped


_DATA = "import regfn; d = regfn.data.quadrants(regfn.random.key(0), 40); "
RUNS = {
    "sweep": _DATA + "regfn.sweep(regfn.mlp((2, 3, 1), output='logits'), d, regfn.grid(l2=[0.0]), epochs=1, "
    "quiet=True, compile=False)",
    "train": _DATA + "regfn.train(regfn.mlp((2, 3, 1), output='logits'), d, optimizer=regfn.optim.sgd(0.1), "
    "key=regfn.random.key(0), loss='bce_logits', epochs=1)",
}


@needs_glibc
@pytest.mark.parametrize("run", sorted(RUNS))
def test_cpu_training_warms_the_allocator_up(run):
    before, after = run_probe(RUNS[run])
    assert before == [1, 1]
    assert after[:2] == [0, 0]


@needs_glibc
def test_without_the_warm_up_nothing_changes():
    before, after = run_probe("pass")
    assert before == after[:2] == [1, 1]
    # the sweep itself frees no mapped block: the warm-up is what counts
    before, after = run_probe("import regfn._malloc as m; m._DONE = True; " + RUNS["sweep"])
    assert before == after[:2] == [1, 1]
