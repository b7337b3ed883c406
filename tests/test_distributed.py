"""wafertk.distributed: ranges, inputs, and runs on a LocalCluster identical to one process.

The cluster tests share one LocalCluster of two worker processes (started once, about 5 s;
each worker imports TensorFlow and loads the shipped models once). One of them kills a
worker process (SIGKILL) in the middle of a run and checks that the output is still the
single-process output, byte for byte.
"""

import contextlib
import json
import logging
import os
import signal
import sys
import threading

import numpy as np
import pytest

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.distributed import (
    InputFile,
    SchedulerSpec,
    check_inputs,
    expand_inputs,
    extract_files,
    inspect_files,
    parse_scheduler,
    plan_ranges,
)
from wafertk.errors import WaferFileError, WafertkError
from wafertk.inspect import DEFAULT_DETECTOR

distributed = pytest.importorskip("distributed")
HAS_MODELS = (DEFAULT_DETECTOR / "manifest.json").is_file()


# ------------------------------------------------------------------------------- no cluster
def test_importing_it_imports_neither_dask_nor_tensorflow():
    import subprocess

    code = ("import sys, wafertk.distributed, wafertk.cli.inspect_cmds\n"
            "print(sorted(m for m in ('dask', 'distributed', 'tensorflow', 'xgboost') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("text, spec", [
    ("local", SchedulerSpec(local=True)),
    ("local:3", SchedulerSpec(local=True, n_workers=3)),
    ("tcp://10.0.0.5:8786", SchedulerSpec(local=False, address="tcp://10.0.0.5:8786")),
    ("sched.fab:8786", SchedulerSpec(local=False, address="tcp://sched.fab:8786")),
])
def test_parse_scheduler(text, spec):
    assert parse_scheduler(text) == spec


@pytest.mark.parametrize("text", ["", "local:", "local:0", "local:x", "local:-1", "host",
                                  "tcp://host", "host:port"])
def test_parse_scheduler_refuses(text):
    with pytest.raises(WafertkError, match="scheduler"):
        parse_scheduler(text)


def test_plan_ranges_whole_batches_in_order():
    files = [InputFile("a.h5", 1000, False, ()), InputFile("b.h5", 70, False, ())]
    ranges = plan_ranges(files, 64, n_workers=2, rows=100)
    assert ranges[0] == ("a.h5", 0, 128) and ranges[-1] == ("b.h5", 0, 70)
    for _path, a, b in ranges:
        assert a % 64 == 0 and b > a
    covered = [(p, i) for p, a, b in ranges for i in range(a, b)]
    assert covered == [("a.h5", i) for i in range(1000)] + [("b.h5", i) for i in range(70)]
    # default: whole batches, at least four ranges per worker when the input allows it
    assert len(plan_ranges(files[:1], 16, n_workers=2)) >= 8


