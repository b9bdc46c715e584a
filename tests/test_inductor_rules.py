"""The dtype-rule singleton set up once during a sweep's compile: the same rules, the original restored after."""

from __future__ import annotations

import importlib

import pytest

inductor_fix = importlib.import_module("regfn._sweep._inductor")


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
