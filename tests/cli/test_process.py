"""The command line's promises, checked in a real ``wafertk`` process.

In-process (CliRunner) tests cannot see what TensorFlow's C++ code writes to file descriptor 2,
what a signal does, or whether a command imports TensorFlow before failing on a bad path. These
run ``python -m wafertk.cli.main`` with TensorFlow's own logging fully on
(``TF_CPP_MIN_LOG_LEVEL=0``) and check: exactly one stderr line on error, nothing on stderr on
success, exit codes, and nothing left behind.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from wafertk.data import WaferWriter
from wafertk.data.synthetic import make_wafers
from wafertk.inspect import DEFAULT_DETECTOR, OutputFolder

pytestmark = pytest.mark.tf

if not (DEFAULT_DETECTOR / "model.keras").is_file():
    pytest.skip("shipped models not present", allow_module_level=True)

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)


def wafertk(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "wafertk.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert r.stdout == ""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "small.h5"
    with WaferWriter(path) as w:
        w.append(make_wafers(50, n_lots=4, random_state=1))
    return path


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """~60,000 wafers: long enough to interrupt a run with batches of 16."""
    path = tmp_path_factory.mktemp("in") / "large.h5"
    base = make_wafers(1000, shape_range=(20, 30), n_lots=40, random_state=2)
    with WaferWriter(path) as w:
        for k in range(60):
            part = base.take(range(len(base)))
            part.wafer_id = part.wafer_id.astype(str).astype(object) + f"-{k}"
            w.append(part)
    return path


def test_success_prints_one_summary_line_and_nothing_on_stderr(small, tmp_path):
    r = wafertk("classify", small, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {tmp_path / 'out'}: 50 wafers, ")
    assert "two-phase" in lines[0] and lines[0].endswith(" s")
    r = wafertk("detect", small, "--output", tmp_path / "det", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_error_after_tensorflow_is_loaded_is_one_line(small, tmp_path):
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    one_line_error(wafertk("classify", small, "-o", tmp_path / "out", "--detector", bad),
                   "manifest")
    assert not (tmp_path / "out").exists()


def test_bad_paths_fail_before_tensorflow_is_imported(small, tmp_path):
    code = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")
    existing_file = tmp_path / "file.txt"
    existing_file.write_text("x")
    cases = [
        (["classify", tmp_path / "missing.h5", "-o", tmp_path / "o"], "no such file"),
        (["classify", tmp_path, "-o", tmp_path / "o"], "is a folder"),
        (["classify", small, "-o", existing_file], "not a folder"),
        (["detect", small, "-o", tmp_path / "o", "--threshold", "2"], "(0, 1)"),
        (["classify", "--single-phase", small, "-o", tmp_path / "o", "--detector", "x"],
         "--detector does not apply"),
        (["classify", small, "-o", tmp_path / "o", "--bogus"], "No such option"),
    ]
    for args, needle in cases:
        r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                           text=True, env=ENV, timeout=60)
        assert r.stdout.strip() == "2 False", (args, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), (args, r.stderr)
        assert needle in lines[0], (args, lines[0])
    assert not (tmp_path / "o").exists()


def test_output_folder_with_foreign_files_is_not_replaced(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(wafertk("detect", small, "-o", out), "did not write", "notes.txt")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_second_run_into_a_busy_folder_fails_clearly(small, tmp_path):
    out = tmp_path / "out"
    busy = OutputFolder(out)
    busy.__enter__()  # another run is writing "out"
    try:
        one_line_error(wafertk("detect", small, "-o", out), "another wafertk run")
    finally:
        busy.__exit__(RuntimeError, RuntimeError("abandoned"), None)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _wait_for_staging(tmp_path, proc, timeout=90):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        stages = [p for p in tmp_path.glob(".out.*.tmp") if (p / "predictions.csv").exists()]
        if stages and (stages[0] / "predictions.csv").stat().st_size > 1000:
            return stages[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run did not start writing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_leave_nothing_behind(sig, large, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("old\n")
    proc = subprocess.Popen([sys.executable, "-m", "wafertk.cli.main", "classify", str(large),
                             "-o", str(out), "--batch-size", "16", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for_staging(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert err.splitlines() == ["wafertk: terminated" if sig == signal.SIGTERM
                                else "wafertk: interrupted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "predictions.csv").read_text() == "old\n"


def test_sigkill_leftovers_are_removed_by_the_next_run(small, large, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "wafertk.cli.main", "classify", str(large),
                             "-o", str(out), "--batch-size", "16", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    stage = _wait_for_staging(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert stage.exists()  # SIGKILL cannot be handled
    r = wafertk("detect", small, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["out"], left
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "report.html",
                                                    "run.json"]
