"""A cheaper cold compile: the dtype-rule singleton set up once (the same rules, the original restored after), the
small instruction probes answered (the same choice of instructions), and the CPU steps' compile options (the same
bits, the user's vector-instruction setting respected)."""

from __future__ import annotations

import contextlib
import importlib
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import regfn

inductor_fix = importlib.import_module("regfn._inductor")
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def handler():
    cls = inductor_fix._handler_class()
    if cls is None:
        pytest.skip("this torch has no DtypePropagationOpsHandler singleton to set up once")
    importlib.import_module("torch._inductor.compile_fx")  # what a compile has imported by then (its op rules)
    return cls


def rules(instance) -> dict:
    """The instance's rules by op name: the partial's function name and keywords."""
    return {
        name: (getattr(rule.func, "__name__", None), tuple(sorted(rule.keywords)))
        for name, rule in vars(instance).items()
        if hasattr(rule, "func")
    }


def test_the_rules_are_set_up_once_and_are_the_same_rules(handler, monkeypatch):
    before = handler.__init__
    expected = rules(handler())  # the original set-up
    calls = []
    counted = handler.__init__

    def counting(self):
        calls.append(1)
        counted(self)

    monkeypatch.setattr(handler, "__init__", counting)
    handler._instance.__dict__.pop(inductor_fix._DONE, None)
    with inductor_fix.rules_set_up_once():
        first, second = handler(), handler()
        assert first is second
        assert len(calls) == 1  # the second construction keeps the rules
        assert rules(second) == expected
    assert handler.__init__ is counting  # restored
    handler()
    assert len(calls) == 2  # outside the block, torch's own behaviour again
    monkeypatch.setattr(handler, "__init__", before)


def test_a_torch_without_the_singleton_is_left_alone(monkeypatch):
    monkeypatch.setattr(inductor_fix, "_handler_class", lambda: None)
    with inductor_fix.rules_set_up_once():
        pass


def test_step_options_skip_the_vector_probe_only_where_it_cannot_fail(monkeypatch):
    config = importlib.import_module("torch._inductor.config")
    monkeypatch.setattr(inductor_fix, "_compiler_knows_x86_flags", lambda: True)
    monkeypatch.setattr(inductor_fix.sys, "platform", "linux")
    monkeypatch.setattr(inductor_fix.platform, "machine", lambda: "x86_64")
    with config.patch({"cpp.vec_isa_ok": None}):  # inductor decides: the probe is skipped
        assert inductor_fix.cpu_step_options() == {"cpp_wrapper": True, "cpp.vec_isa_ok": True}
        monkeypatch.setattr(inductor_fix.platform, "machine", lambda: "aarch64")
        assert inductor_fix.cpu_step_options() == {"cpp_wrapper": True}
        monkeypatch.setattr(inductor_fix.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(inductor_fix, "_compiler_knows_x86_flags", lambda: False)
        assert inductor_fix.cpu_step_options() == {"cpp_wrapper": True}
        monkeypatch.setattr(inductor_fix, "_compiler_knows_x86_flags", lambda: True)
    for users in (False, True):  # TORCHINDUCTOR_VEC_ISA_OK's values: left alone
        with config.patch({"cpp.vec_isa_ok": users}):
            assert inductor_fix.cpu_step_options() == {"cpp_wrapper": True}
    with config.patch({"cpp.vec_isa_ok": None}):  # an older torch without these options gets none
        monkeypatch.setattr(inductor_fix, "_inductor_options", lambda: {"cpp.vec_isa_ok"})
        assert inductor_fix.cpu_step_options() == {"cpp.vec_isa_ok": True}


@pytest.mark.parametrize(
    ("line", "knows"),
    [
        ("g++ (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0", True),
        ("x86_64-linux-gnu-g++-10 (Debian 10.2.1-6) 10.2.1 20210110", False),
        ("c++ (GCC) 13.2.1 20231011 (Red Hat 13.2.1-4)", True),
        ("clang version 12.0.1", True),
        ("Debian clang version 11.0.1-2", False),
        ("", False),
    ],
)
def test_compiler_versions(line, knows):
    assert inductor_fix._knows_x86_flags(line + "\nCopyright (C) ...") is knows


@pytest.mark.slow
def test_a_compiled_cpu_sweep_gives_the_same_bits_with_and_without_the_step_options(monkeypatch):
    """The options change how the kernels are compiled and called, not what they compute."""
    data = regfn.data.quadrants(regfn.random.key(0), 64)
    configs = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5])
    model = regfn.mlp((2, 5, 3, 1), output="logits")  # a shape no other test compiles

    def run():
        torch._dynamo.reset()
        regfn._sweep._program._cached_program.cache_clear()
        return regfn.sweep(model, data, configs, epochs=3, compile=True, quiet=True, threads=1)

    with_options = run()
    monkeypatch.setattr(regfn._sweep._program, "cpu_step_options", lambda: {})
    without = run()
    assert with_options.rows == without.rows
    assert all(torch.equal(with_options.curves[n], without.curves[n]) for n in without.curves)


