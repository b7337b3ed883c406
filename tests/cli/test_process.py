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

if not (DEFAULT_DETECTOR / "manifest.json").is_file():
    pytest.skip("shipped models not present", allow_module_level=True)

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)


def wafertk(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "wafertk.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


_IN_PROCESS = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
               "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")


def _without_tensorflow(args):
    """Run a command; stdout ends with its exit code and whether TensorFlow was imported."""
    return subprocess.run([sys.executable, "-c", _IN_PROCESS, *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=60)


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
        r = _without_tensorflow(args)
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
    # a shell starts background jobs (`make test &`) with SIGINT ignored, and an ignored
    # signal stays ignored across exec: the user's Ctrl-C is what is tested, so the command
    # starts with the default disposition, as in a terminal
    proc = subprocess.Popen([sys.executable, "-m", "wafertk.cli.main", "classify", str(large),
                             "-o", str(out), "--batch-size", "16", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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


def _children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:  # pragma: no cover
        pytest.skip("pgrep not available")
    return [int(x) for x in out.split()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead
        return fh.read().split(")")[-1].split()[0] != "Z"


def _start_features(large, out):
    proc = subprocess.Popen([sys.executable, "-m", "wafertk.cli.main", "features", str(large),
                             "-o", str(out), "--set", "density,radon,geometry", "-j", "2",
                             "--batch-size", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.monotonic()
    while len(_children(proc.pid)) < 2:
        assert proc.poll() is None and time.monotonic() - t0 < 60, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # workers busy with batches
    return proc, _children(proc.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process tools")
def test_features_workers_stop_with_sigterm_and_die_with_sigkill(large, tmp_path):
    proc, workers = _start_features(large, tmp_path / "f.parquet")
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and err.splitlines() == ["wafertk: terminated"], err
    assert time.monotonic() - t < 5  # no waiting for the workers' batches
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)]
    assert list(tmp_path.iterdir()) == []

    proc, workers = _start_features(large, tmp_path / "g.parquet")
    proc.kill()
    proc.communicate(timeout=30)
    t0 = time.monotonic()
    while [w for w in workers if _alive(w)] and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)]  # no orphans after SIGKILL
    # the next run removes the killed run's temporary file
    r = wafertk("features", large, "-o", tmp_path / "g.parquet", "--set", "density", "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.parquet"]


def test_bad_models_and_inputs_fail_before_tensorflow(small, tmp_path):
    """Model names, folders and manifests, and the input's schema, are checked first."""
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    cases = [
        (["detect", small, "-o", tmp_path / "o", "--model", tmp_path / "nope"], "no such model"),
        (["detect", small, "-o", tmp_path / "o", "--model", "detecter"],
         "did you mean 'detector'"),
        (["classify", small, "-o", tmp_path / "o", "--classifier", "detector"], "wrong kind"),
        (["detect", text, "-o", tmp_path / "o"], "not an HDF5 file"),
        (["calibrate", "detektor", small, "-o", tmp_path / "o"], "did you mean 'detector'"),
        (["calibrate", "detector", small, "-o", tmp_path / "o", "--screen-margin", "1.5"],
         "--screen-margin must be in [0, 1], got 1.5"),
    ]
    for args, needle in cases:
        r = _without_tensorflow(args)
        assert r.stdout.strip() == "2 False", (args, r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and needle in r.stderr, (args, r.stderr)


def test_a_screen_on_a_model_without_one_is_one_line_and_writes_nothing(small, tmp_path):
    one_line_error(wafertk("calibrate", "detector-fast", small, "-o", tmp_path / "o",
                           "--screen-margin", "0.5"),
                   "--screen-margin applies to ensemble detectors, not to cnn-detector")
    assert list(tmp_path.iterdir()) == []


def test_verbose_shows_the_traceback_and_keeps_exit_code_2(tmp_path):
    r = wafertk("-v", "info", tmp_path / "missing.h5")
    assert r.returncode == 2
    assert "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith("wafertk: error: ")


def test_outputs_that_would_lose_data_are_refused(small, tmp_path):
    # the current folder
    one_line_error(wafertk("detect", small, "-o", ".", cwd=tmp_path), "current folder")
    assert list(tmp_path.iterdir()) == []
    # a special file, the input itself
    one_line_error(wafertk("features", small, "-o", "/dev/null", "--set", "density"),
                   "not a regular file")
    copy = tmp_path / "copy.h5"
    copy.write_bytes(small.read_bytes())
    one_line_error(wafertk("features", copy, "-o", copy, "--set", "density"), "also the input")
    assert copy.read_bytes() == small.read_bytes()
    # a run folder holding the user's files
    run = tmp_path / "run"
    run.mkdir()
    (run / "mine.txt").write_text("keep")
    one_line_error(wafertk("train", "xgboost", "--data", small, "-o", run), "did not write")
    one_line_error(wafertk("evaluate", "--model", "xgboost", small, "-o", run), "did not write")
    assert [p.name for p in run.iterdir()] == ["mine.txt"]


def test_symlinked_output_folder_is_replaced_through_the_link(small, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    r = wafertk("detect", small, "-o", tmp_path / "out", "--no-report", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]
    assert sorted(p.name for p in real.iterdir()) == ["predictions.csv", "run.json"]


def test_config_naming_the_wrong_architecture_names_the_file(small, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  architecture: wafer_cnn_classifier\n")
    one_line_error(wafertk("train", "detector", "--data", small, "-o", tmp_path / "r",
                           "--config", cfg), f"{cfg}: model.architecture:", "not a detector")
