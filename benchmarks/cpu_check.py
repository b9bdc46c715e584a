"""The speed checks of a CPU session: issue #22's workloads side by side, against their targets and the last record.

Run it on one pinned core at the start of a session and before committing a
speed change (the children inherit the pinning)::

    taskset -c 0 python benchmarks/cpu_check.py            # about 7 minutes with JAX
    taskset -c 0 python benchmarks/cpu_check.py --no-jax   # the JAX ratios skipped

It runs, one after another in fresh processes:

* ``sweep.py``: the tutorial's sweep (K = 64, E = 200, compiled): loop / regfn, regfn / JAX;
* ``sweep_mlp.py``: issue #22's digits MLP (K = 32, E = 20), compiled, then eager:
  loop / regfn, regfn / JAX;
* ``second_process.py``: a cold compile with an empty inductor cache and a second
  process on that cache (``compile_s``);
* ``sweep_cnn.py``: the digits CNN (K = 16, E = 3), compiled, in the automatic CPU
  chunks: loop / regfn (its chunks of 2 made it 1.86x faster; a regression there would
  show here); then eager, the path ``compile="auto"`` takes for it since session 19
  (no record from the session-12 machine: its first value, 1.32x, is session 19's on a
  2-core AMD EPYC, docs/benchmarks/index.md);
* ``first_call.py``: a first call with the defaults on the digits MLP (fresh process, empty
  inductor cache) against the loop computing the same metrics.

and prints one line per check: the measured value, the issue's target, the value
recorded in its ``record`` (:data:`RECORD_SOURCE`: docs/benchmarks/, the machine named there) and a
verdict. ``REGRESSED`` means more than :data:`SLACK` worse than the record: a ratio
measured side by side moves less with the machine than seconds do, so a regression
of that size is worth a look even on another CPU (session 10 compiled the tutorial's
step 3x slower without noticing, since it timed only eager runs). The last line is
one JSON object with every value.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parents[1]

SLACK = 0.3
"""How much worse than the record a value may be before it is called a regression (30%: these machines are noisy)."""


class Check(NamedTuple):
    """One number the script reports: where it comes from, which way is better, its target and its record."""

    name: str
    run: str  # the key of RUNS whose JSON line holds it
    field: str  # the field of that line (dotted for nested fields)
    higher_is_better: bool
    target: float | None
    record: float | None


RECORD_SOURCE = (
    "session 12, 2026-12-06, 2-core Intel Xeon with AVX-512, one pinned core, automatic CPU chunks; "
    "the tutorial's rows session 13's, compiled features first; the digits MLP's cold compile session 14's, "
    "inductor's small instruction probes answered; the first call session 14's (docs/benchmarks/index.md)"
)
CHECKS = (
    Check("tutorial sweep: loop / regfn", "tutorial", "seq_vs_regfn", True, 8.0, 10.1),
    Check("tutorial sweep: regfn / JAX", "tutorial", "regfn_vs_jax", False, 0.5, 0.30),
    Check("digits MLP compiled: loop / regfn", "digits", "seq_vs_regfn", True, 4.0, 2.04),
    Check("digits MLP compiled: regfn / JAX", "digits", "regfn_vs_jax", False, 1.0, 0.60),
    Check("digits MLP eager: loop / regfn", "digits_eager", "seq_vs_regfn", True, 1.5, 1.01),
    Check("digits MLP cold compile, s", "compile", "cold.compile_s", False, 20.0, 8.7),
    Check("digits MLP second process compile, s", "compile", "warm.compile_s", False, 5.0, 2.75),
    Check("digits CNN compiled (K=16): loop / regfn", "cnn", "seq_vs_regfn", True, 1.5, 1.165),
    Check("digits CNN eager (K=16): loop / regfn", "cnn_eager", "seq_vs_regfn", True, 1.5, None),
    Check("digits MLP first call / logged loop", "first_call", "first_vs_loop_logged", False, 1.2, 1.08),
)
"""What is checked; ``record`` is the value of :data:`RECORD_SOURCE`."""

CNN_RUN = ["sweep_cnn.py", "--K", "16", "--epochs", "3", "--no-jax", "--no-ensemble", "--seq-configs", "4"]
"""The digits CNN's run, compiled (``"cnn"``) and eager (``"cnn_eager"``)."""

