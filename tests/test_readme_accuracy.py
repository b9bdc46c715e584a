"""Every documented example on the quadrant data, as written, reaches 0.95 validation accuracy.

The examples are read from the README and the documentation pages themselves
(docs/: their Python blocks and their ``regfn sweep`` / ``regfn train``
command lines), so an edit there is what runs here: the README's example, the
tutorial's tour (its hand-written loop and ``regfn.train``), the sweep,
the sampled search, Optuna, cross-validation and successive halving, and the
commands that run on the quadrant data (not those that need a CSV, the
digits, CUDA or torchrun). Only output paths change (a temporary folder); the
settings are the README's. A sweep's measure is its best row; the commands'
is read from their ``results.csv`` (``regfn train`` prints it).
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import shlex

import pytest

import regfn
from regfn.cli import main

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").rglob("*.md"))
GOOD = 0.95
SWEEPS = "docs/guides/sweeps.md"
SEARCH = "docs/guides/search.md"


def _python_block(page: str, section: str, contains: str = "") -> str:
    """The first Python block of ``page`` after the heading ``section`` (that contains ``contains``)."""
    text = (ROOT / page).read_text()
    text = text[text.index(section) :]
    for block in re.findall(r"```(?:python|py)\n(.*?)```", text, flags=re.S):
        if contains in block:
            return block
    raise AssertionError(f"{page}: no Python block under {section!r} containing {contains!r}")


def _quadrant_commands() -> list[str]:
    """The README's and the pages' ``regfn sweep`` / ``regfn train`` lines that run on the quadrant data."""
    out = []
    texts = [README, *(page.read_text() for page in DOCS)]
    for block in (b for text in texts for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].split("&&")[-1].strip()
            if not re.match(r"regfn (sweep|train)\b", line):
                continue
            if any(flag in line for flag in ("--csv", "--data", "--device", "--help")):
                continue
            out.append(line)
    return sorted(set(out))


COMMANDS = _quadrant_commands()


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The tour's namespace (data, model, the loop's params, ``run``), run once."""
    namespace: dict = {}
    exec(
        compile(_python_block("docs/tutorial.md", "## A tour of the API"), "docs/tutorial.md[tour]", "exec"), namespace
    )
    return namespace


def _run(block: str, tour: dict, tmp_path: pathlib.Path, monkeypatch, name: str) -> dict:
    monkeypatch.chdir(tmp_path)  # the examples write results.csv, figures/
    namespace = dict(tour)
    sweeps = _python_block(SWEEPS, "# Sweeps")
    exec(compile(sweeps.split("result = ")[0], f"{SWEEPS}[configs]", "exec"), namespace)  # the grid `configs`
    exec(compile(block, f"{name}", "exec"), namespace)
    return namespace


def _best(result: regfn.SweepResult) -> float:
    return max(row["val_acc"] for row in result.rows)


def test_the_tour_loop_and_train(tour):
    model, params, val = tour["model"], tour["params"], tour["val"]
    out = model.apply(params, val.x, train=False)
    loop_acc = float(((out > 0).float() == val.y).float().mean())
    assert loop_acc >= GOOD
    assert tour["run"].val_metrics["acc"] >= GOOD


def test_the_readme_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    exec(compile(block, "README.md[example]", "exec"), namespace)
    assert _best(namespace["result"]) >= GOOD


@pytest.mark.parametrize(
    ("page", "section", "contains", "result"),
    [
        (SWEEPS, "# Sweeps", "", "result"),
        (SEARCH, "## Sampling a space", "sample(", "searched"),
        (SEARCH, "## Cross-validation", "cv=5", "result"),
        (SEARCH, "## Schedules", "successive_halving", "sh"),
    ],
    ids=["sweep", "search", "cross-validation", "successive-halving"],
)
def test_the_sweep_examples(tour, tmp_path, monkeypatch, page, section, contains, result):
    block = _python_block(page, section, contains)
    namespace = _run(block, tour, tmp_path, monkeypatch, f"{page}[{section}]")
    assert _best(namespace[result]) >= GOOD


def test_the_optuna_example(tour, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    search = _python_block(SEARCH, "## Sampling a space", "sample(")
    block = search + _python_block(SEARCH, "## Sampling a space", "optuna_sweep")  # it uses the search block's imports
    namespace = _run(block, tour, tmp_path, monkeypatch, "optuna")
    assert max(_best(r) for r in namespace["results"]) >= GOOD


def test_the_readme_lists_the_quadrant_commands():
    assert "regfn sweep --out regfn-out" in COMMANDS  # the quick start
    assert any(c.startswith("regfn train") for c in COMMANDS)
    assert any("--cv" in c for c in COMMANDS)
    assert any("--search" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_commands(command, tmp_path):
    argv = shlex.split(command)[1:]
    argv = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    if argv[0] == "train":
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(argv) == 0
        accuracy = float(re.search(r"validation accuracy ([\d.]+)", printed.getvalue()).group(1))
    else:
        assert main([*argv, "--quiet", "--no-plots", "--out", str(tmp_path)]) == 0
        lines = (tmp_path / "results.csv").read_text().splitlines()
        column = lines[0].split(",").index("val_acc")
        accuracy = max(float(line.split(",")[column]) for line in lines[1:])
    assert accuracy >= GOOD, command
