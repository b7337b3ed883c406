"""--scheduler and many inputs on the command line: bad input in a real process.

Each case: one ``wafertk: error:`` line naming the thing, exit code 2, nothing written, and
neither TensorFlow nor Dask imported (the checks come first). Runs on the cluster itself are
in ``tests/test_distributed.py``.
"""

import subprocess
import sys

import pytest

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers

_RUN = ("import sys\nfrom wafertk.cli.main import main\ncode = 0\ntry:\n"
        "    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('tensorflow', 'dask', 'distributed') "
        "if m in sys.modules))\n")


def wafertk(*args, cwd=None):
    """Run a command; the last stdout line: its exit code and the heavy modules imported."""
    return subprocess.run([sys.executable, "-c", _RUN, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def one_line_error(r, *needles, imported="[]"):
    assert r.stdout.strip().splitlines()[-1] == f"2 {imported}", (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    ws = make_wafers(20, n_lots=2, random_state=2)
    write_wafers(ws, d / "a.h5")
    unlabeled = type(ws)(ws.maps_flat, ws.offsets, ws.shapes, lot=ws.lot,
                         wafer_id=ws.wafer_id)
    write_wafers(unlabeled, d / "b-unlabeled.h5")
    return d


@pytest.mark.parametrize("cmd, value, needle", [
    (["detect"], "local:two", "local:N needs N"),
    (["features", "--set", "density"], "somehost", "not local[:N] nor a scheduler address")])
def test_bad_scheduler_value(inputs, tmp_path, cmd, value, needle):
    out = tmp_path / ("out.csv" if cmd[0] == "features" else "out")
    r = wafertk(*cmd, inputs / "a.h5", "-o", out, "--scheduler", value)
    one_line_error(r, needle, value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_glob_matching_nothing(inputs, tmp_path):
    pattern = inputs / "archive-*.h5"
    r = wafertk("classify", pattern, "-o", tmp_path / "out")
    one_line_error(r, pattern, "no file matches")
    assert list(tmp_path.iterdir()) == []


def test_files_with_different_schemas(inputs, tmp_path):
    r = wafertk("classify", inputs / "a.h5", inputs / "b-unlabeled.h5", "-o", tmp_path / "out",
                "--scheduler", "local:1")
    one_line_error(r, "b-unlabeled.h5", "has labels", "same schema")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_scheduler(inputs, tmp_path):
    """Nothing listens on port 9 (discard): the error names the address, nothing is written."""
    r = wafertk("classify", inputs / "a.h5", "-o", tmp_path / "out", "--scheduler",
                "tcp://127.0.0.1:9")
    one_line_error(r, "cannot reach the Dask scheduler at tcp://127.0.0.1:9",
                   imported="['dask', 'distributed']")
    assert list(tmp_path.iterdir()) == []


def test_jobs_with_scheduler_and_many_data_files_without(inputs, tmp_path):
    r = wafertk("features", inputs / "a.h5", "-o", tmp_path / "f.csv", "--jobs", "2",
                "--scheduler", "local:1")
    one_line_error(r, "--jobs", "--scheduler")
    r = wafertk("train", "xgboost", "--data", inputs / "a.h5", "--data",
                inputs / "b-unlabeled.h5", "-o", tmp_path / "m")
    one_line_error(r, "need --scheduler")
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_option_without_importing_dask():
    r = wafertk("classify", "--help")
    assert "--scheduler" in r.stdout and "ADDRESS|local[:N]" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "0 []"