@pytest.mark.slow
def test_a_compiled_cpu_train_gives_the_same_bits_with_and_without_the_step_options(monkeypatch):
    data = regfn.data.quadrants(regfn.random.key(1), 48)
    model = regfn.mlp((2, 7, 1), output="logits")  # a shape no other test compiles
    kw = {"optimizer": regfn.optim.adam(0.01), "p": 0.25, "key": regfn.random.key(2), "epochs": 3, "compile": True}

    def run():
        torch._dynamo.reset()
        return regfn.train(model, data, **kw)

    with_options = run()
    monkeypatch.setattr(regfn._train, "cpu_step_options", lambda: {})
    without = run()
    assert all(torch.equal(with_options.params[n], without.params[n]) for n in without.params)


def test_known_probes_are_answered_without_the_compiler_and_others_still_compile(monkeypatch):
    cpu_vec_isa = pytest.importorskip("torch._inductor.cpu_vec_isa")
    known = inductor_fix._known_probe_sources(cpu_vec_isa)
    if not known:
        pytest.skip("this torch's inductor has none of the small probes")
    compiled = []

    def compiler_run(self, code):
        compiled.append(code)
        return False

    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", compiler_run)
    monkeypatch.setattr(inductor_fix, "_vector_probe_redundant", lambda respect_user=True: True)
    isa = cpu_vec_isa.VecAVX512()
    with inductor_fix.known_probes_answered():
        assert all(isa.check_build(code) for code in known)  # answered: no compiler run
        assert compiled == []
        assert isa.check_build("int main() {}") is False  # any other probe compiles as before
        assert compiled == ["int main() {}"]
    assert cpu_vec_isa.VecISA.check_build is compiler_run  # restored
    monkeypatch.setattr(inductor_fix, "_vector_probe_redundant", lambda respect_user=True: False)
    with inductor_fix.known_probes_answered():  # a compiler that may not know the flags: every probe compiles
        assert cpu_vec_isa.VecISA.check_build is compiler_run


_ISA_LIST = """
import contextlib, sys
import torch._inductor.config as config
from torch._inductor import cpu_vec_isa
from regfn._inductor import known_probes_answered
config.cpp.vec_isa_ok = True  # the base probe skipped in both runs, as a sweep's steps skip it
with known_probes_answered() if sys.argv[1] == "answered" else contextlib.nullcontext():
    isas = cpu_vec_isa.valid_vec_isa_list()
    print(repr([(str(i), i.build_arch_flags()) for i in isas]))
"""


@pytest.mark.slow
def test_answered_probes_choose_the_instructions_and_flags_the_compiler_runs_choose(tmp_path):
    """In fresh processes with empty inductor caches: the same vector instructions and compiler flags either way."""
    if not inductor_fix._vector_probe_redundant(respect_user=False):
        pytest.skip("the probes are only answered with GCC 11+ or clang 12+ on x86-64 Linux")
    script = tmp_path / "isa.py"
    script.write_text(_ISA_LIST)
    out = {}
    for how in ("answered", "compiled"):
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / how), "PYTHONPATH": str(ROOT)}
        out[how] = subprocess.run(
            [sys.executable, str(script), how], env=env, capture_output=True, text=True, check=True, timeout=300
        ).stdout
    assert out["answered"] == out["compiled"]
    assert out["compiled"].startswith("[")


def test_train_compiles_its_step_within_the_cheaper_cold_compile_on_the_first_call_only(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def spy():
        entered.append(1)
        yield

    monkeypatch.setattr(inductor_fix, "cheaper_cold_compile", spy)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # the step as it is: no compile to wait for
    data = regfn.data.quadrants(regfn.random.key(3), 32)
    kw = {"optimizer": regfn.optim.sgd(0.1), "epochs": 3, "batch_size": 8, "log_every": 1, "compile": True}
    kw["key"] = regfn.random.key(4)
    result = regfn.train(regfn.mlp((2, 3, 1)), data, **kw)
    assert len(result.history) == 3
    assert entered == [1]  # 12 steps, one context: the first call's
