"""Ensembles of pattern classifiers: the weighted mean, its folder, loading, use and errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.data import read_wafers
from wafertk.errors import ModelFileError, WafertkError

pytestmark = pytest.mark.tf

FIXTURE = Path(__file__).parents[1] / "fixtures" / "all_classes.h5"


@pytest.fixture(scope="module")
def wafers():
    ws = read_wafers(FIXTURE)
    return ws.take(np.flatnonzero(ws.label_strings() != "none")[:60])


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    from wafertk.models.ensemble import build_ensemble

    out = tmp_path_factory.mktemp("ens") / "cnn+xgb"
    build_ensemble(["classifier", "xgboost"], out, weights=[3, 1])
    return out


def test_weighted_mean_of_the_members(ensemble, wafers):
    from wafertk.registry import load_model

    ens = load_model(ensemble, kind="ensemble-classifier")
    cnn, xgb = load_model("classifier"), load_model("xgboost")
    np.testing.assert_allclose(ens.weights_, [0.75, 0.25])
    want = 0.75 * cnn.predict_proba(wafers) + 0.25 * xgb.predict_proba(wafers)
    np.testing.assert_allclose(ens.predict_proba(wafers), want, atol=1e-6)
    assert list(ens.predict(wafers)) == list(np.asarray(ens.classes_)[want.argmax(1)])
    # self-contained: the members were copied in
    members = json.loads((ensemble / "members.json").read_text())["members"]
    assert [m["kind"] for m in members] == ["cnn-classifier", "xgboost-classifier"]
    assert all((ensemble / m["path"] / "manifest.json").is_file() for m in members)


def test_calibrated_ensemble_drives_two_phase_classify(ensemble, tmp_path):
    from wafertk.calibrate import calibrate_model
    from wafertk.inspect import classify
    from wafertk.registry import load_model

    res = calibrate_model(ensemble, FIXTURE, tmp_path / "cal", max_error=0.1)
    ens = load_model(tmp_path / "cal", kind="ensemble-classifier")
    assert ens.temperature == pytest.approx(res.changes["temperature"][1])
    assert ens.review_below == res.changes["review level"][1]
    res = classify(FIXTURE, tmp_path / "out", classifier=tmp_path / "cal")
    rows = res.predictions.read_text().splitlines()
    assert len(rows) == 1 + len(read_wafers(FIXTURE)) == 1 + res.n_wafers
    run = json.loads((res.out_dir / "run.json").read_text())
    assert "ensemble-classifier" in json.dumps(run)


def test_bad_ensembles(ensemble, tmp_path):
    import shutil

    from wafertk.models.ensemble import build_ensemble
    from wafertk.registry import load_model

    with pytest.raises(WafertkError, match="at least two"):
        build_ensemble(["classifier"], tmp_path / "e")
    with pytest.raises(WafertkError, match="wrong kind"):
        build_ensemble(["classifier", "detector"], tmp_path / "e")
    with pytest.raises(WafertkError, match="one non-negative weight per member"):
        build_ensemble(["classifier", "xgboost"], tmp_path / "e", weights=[1, -1])
    assert not (tmp_path / "e").exists()
    bad = tmp_path / "bad"
    shutil.copytree(ensemble, bad)
    members = json.loads((bad / "members.json").read_text())
    members["members"][1]["path"] = "../../elsewhere"
    (bad / "members.json").write_text(json.dumps(members))
    with pytest.raises(ModelFileError, match="outside the ensemble folder"):
        load_model(bad)
    (bad / "members.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="malformed ensemble member list"):
        load_model(bad)


def test_ensemble_cli(tmp_path):
    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["ensemble", "classifier", "xgboost", "--weight", "1",
                                 "-o", str(tmp_path / "e")])
    assert r.exit_code == 2 and "--weight given 1 times for 2 members" in r.stderr
    assert not (tmp_path / "e").exists()
    r = CliRunner().invoke(cli, ["ensemble", "classifier", "xgboost", "-o", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {tmp_path / 'e'}: classifier x 0.50, xgboost x 0.50")