def test_workers_open_files_without_the_whole_file_scans(tmp_path):
    """Workers open an already checked file once per range: WaferFile(full_checks=False)
    skips the O(n) id scan (a duplicate id is then not reported) but still reads right."""
    import h5py

    from wafertk.data import WaferFile

    ws = make_wafers(6, random_state=0)
    write_wafers(ws, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "a") as h5:
        h5["wafer_id"][2] = h5["wafer_id"][0]
    with pytest.raises(WaferFileError, match="duplicate wafer_id"):
        WaferFile(tmp_path / "w.h5")
    with WaferFile(tmp_path / "w.h5", full_checks=False) as f:
        got = f.read(1, 4)
    assert [got[i].tolist() for i in range(3)] == [ws[i].tolist() for i in range(1, 4)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    a, b = d / "part-a.h5", d / "part-b.h5"
    ws = make_wafers(150, n_lots=8, random_state=11)
    write_wafers(ws.slice(0, 90), a)
    write_wafers(ws.slice(90, 150), b)
    return d, a, b


def test_expand_inputs_globs_and_errors(files, tmp_path):
    d, a, b = files
    assert expand_inputs(str(d / "part-*.h5")) == [a, b]
    assert expand_inputs([b, a]) == [b, a]  # files as given, in order
    with pytest.raises(WaferFileError, match="no file matches"):
        expand_inputs(str(tmp_path / "nothing-*.h5"))
    with pytest.raises(WaferFileError, match="given twice"):
        expand_inputs([a, str(d / "part-*.h5")])


def test_check_inputs_same_schema(files, tmp_path):
    _, a, _ = files
    ws = make_wafers(10, random_state=1)
    unlabeled = tmp_path / "unlabeled.h5"
    write_wafers(type(ws)(ws.maps_flat, ws.offsets, ws.shapes, lot=ws.lot,
                          wafer_id=np.array([f"u{i}" for i in range(10)], object)), unlabeled)
    with pytest.raises(WaferFileError, match="has labels and .* has none") as e:
        check_inputs([a, unlabeled])
    assert str(unlabeled) in str(e.value)
    assert [f.n for f in check_inputs([a])] == [90]


def test_features_in_process_over_files_matches_one_file(files, tmp_path):
    """Several files without a scheduler: the rows of each file's own table, one after the
    other (CSV) and the same row groups (Parquet)."""
    import pandas as pd

    from wafertk.features import extract_file

    _, a, b = files
    for ext in ("csv", "parquet"):
        extract_file(a, tmp_path / f"a.{ext}", "density,radon", batch_size=32)
        extract_file(b, tmp_path / f"b.{ext}", "density,radon", batch_size=32)
        extract_files([a, b], tmp_path / f"ab.{ext}", "density,radon", batch_size=32,
                      rows_per_range=64)
    ab = (tmp_path / "ab.csv").read_text()
    a_txt, b_txt = (tmp_path / "a.csv").read_text(), (tmp_path / "b.csv").read_text()
    assert ab == a_txt + b_txt.split("\n", 1)[1]
    both = pd.read_parquet(tmp_path / "ab.parquet")
    pd.testing.assert_frame_equal(both, pd.concat([pd.read_parquet(tmp_path / "a.parquet"),
                                                   pd.read_parquet(tmp_path / "b.parquet")],
                                                  ignore_index=True))


# ------------------------------------------------------------------------------- cluster
class KillOnce(distributed.WorkerPlugin):
    """SIGKILL the worker process that starts the ``nth`` range of a run, once (a marker
    file makes it once across workers and restarts), ``delay`` s into the task."""

    name = "kill-once"

    def __init__(self, marker, prefix, nth=2, delay=0.3):
        self.marker, self.prefix, self.nth, self.delay = str(marker), prefix, nth, delay

    def transition(self, key, start, finish, **kwargs):
        k = str(key)
        if finish != "executing" or not k.startswith(self.prefix) \
                or not k.endswith(f"-{self.nth}"):
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        t = threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGKILL))
        t.daemon = True
        t.start()


@pytest.fixture(scope="module")
def cluster():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "WAFERTK_TF_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR,
                                  env=env) as c, distributed.Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def single(files, tmp_path_factory):
    """The single-process two-phase run of part-a.h5 (the reference)."""
    if not HAS_MODELS:
        pytest.skip("shipped models not present")
    from wafertk.inspect import classify

    out = tmp_path_factory.mktemp("single") / "out"
    classify(files[1], out, batch_size=16)
    return out


@pytest.mark.tf
def test_cluster_classify_identical_to_one_process(files, single, cluster, tmp_path):
    _, a, _ = files
    _, client = cluster
    res = inspect_files(a, tmp_path / "out", batch_size=16, scheduler=client,
                        rows_per_range=32)
    got = (tmp_path / "out" / "predictions.csv").read_bytes()
    assert got == (single / "predictions.csv").read_bytes()
    assert res.n_wafers == 90 and res.extra["ranges"] == 3 and res.extra["workers"] == 2
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    ref = json.loads((single / "run.json").read_text())
    for key in ("mode", "detector", "classifier", "threshold", "review_below", "wafers",
                "defective", "review"):
        assert run[key] == ref[key], key
    text = (tmp_path / "out" / "report.html").read_text()
    assert "<html" in text and "90" in text
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging folder or lock left


