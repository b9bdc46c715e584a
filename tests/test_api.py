"""The public API: names exist, imports have no side effects, the README's example runs."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

PUBLIC = {
    "regfn": [
        "Loss",
        "Model",
        "SweepResult",
        "TrainResult",
        "dropout",
        "elastic_net",
        "from_module",
        "functionalize",
        "grid",
        "l1",
        "l2",
        "mc_dropout",
        "mlp",
        "norm",
        "penalize",
        "penalty_value",
        "sweep",
        "train",
        "weights_only",
        "data",
        "losses",
        "nn",
        "optim",
        "penalties",
        "random",
        "search",
    ],
    "regfn.sklearn": ["NeuralNetClassifier", "NeuralNetRegressor", "GridSearchCV", "RandomizedSearchCV"],
    "regfn.search": [
        "Space",
        "Uniform",
        "LogUniform",
        "Choice",
        "RandInt",
        "uniform",
        "loguniform",
        "choice",
        "randint",
        "sample",
        "sobol_seed",
        "optuna_sweep",
    ],
    "regfn.random": [
        "key",
        "split",
        "fold_in",
        "bits",
        "uniform",
        "bernoulli",
        "normal",
        "permutation",
        "threefry2x32",
        "philox4x32",
        "key_impl",
        "check_impl",
        "IMPLS",
    ],
    "regfn.nn": [
        "dropout",
        "mlp",
        "mlp_init",
        "mlp_apply",
        "functionalize",
        "mc_dropout",
        "numpy_dropout",
        "flax_dropout_key",
        "params_from_module",
        "small_cnn",
        "Model",
        "MLPSettings",
    ],
    "regfn.penalties": ["l1", "l2", "norm", "elastic_net", "penalize", "penalty_value", "weights_only"],
    "regfn.optim": [
        "Transform",
        "chain",
        "masked",
        "apply_updates",
        "sgd",
        "adam",
        "adamw",
        "rmsprop",
        "adagrad",
        "add_l2",
        "add_decayed_weights",
        "prox_l1",
        "max_norm",
        "clip_by_global_norm",
        "trace",
        "scale_by_adam",
        "scale_by_rms",
        "scale_by_adagrad",
        "scale",
        "scale_by_learning_rate",
        "step",
        "step_",
    ],
    "regfn.losses": ["Loss", "LOSSES", "get_loss"],
    "regfn.cli": ["main", "build_parser", "parse_values", "parse_seeds", "parse_hidden"],
    "regfn.data": [
        "Dataset",
        "load_csv",
        "quadrants",
        "sparse_regression",
        "standardize",
        "train_val_split",
        "batches",
        "digits",
    ],
}


def test_functions_do_not_shadow_modules():
    import importlib

    import regfn

    assert callable(regfn.sweep)
    assert callable(regfn.train)
    for gone in ("regfn.sweep", "regfn.train"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(gone)
    # Every "regfn.x.Y" an error message names resolves.
    assert regfn.losses.Loss is regfn.Loss


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_exist_and_are_exported(module):
    mod = __import__(module, fromlist=["_"])
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name} is missing"
        assert name in mod.__all__, f"{module}.__all__ lacks {name!r}"


def test_import_has_no_side_effects():
    code = (
        "import torch; state = torch.random.get_rng_state().clone(); threads = torch.get_num_threads();"
        "import regfn;"
        "assert torch.equal(state, torch.random.get_rng_state()); assert threads == torch.get_num_threads();"
        "import sys; assert 'matplotlib' not in sys.modules and 'jax' not in sys.modules and 'triton' not in sys.modules and 'sklearn' not in sys.modules;"
        "assert 'optuna' not in sys.modules and 'tensorboard' not in sys.modules and 'mlflow' not in sys.modules;"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's one example, at 3 epochs (as written, tests/test_readme_accuracy.py; the pages', tests/test_docs.py)."""
    text = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "epochs=300" in block
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.replace("epochs=300", "epochs=3"), "README.md[example]", "exec"), namespace)
    assert len(namespace["result"]) == 48
    assert set(namespace["grads"]) == set(namespace["params"])