RUNS = {
    "tutorial": ["sweep.py", "--device", "cpu", "--ks", "64", "--epochs", "200", "--threads", "1"],
    "digits": ["sweep_mlp.py", "--workload", "digits", "--K", "32", "--epochs", "20"],
    "digits_eager": ["sweep_mlp.py", "--workload", "digits", "--K", "32", "--epochs", "20", "--no-compile", "--no-jax"],
    "compile": ["second_process.py"],
    # four loop configurations: one of each dropout rate, as the grid has them (the first two, p = 0 and 0.1,
    # made the loop's mean about 15% short: a configuration with p = 0 draws no masks)
    "cnn": CNN_RUN,
    "cnn_eager": [*CNN_RUN, "--no-compile"],
    "first_call": ["first_call.py", "--workloads", "digits"],
}
"""The benchmark runs, by name: a script of ``benchmarks/`` and its arguments."""

QUICK = {
    "tutorial": ["--ks", "4", "--epochs", "2", "--no-compile", "--no-jax", "--seq-configs", "1"],
    "digits": ["--K", "2", "--epochs", "1", "--no-compile", "--no-jax", "--seq-configs", "1"],
    "digits_eager": ["--K", "2", "--epochs", "1", "--seq-configs", "1"],
    "compile": ["--no-compile"],
    "cnn": ["--K", "2", "--epochs", "1", "--no-compile", "--seq-configs", "1"],
    "cnn_eager": ["--K", "2", "--epochs", "1", "--seq-configs", "1"],
    "first_call": ["--K", "2", "--epochs", "1", "--seq-configs", "1"],
}
"""``--quick``'s arguments, appended (argparse keeps the last): every run tiny and eager, to check the plumbing."""


def field(line: dict, dotted: str) -> float | None:
    """``line``'s value at ``dotted`` (``"cold.compile_s"``), ``None`` where it is missing or null.

    Examples:
        >>> field({"cold": {"compile_s": 18.8}}, "cold.compile_s")
        18.8
        >>> field({"jax_s": None}, "jax_s") is None
        True
    """
    value: object = line
    for part in dotted.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return None
        value = value[part]
    return float(value)  # type: ignore[arg-type]


def verdict(check: Check, value: float | None) -> str:
    """``"target met"``, ``"target not met"``, with ``"REGRESSED"`` first when ``value`` is worse than the record by more than :data:`SLACK`.

    Examples:
        >>> tutorial = CHECKS[0]
        >>> verdict(tutorial, 7.4), verdict(tutorial, 8.1), verdict(tutorial, 2.0)
        ('target not met', 'target met', 'REGRESSED, target not met')
    """
    if value is None:
        return "not measured"
    better = (lambda a, b: a >= b) if check.higher_is_better else (lambda a, b: a <= b)
    met = "target met" if check.target is None or better(value, check.target) else "target not met"
    if check.record is not None:
        bound = check.record * (1 - SLACK) if check.higher_is_better else check.record * (1 + SLACK)
        if not better(value, bound):
            return f"REGRESSED, {met}"
    return met


def run(name: str, no_jax: bool, quick: bool = False) -> dict:
    """The last JSON line of benchmark run ``name`` (``{}`` when it failed, with its error on stderr)."""
    args = (
        RUNS[name]
        + (["--no-jax"] if no_jax and name in ("tutorial", "digits") else [])
        + (QUICK[name] if quick else [])
    )
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"{name}: failed ({done.returncode}): {done.stderr[-1000:]}", file=sys.stderr)
        return {}
    return json.loads(lines[-1])


def report(lines: dict[str, dict]) -> list[dict]:
    """One row per check: its name, value, target, record and verdict."""
    rows = []
    for check in CHECKS:
        value = field(lines.get(check.run, {}), check.field)
        rows.append({"check": check.name, "value": value, "target": check.target, "record": check.record,
                     "verdict": verdict(check, value)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-jax", action="store_true", help="skip JAX (its ratios are not measured)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated runs of {sorted(RUNS)}")
    parser.add_argument("--quick", action="store_true", help="tiny eager runs: checks the script, measures nothing")
    args = parser.parse_args(argv)
    names = [n for n in args.runs.split(",") if n]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"--runs: unknown {unknown}; choose from {sorted(RUNS)}")
    lines = {name: run(name, args.no_jax, args.quick) for name in names}
    rows = report(lines)
    print(f"record: {RECORD_SOURCE}")
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.3g}"
        print(f"{r['check']:40s} {value:>8s}  target {r['target']}  record {r['record']}  {r['verdict']}")
    print(json.dumps({"rows": rows, "lines": lines}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
