"""`regfn verify` runs only code the user chose to trust, knows when a file changed, and writes nothing (issue #27)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import regfn
from regfn import cli
from regfn._results_check import MAX_RESULTS_BYTES, check_result

NET = """\
import torch
from torch import nn
import helper


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 4)
        self.b = nn.Linear(4, 1)

    def forward(self, x):
        return self.b(helper.act(self.a(x)))
"""
HELPER = "import torch\n\n\ndef act(x):\n    return torch.relu(x)\n"
MARKER = 'import pathlib\npathlib.Path("MARKER").write_text("imported")\n'
TINY = ["--epochs", "3", "--n", "40", "--l2", "0", "--p", "0,0.5", "--seeds", "1", "--quiet", "--no-plots"]


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "helper", raising=False)  # each test's own net.py imports its own helper.py
    yield tmp_path
    sys.modules.pop("helper", None)


def swept_module(capsys, here):
    (here / "net.py").write_text(NET)
    (here / "helper.py").write_text(HELPER)
    code, _, err = run_main(capsys, "sweep", "--model", "module:net.py:Net", *TINY, "--out", "res")
    assert code == 0, err
    return here / "res" / "results.json"


def test_the_issue_scenario_a_swapped_model_file_runs_only_when_trusted(capsys, here):
    results = swept_module(capsys, here)
    files = json.loads(results.read_text())["provenance"]["files"]
    assert [(f["role"], f["path"]) for f in files] == [("model", "net.py"), ("model import", "helper.py")]
    (here / "net.py").write_text(MARKER + NET)  # replaced by a file that writes a marker at import
    code, out, err = run_main(capsys, "verify", str(results))
    assert code == 2
    assert not (here / "MARKER").exists()
    assert "made with the model file net.py" in err
    assert "--trust-model" in err
    assert "--model module:net.py:Net" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run_main(capsys, "verify", str(results), "--trust-model")
    assert code == 1, err  # the rows are identical, but the model file changed: a finding
    assert (here / "MARKER").exists()
    assert "finding: the model file net.py changed since the sweep" in out
    assert "all 2 rows are bit-identical" in out
    assert out.index("finding:") < out.index("rerunning")  # compared before anything was imported


def test_naming_the_model_again_and_a_changed_neighbour(capsys, here):
    results = swept_module(capsys, here)
    code, out, err = run_main(capsys, "verify", str(results), "--model", "module:net.py:Net")
    assert code == 0, err
    assert "finding" not in out
    assert "rerun with the recorded choices: compile=False, threads=1" in out
    (here / "helper.py").write_text(HELPER + "\n# edited\n")
    code, out, err = run_main(capsys, "verify", str(results), "--model", "module:net.py:Net")
    assert code == 1
    assert "finding: the model's imported file helper.py changed since the sweep" in out


def test_a_changed_csv_is_named(capsys, here):
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40))
    (here / "d.csv").write_text("a,b,y\n" + rows + "\n")
    code, _, err = run_main(capsys, "sweep", "--csv", "d.csv", *TINY[:2], *TINY[4:], "--out", "res")
    assert code == 0, err
    results = here / "res" / "results.json"
    assert run_main(capsys, "verify", str(results))[0] == 0
    (here / "d.csv").write_text("a,b,y\n" + rows + "\n\n")  # same numbers, other bytes
    code, out, _ = run_main(capsys, "verify", str(results))
    assert code == 1
    assert "finding: the data file d.csv changed since the sweep" in out


def test_verify_writes_nothing_and_ignores_what_it_does_not_need(capsys, here):
    argv = ["sweep", *TINY, "--out", "res", "--checkpoint", "ck", "--checkpoint-every", "2"]
    assert run_main(capsys, *argv)[0] == 0
    (here / "r.json").write_bytes((here / "res" / "results.json").read_bytes())
    for folder in ("res", "ck"):  # res holds params/ too (the best configuration's parameters)
        shutil.rmtree(here / folder)
    before = sorted(os.listdir(here))
    code, _out, err = run_main(capsys, "verify", "r.json")
    assert code == 0, err
    assert sorted(os.listdir(here)) == before  # no --out, no --checkpoint directory


def test_verify_reads_exactly_the_honoured_options():
    from regfn.cli._verify import HONOURED, recorded_parser

    options = {o for action in recorded_parser()._actions for o in action.option_strings}
    assert options == set(HONOURED)  # a new data or model option is a decision: add it to HONOURED
    assert not {"--out", "--checkpoint", "--threads", "--device", "--compile"} & options
    known, rest = recorded_parser().parse_known_args(["--out", "x", "--tensorboard", "tb", "--n", "40"])
    assert known.n == 40
    assert rest == ["--out", "x", "--tensorboard", "tb"]


@pytest.mark.parametrize("path", ["../d.csv", "/etc/d.csv", "~/d.csv", "a/../../d.csv"])
def test_recorded_paths_that_leave_the_folder_are_refused(capsys, here, path):
    results = swept_module(capsys, here)
    d = json.loads(results.read_text())
    d["provenance"]["argv"] = ["sweep", "--csv", path, *TINY]
    results.write_text(json.dumps(d))
    code, _, err = run_main(capsys, "verify", str(results))
    assert code == 2
    assert "leaves the folder it is read from" in err
    d["provenance"]["argv"] = ["sweep", "--model", f"module:{path[:-4]}.py:Net", *TINY]
    results.write_text(json.dumps(d))
    code, _, err = run_main(capsys, "verify", str(results), "--trust-model")
    assert code == 2
    assert "leaves the folder it is read from" in err


def test_a_recorded_import_outside_the_model_folder_is_refused(capsys, here):
    results = swept_module(capsys, here)
    d = json.loads(results.read_text())
    d["provenance"]["files"][1]["path"] = "../../etc/passwd"
    results.write_text(json.dumps(d))
    code, _, err = run_main(capsys, "verify", str(results), "--model", "module:net.py:Net")
    assert code == 2
    assert "a recorded model import: '../../etc/passwd' leaves the folder it is read from" in err


def test_a_huge_file_is_refused_unread(capsys, here):
    path = here / "huge.json"
    with path.open("wb") as f:  # sparse: 10 GB that take no disk
        f.truncate(10 * 10**9)
    code, _, err = run_main(capsys, "verify", str(path))
    assert code == 2
    assert f"more than a results file holds (at most {MAX_RESULTS_BYTES:,})" in err


# ----------------------------------------------------------------- fuzz: hostile fields

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**30, -1, 0, 2**63, float("inf"), 1e308]),
    st.text(max_size=8),
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "~/x", "module:../x.py:Net", "cuda:999", "nan"]),
    st.lists(st.integers(0, 3), max_size=4),
    st.builds(lambda n: [0.0] * n, st.sampled_from([0, 1, 10**6])),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(d, prefix=()):
    """Every (path, value) of the JSON tree ``d``, lists only to their first two items."""
    yield prefix, d
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d[:2]):
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module")
def valid_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    assert cli.main(["sweep", *TINY, "--out", str(folder / "res")]) == 0
    return json.loads((folder / "res" / "results.json").read_text())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_hostile_fields_are_one_line_refusals(valid_results, tmp_path, capsys, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    d = json.loads(json.dumps(valid_results))
    paths = [p for p, _ in _paths(d) if p]
    where = data.draw(st.sampled_from(paths))
    value = data.draw(HOSTILE)
    node = d
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path / "r.json"
    path.write_text(json.dumps(d))
    before = sorted(os.listdir(tmp_path))
    code = cli.main(["verify", str(path)])
    _out, err = capsys.readouterr()
    assert code in (0, 1, 2), (where, value)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, (where, value, err)
    if code == 2:
        assert err.startswith("regfn: error: ")
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
    path.unlink()


def test_check_result_names_the_bad_field(valid_results):
    d = json.loads(json.dumps(valid_results))
    d["curves"]["loss"][0] = [0.0] * 10**5
    with pytest.raises(ValueError, match=r"curves\.loss\[0\]: 3 points \(the curve epochs\) expected"):
        check_result(d)
    d = json.loads(json.dumps(valid_results))
    d["provenance"]["arguments"]["epochs"] = 10**30
    with pytest.raises(ValueError, match=r"provenance\.arguments\.epochs: an int in \[1, 10000000\] expected"):
        check_result(d)
    d = json.loads(json.dumps(valid_results))
    d["provenance"]["files"] = [{"role": "model", "path": "x.py", "sha256": "zz"}]
    with pytest.raises(ValueError, match=r"provenance\.files\[0\]\.sha256"):
        check_result(d)


def test_python_verify_takes_the_model_from_the_caller_and_checks_the_file(valid_results, tmp_path):
    d = json.loads(json.dumps(valid_results))
    d["rows"] = "x"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(d))
    data = regfn.data.quadrants(regfn.random.key(0), 8)
    with pytest.raises(ValueError, match="rows: a list of dicts expected"):
        regfn.verify(path, regfn.mlp((2, 1)), data)
    assert "nothing in ``results`` is imported or run" in " ".join(regfn.verify.__doc__.split())
    assert pathlib.Path(path).exists()
