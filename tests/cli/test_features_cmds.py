"""``wafertk features``: Parquet and CSV outputs with id/lot/label columns; one-line errors."""

import contextlib
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    ws = make_wafers(10, shape_range=(8, 24), random_state=0)
    return write_wafers(ws, tmp_path_factory.mktemp("f") / "w.h5"), ws


@pytest.mark.parametrize("name", ["feat.parquet", "feat.csv"])
def test_features_parquet_and_csv(h5, tmp_path, name):
    path, ws = h5
    out = tmp_path / name
    r = run("features", path, "-o", out, "--set", "density,geometry,meta", "--batch-size", 3,
            "--jobs", 2)
    assert r.exit_code == 0, r.output
    assert re.fullmatch(rf"wrote {re.escape(str(out))}: 10 wafers x 38 features in \d+\.\d s",
                        r.stdout.strip()), r.stdout
    df = pd.read_csv(out, keep_default_na=False) if name.endswith(".csv") \
        else pd.read_parquet(out)
    assert list(df.columns[:3]) == ["wafer_id", "lot", "label"]
    assert len(df) == len(ws) and len(df.columns) == 3 + 13 + 8 + 17
    assert df["wafer_id"].tolist() == list(ws.wafer_id)
    assert df["label"].tolist() == list(ws.labels)
    assert np.isfinite(df.iloc[:, 3:].to_numpy(float)).all()
    assert not list(tmp_path.glob(".*tmp"))


def test_features_default_sets(h5, tmp_path):
    path, ws = h5
    r = run("features", path, "--out", tmp_path / "all.parquet", "-q")
    assert r.exit_code == 0, r.output
    assert r.output == ""
    df = pd.read_parquet(tmp_path / "all.parquet")
    assert any(c.startswith("gabor__") for c in df.columns) and len(df) == len(ws)


def test_features_errors(h5, tmp_path, one_line_error):
    path, _ = h5
    one_line_error(run("features", path, "-o", tmp_path / "x.parquet", "--set", "density,radom"),
              "unknown feature set 'radom'", "did you mean 'radon'")
    one_line_error(run("features", tmp_path / "missing.h5", "-o", tmp_path / "x.parquet"),
              "missing.h5", "no such file")
    assert not (tmp_path / "x.parquet").exists()


def _features_process(*args):
    return subprocess.run([sys.executable, "-m", "wafertk.cli.main", "features",
                           *map(str, args)], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},
                          capture_output=True, text=True)


def _one_line(p, *needles):
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), p.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert ".tmp" not in lines[0] and "Traceback" not in p.stderr and p.stdout == ""


def test_output_is_an_existing_folder(h5, tmp_path):
    """Old code: the complete temporary table was left beside the folder and the message named
    the temporary path."""
    path, _ = h5
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    p = _features_process(path, "-o", folder, "--set", "density")
    _one_line(p, f"wafertk: error: {folder}: is a folder")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]
    assert sorted(x.name for x in folder.iterdir()) == ["keep.txt"]


@contextlib.contextmanager
def _read_only(folder):
    """``folder`` made unwritable (chmod; and chattr +i where running as root)."""
    os.chmod(folder, 0o555)
    immutable = False
    try:
        if os.geteuid() == 0:
            immutable = subprocess.run(["chattr", "+i", str(folder)],
                                       capture_output=True).returncode == 0
        if os.access(folder, os.W_OK):
            pytest.skip("cannot make a folder read-only here (root without chattr)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, 0o755)


def test_read_only_output_folder(h5, tmp_path):
    """Old code: the message named the already-deleted staging file (.x.parquet.*.tmp)."""
    path, _ = h5
    folder = tmp_path / "ro"
    folder.mkdir()
    with _read_only(folder):
        p = _features_process(path, "-o", folder / "x.parquet", "--set", "density")
        _one_line(p, f"wafertk: error: {folder / 'x.parquet'}: ", f"{folder} is not writable")
        assert list(folder.iterdir()) == []
