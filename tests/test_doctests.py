"""Every docstring example in the regfn package runs (issue #12).

One test per module, found by walking the package, public and private modules
alike, so a new module's examples run without being listed here.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import regfn

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules the walk leaves out, and why: __main__ runs the CLI when imported;
# _triton_mlp imports triton at import time, so it runs only where triton is
# installed; plot's examples draw a figure and need matplotlib; the Optuna
# adapter's examples run a study; digits loads scikit-learn's bundled data set.
SKIP = {"regfn.__main__"}
NEEDS = {
    "regfn._sweep._triton_mlp": "triton",
    "regfn.plot": "matplotlib",
    "regfn.plot._all": "matplotlib",
    "regfn.plot._runs": "matplotlib",
    "regfn.plot._sweeps": "matplotlib",
    "regfn.search._optuna": "optuna",
    "regfn.data._digits": "sklearn",
    "regfn.sklearn": "sklearn",
    "regfn.sklearn._estimators": "sklearn",
    "regfn.sklearn._search": "sklearn",
    "regfn.sklearn._scoring": "sklearn",
    "regfn.tracking._tensorboard": "tensorboard",
    "regfn.tracking._mlflow": "mlflow",
}

# Modules that promise examples (every public module, and the private ones
# behind them): the test fails if it finds none there, so it cannot pass by
# finding nothing.
MUST_HAVE_EXAMPLES = {
    "regfn.random",
    "regfn.nn",
    "regfn.nn._dropout",
    "regfn.nn._mlp",
    "regfn.nn._module",
    "regfn.nn._zoo",
    "regfn.penalties",
    "regfn.optim",
    "regfn.optim._alias",
    "regfn.optim._step",
    "regfn.data",
    "regfn.data._csv",
    "regfn.data._dataset",
    "regfn.data._split",
    "regfn.data._synthetic",
    "regfn.data._digits",
    "regfn.losses",
    "regfn.results",
    "regfn.cli",
    "regfn.cli._values",
    "regfn.plot",
    "regfn.search",
    "regfn.search._space",
    "regfn.search._sample",
    "regfn.search._optuna",
    "regfn._sweep._driver",
    "regfn._train",
    "regfn.sklearn._estimators",
    "regfn.sklearn._search",
    "regfn.sklearn._scoring",
}


def _modules() -> list[str]:
    names = [regfn.__name__]
    names += [info.name for info in pkgutil.walk_packages(regfn.__path__, prefix=regfn.__name__ + ".")]
    return sorted(name for name in names if name not in SKIP)


MODULES = _modules()


def test_walk_finds_the_modules_that_promise_examples():
    assert set(MODULES) | set(NEEDS) >= MUST_HAVE_EXAMPLES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    needs = NEEDS.get(name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{name}'s examples need {needs}")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    # A module re-exports names from its submodules; the finder only reads
    # objects defined in the module itself, so each example runs once.
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} promises docstring examples but has none"
