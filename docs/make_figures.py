"""Draw every figure of the documentation site into docs/figures/; none is drawn by hand.

Two sources:

* the main job, ``regfn sweep`` with its defaults on the built-in synthetic data: its
  figures (``main-job/*.png``) and what it prints (``main-job/output.txt``, which
  the Getting started page includes);
* the benchmark ratios in ``docs/benchmarks/ratios.json`` (the numbers the scripts in
  ``benchmarks/`` measured; nothing is re-measured here): ``benchmark-ratios.png``.

Usage, from the repository root (needs matplotlib, ``pip install "regfn[plot]"``)::

    python docs/make_figures.py                      # every figure, into docs/figures/ (seconds)
    python docs/make_figures.py --quick --out DIR    # a 3-epoch main job, to check the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pathlib
import shutil
import tempfile
import textwrap

DOCS = pathlib.Path(__file__).resolve().parent
RATIOS = DOCS / "benchmarks" / "ratios.json"

MAIN_JOB_FIGURES = ("val_acc_vs_l2.png", "val_acc_vs_p.png", "heatmap_l2_p.png", "curves.png")
FIGURES = (*(f"main-job/{name}" for name in MAIN_JOB_FIGURES), "main-job/output.txt", "benchmark-ratios.png")
"""Every file this script writes, relative to its output folder (the site's figures are these)."""


def main_job(out: pathlib.Path, epochs: int | None = None) -> None:
    """Run ``regfn sweep --out regfn-out`` (the README's main job) and keep its figures and printout."""
    from regfn.cli import main

    target = out / "main-job"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["sweep", "--out", tmp] + ([] if epochs is None else ["--epochs", str(epochs)])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            status = main(argv)
        if status != 0:
            raise SystemExit(f"make_figures: regfn sweep failed ({status}):\n{printed.getvalue()}")
        for name in MAIN_JOB_FIGURES:
            shutil.copyfile(pathlib.Path(tmp) / name, target / name)
        text = printed.getvalue().replace(tmp, "regfn-out")
    (target / "output.txt").write_text("$ regfn sweep --out regfn-out\n" + text)


def _meets(value: float, target: dict[str, float] | None) -> bool | None:
    if target is None:
        return None
    return value <= target["max"] if "max" in target else value >= target["min"]


def benchmark_ratios(out: pathlib.Path, ratios: pathlib.Path = RATIOS) -> None:
    """One row per measured ratio: its runs as dots, its target as a bar, coloured by whether it is met."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = json.loads(ratios.read_text())["ratios"]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(entries) + 1.2))
    colours = {True: "tab:green", False: "tab:red", None: "tab:gray"}
    for row, entry in enumerate(reversed(entries)):
        values, target = entry["values"], entry["target"]
        met = [_meets(v, target) for v in values]
        verdict = None if target is None else (all(met) or (False if not any(met) else "some"))
        colour = "tab:orange" if verdict == "some" else colours[verdict]
        ax.plot([min(values), max(values)], [row, row], color=colour, linewidth=2)
        ax.scatter(values, [row] * len(values), color=colour, zorder=3, s=22)
        if target is not None:
            bound = target.get("max", target.get("min"))
            ax.plot([bound], [row], marker="|", markersize=14, color="black")
            ax.annotate("≤" if "max" in target else "≥", (bound, row + 0.18), ha="center", fontsize=8)
    labels = [textwrap.fill(f"{e['what']} [{e['device']}]", 44) for e in reversed(entries)]
    ax.set_yticks(range(len(entries)), labels, fontsize=7.5)
    ax.set_xscale("log")
    ax.axvline(1.0, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("time ratio, first / second as named (log scale)", fontsize=8)
    ax.set_title("| target; green: met, orange: in some runs, red: not met, gray: none", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "benchmark-ratios.png", dpi=100)
    plt.close(fig)


def make_figures(out: pathlib.Path, quick: bool = False) -> list[pathlib.Path]:
    """Write every figure into ``out``; returns their paths (``FIGURES``, in order)."""
    out.mkdir(parents=True, exist_ok=True)
    main_job(out, epochs=3 if quick else None)
    benchmark_ratios(out)
    return [out / name for name in FIGURES]


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DOCS / "figures", help="output folder (docs/figures/)")
    parser.add_argument("--quick", action="store_true", help="a 3-epoch main job: checks the script, not the site")
    args = parser.parse_args(argv)
    for path in make_figures(args.out, quick=args.quick):
        print(path)


if __name__ == "__main__":
    cli()