@pytest.mark.tf
def test_worker_killed_mid_run_loses_and_duplicates_nothing(files, single, cluster, tmp_path):
    _, a, _ = files
    c, client = cluster
    marker = tmp_path / "killed"
    client.register_plugin(KillOnce(marker, "wafertk-inspect", nth=2))
    try:
        inspect_files(a, tmp_path / "out", batch_size=16, scheduler=client, rows_per_range=16)
    finally:
        # teardown only: the killed worker's connection may close under the call (a race
        # with the nanny's restart); the plugin kills once anyway (its marker file)
        from distributed.comm.core import CommClosedError

        with contextlib.suppress(CommClosedError, OSError):
            client.unregister_worker_plugin("kill-once")
    assert marker.exists(), "no worker was killed"
    got = (tmp_path / "out" / "predictions.csv").read_bytes()
    assert got == (single / "predictions.csv").read_bytes()
    with contextlib.suppress(TimeoutError):  # the nanny restarts it (TensorFlow: seconds)
        client.wait_for_workers(2, timeout=60)


@pytest.mark.tf
def test_command_line_on_a_running_scheduler(files, single, cluster, tmp_path):
    """`wafertk classify 'dir/part-*.h5' --scheduler ADDRESS` in a real process: the rows of
    the files one after the other, the first file's exactly its single-process rows."""
    import csv
    import subprocess

    from wafertk.data import read_wafers

    d, a, b = files
    c, _ = cluster
    r = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "classify",
                        str(d / "part-*.h5"), "-o", str(tmp_path / "out"), "--batch-size", "16",
                        "--scheduler", c.scheduler_address], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.startswith(f"wrote {tmp_path / 'out'}: 150 wafers")
    got = (tmp_path / "out" / "predictions.csv").read_bytes()
    head = (single / "predictions.csv").read_bytes()
    assert got.startswith(head)  # part-a.h5's own single-process rows come first
    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        ids = [row["wafer_id"] for row in csv.DictReader(fh)]
    assert ids[90:] == read_wafers(b).wafer_id.astype(str).tolist()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["input"] == [str(a), str(b)] and run["scheduler"] == c.scheduler_address


def test_cluster_features_over_a_glob(files, cluster, tmp_path):
    d, a, b = files
    _, client = cluster
    extract_files([a, b], tmp_path / "ref.csv", "density,meta", batch_size=16)
    extract_files(str(d / "part-*.h5"), tmp_path / "dist.csv", "density,meta",
                  batch_size=16, scheduler=client, rows_per_range=32)
    assert (tmp_path / "dist.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_cluster_xgboost_training_matches_the_split_and_loads(files, cluster, tmp_path):
    from wafertk.baseline.train import XGBoostTrainConfig
    from wafertk.distributed import train_xgboost_files
    from wafertk.registry import load_model

    d, a, b = files
    _, client = cluster
    cfg = XGBoostTrainConfig(classes="all", feature_sets=["density", "radon"],
                             n_estimators=15, early_stopping_rounds=None, n_jobs=1)
    out = train_xgboost_files(str(d / "part-*.h5"), tmp_path / "xgb", cfg, scheduler=client,
                              batch_size=32)
    rep = json.loads((out / "report.json").read_text())
    assert rep["extra"]["trainer"] == "xgboost.dask"
    assert rep["extra"]["n_train"] + rep["extra"]["n_validation"] == 150
    model = load_model(out)
    from wafertk.data import read_wafers

    proba = model.predict_proba(read_wafers(b))
    assert proba.shape == (60, 9) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_unreachable_scheduler_is_one_error(files, tmp_path):
    from wafertk.distributed import connect

    with pytest.raises(WafertkError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass
