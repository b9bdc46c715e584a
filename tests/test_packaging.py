"""The release artifacts: build the sdist and wheel, check them, install the wheel, run it.

Slow (a build, a venv and a 5-epoch sweep: about 10 s on 2 CPU cores).
Nothing is downloaded: the build runs without isolation against the installed
setuptools, and the venv sees the installed torch and numpy
(``--system-site-packages``) while the wheel goes in with ``--no-deps --no-index``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

import regfn

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What a checkout may hold besides its sources (caches, build output, local runs).
_LEFT_OUT = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".benchmarks",
    ".venv",
    "regfn-out",
)


def _missing_tools() -> str | None:
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install build twine, or the test extra)"
    try:
        setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return "needs setuptools (the build runs without isolation)"
    if setuptools_major < 77:
        return "needs setuptools >= 77 (pyproject's SPDX license; the build runs without isolation)"
    return None


def _run(cmd: list[str], cwd: pathlib.Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the installed wheel, not a checkout, must be what runs.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_build_check_install_and_run(tmp_path):
    missing = _missing_tools()
    if missing:
        pytest.skip(missing)
    # Build from a copy, so that no build output lands in the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_LEFT_OUT)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)], cwd=tmp_path)
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1, wheels
    assert len(sdists) == 1, sdists
    assert wheels[0].name == f"regfn-{regfn.__version__}-py3-none-any.whl"
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheels[0]), str(sdists[0])], cwd=tmp_path)

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "regfn/py.typed" in names
    assert "regfn/__init__.py" in names
    outside = [
        n for n in names if not (n.startswith("regfn/") or n.startswith(f"regfn-{regfn.__version__}.dist-info/"))
    ]
    assert outside == [], f"the wheel holds files outside the regfn package: {outside}"
    unwanted = [n for n in names if any(part in n for part in ("tests/", "benchmarks/", "golden", ".json", ".csv"))]
    assert unwanted == [], f"the wheel holds tests, benchmarks or data: {unwanted}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names

    venv = tmp_path / "venv"
    # The venv sees the installed torch, numpy and pip; only regfn comes from the wheel.
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp_path)
    # Run from a virtualenv, --system-site-packages shows the base interpreter's packages, not this
    # interpreter's (torch among them): list this interpreter's site-packages after the venv's own.
    venv_site = next((venv / "lib").glob("python*/site-packages"))
    (venv_site / "_outer_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])], cwd=tmp_path)

    shown = _run([str(python), "-c", "import regfn; print(regfn.__version__); print(regfn.__file__)"], cwd=tmp_path)
    version, location = shown.stdout.split()
    assert version == regfn.__version__
    assert pathlib.Path(location).resolve().is_relative_to(venv.resolve()), location

    out = tmp_path / "out"
    _run(
        [str(venv / "bin" / "regfn"), "sweep", "--epochs", "5", "--out", str(out), "--no-plots", "--quiet"],
        cwd=tmp_path,
    )
    results = out / "results.csv"
    assert results.exists()
    assert len(results.read_text().splitlines()) == 1 + 24  # the header and the default grid's 24 configurations
