"""``wafertk features``: Parquet and CSV outputs with id/lot/label columns; one-line errors."""

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
    r = run("features", path, "-o", tmp_path / "all.parquet", "-q")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "all.parquet")
    assert any(c.startswith("gabor__") for c in df.columns) and len(df) == len(ws)


def test_features_errors(h5, tmp_path, one_line_error):
    path, _ = h5
    one_line_error(run("features", path, "-o", tmp_path / "x.parquet", "--set", "density,radom"),
              "unknown feature set 'radom'", "did you mean 'radon'")
    one_line_error(run("features", tmp_path / "missing.h5", "-o", tmp_path / "x.parquet"),
              "missing.h5", "no such file")
    assert not (tmp_path / "x.parquet").exists()
