"""The documentation: the README stays short, the site builds, every public name has a
reference entry, the pages' code runs, and the figures come from docs/make_figures.py.

The site is built once per run (``mkdocs build --strict`` into a temporary folder, a few
seconds); its ``objects.inv`` is the list of reference entries.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys
import zlib

import pytest

import regfn

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
PAGES = sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts)
NOT_RUN = re.compile(r"<!-- not run: [^>]+ -->\n+$")

# The pages' examples at test size: fewer epochs, trials and loop steps (the settings
# as written run in tests/test_readme_accuracy.py, slow).
SHRINK = [
    (re.compile(r"epochs=\d+"), "epochs=3"),
    (re.compile(r"range\(100\)"), "range(3)"),
    (re.compile(r"study,\n(\s+)64,\n(\s+)batch=16"), r"study,\n\g<1>4,\n\g<2>batch=2"),
    (re.compile(r"checkpoint_every=\d+"), "checkpoint_every=1"),
    (re.compile(r"min_epochs=\d+"), "min_epochs=1"),
]


def python_blocks(text: str) -> list[str]:
    """The text's ```python / ```py blocks, in order, but those a ``<!-- not run: why -->`` comment precedes."""
    blocks = []
    for match in re.finditer(r"```(?:python|py)\n(.*?)```", text, flags=re.S):
        if not NOT_RUN.search(text[: match.start()]):
            blocks.append(match.group(1))
    return blocks


def public_modules() -> list[str]:
    """regfn and every module under it whose dotted name has no private part."""
    found = [
        info.name
        for info in pkgutil.walk_packages(regfn.__path__, "regfn.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return ["regfn", *sorted(found)]


# The README: at most 200 lines, the parts, links that resolve.


def test_readme_is_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_readme_has_its_parts_and_the_two_commands():
    for heading in ("## Install", "## The main job", "## In Python", "## Tests", "## Documentation"):
        assert heading in README, heading
    assert 'pip install "torch==2.13.0" ".[plot,progress]" && regfn sweep --out regfn-out' in README
    assert 'pip install "torch==2.13.0" -e ".[test,docs]" && python -m pytest -q -n auto' in README
    (example,) = python_blocks(README)
    assert len(example.strip().splitlines()) <= 20


def test_readme_links_resolve_and_list_every_guide():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    for link in local:
        assert (ROOT / link).exists(), link
    for page in (DOCS / "guides").glob("*.md"):
        assert f"docs/guides/{page.name}" in local, f"the README's table does not link {page.name}"


def test_no_stale_architecture_statements():
    texts = [README, (ROOT / "CONTRIBUTING.md").read_text(), *(p.read_text() for p in PAGES)]
    for text in texts:
        assert "DESIGN.md" not in text
        assert not re.search(r"implements? `?run`?\b", text)
    assert not (ROOT / "BENCHMARKS.md").exists()  # moved into docs/benchmarks/


# The site and its reference.


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> dict[str, str]:
    """``mkdocs build --strict`` into a temporary folder; the reference entries of its objects.inv, name -> role."""
    pytest.importorskip("mkdocs", reason='the site needs the docs extra: pip install -e ".[docs]"')
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    data = (site / "objects.inv").read_bytes()
    start = 0
    for _ in range(4):  # the inventory's four header lines
        start = data.index(b"\n", start) + 1
    entries = {}
    for line in zlib.decompress(data[start:]).decode().splitlines():
        name, role = line.split(" ")[:2]
        entries.setdefault(name, role)
    return entries


def test_every_public_name_has_a_reference_entry(inventory):
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if module_name not in inventory:
            missing.append(f"{module_name} (add docs/reference/<name>.md with '::: {module_name}', and a nav entry)")
        for name in getattr(module, "__all__", ()):
            if f"{module_name}.{name}" not in inventory:
                missing.append(f"{module_name}.{name} (is it documented? constants need a docstring)")
    assert not missing, missing


def test_the_reference_check_sees_what_is_missing(inventory):
    """The check above reads real entries: the reference's names, and none that does not exist."""
    assert inventory["regfn.sweep"] == "py:function"
    assert inventory["regfn.random.key"] == "py:function"
    assert inventory["regfn.SweepResult"] == "py:class"
    assert "regfn.no_such_name" not in inventory


def test_every_reference_page_is_one_public_module():
    pages = {p.read_text().strip() for p in (DOCS / "reference").glob("*.md")}
    assert pages == {f"::: {name}" for name in public_modules()}


# The pages' code.


@pytest.fixture(scope="module")
def tour() -> dict:
    """The tutorial's tour, run once at test size: the guides' examples start from its names."""
    namespace: dict = {}
    (block, *_) = python_blocks((DOCS / "tutorial.md").read_text())
    exec(compile(_shrink(block), "docs/tutorial.md[tour]", "exec"), namespace)
    return namespace


def _shrink(block: str) -> str:
    for pattern, replacement in SHRINK:
        block = pattern.sub(replacement, block)
    return block


NEEDS = {"integrations.md": "sklearn", "search.md": "optuna"}
GUIDES_WITH_CODE = [p for p in PAGES if p.name != "tutorial.md" and python_blocks(p.read_text())]


def test_the_tutorials_tour_runs(tour):
    assert not tour["run"].diverged
    assert len(tour["params"]) == 6  # fc1..fc3, weights and biases


@pytest.mark.parametrize("page", GUIDES_WITH_CODE, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_pages_python_blocks_run(page, tour, tmp_path, monkeypatch):
    """Each page's blocks run in order, from the tour's names (and the Sweeps page's `configs`)."""
    if page.name in NEEDS:
        pytest.importorskip(NEEDS[page.name])
    monkeypatch.chdir(tmp_path)  # the examples write results.csv, figures/, checkpoints
    namespace = dict(tour)
    sweeps = DOCS / "guides" / "sweeps.md"
    if page != sweeps:
        (block, *_) = python_blocks(sweeps.read_text())
        exec(compile(_shrink(block), "docs/guides/sweeps.md[configs]", "exec"), namespace)  # configs, results.json
    for i, block in enumerate(python_blocks(page.read_text())):
        exec(compile(_shrink(block), f"{page.relative_to(ROOT)}[python block {i}]", "exec"), namespace)
    if page == sweeps:  # its example writes the table and the figures
        assert len(namespace["result"]) == 48
        assert (tmp_path / "results.csv").exists()
        assert any((tmp_path / "figures").glob("*.png"))


def test_every_page_with_code_is_run_or_says_why():
    """A block is run above unless a comment says why not; only pages that need a GPU or torchrun say so."""
    skipped = [p.name for p in PAGES if re.search(r"<!-- not run: ", p.read_text())]
    assert skipped == ["distributed.md"], skipped


# The figures.


def test_make_figures_draws_every_figure_the_site_shows(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(DOCS))
    try:
        import make_figures
    finally:
        sys.path.remove(str(DOCS))
    written = make_figures.make_figures(tmp_path, quick=True)
    assert all(path.exists() and path.stat().st_size > 0 for path in written)
    shown = set()
    for page in PAGES:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            shown.add((page.parent / image).resolve().relative_to(DOCS / "figures").as_posix())
    assert shown, "no figure found on the site"
    assert shown <= set(make_figures.FIGURES), shown - set(make_figures.FIGURES)
    for name in make_figures.FIGURES:
        assert (DOCS / "figures" / name).exists(), f"docs/figures/{name}: run python docs/make_figures.py"
