"""``wafertk train xgboost`` and ``wafertk evaluate`` end to end on a tiny synthetic file."""

import json

import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import WaferSet, write_wafers
from wafertk.data.synthetic import make_wafers


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    ws = make_wafers(180, n_lots=18, shape_range=(15, 35), random_state=0)
    return write_wafers(ws, tmp_path_factory.mktemp("x") / "train.h5")


def test_train_and_evaluate(h5, tmp_path):
    cfg = tmp_path / "xgb.yaml"
    cfg.write_text("feature_sets: [density, radon, geometry, meta]\nn_estimators: 10\n"
                   "early_stopping_rounds: 4\nn_jobs: 1\n")
    out = tmp_path / "xgb"
    r = run("train", "xgboost", "--data", h5, "-o", out, "--config", cfg, "--seed", 1)
    assert r.exit_code == 0, r.output
    assert "validation accuracy" in r.stdout
    for f in ("model.json", "manifest.json", "config.yaml", "report.json", "report.html"):
        assert (out / f).is_file()
    assert "seed: 1" in (out / "config.yaml").read_text()
    man = json.loads((out / "manifest.json").read_text())
    assert man["classes"] == ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Random",
                              "Scratch", "Near-full"]
    rep = tmp_path / "rep"
    r = run("evaluate", "--model", out, h5, "-o", rep)
    assert r.exit_code == 0, r.output
    res = json.loads((rep / "report.json").read_text())
    assert res["extra"]["skipped_other_class"] == 20  # the "none" wafers
    assert res["metrics"]["n"] == 160 and (rep / "confusion_matrix.png").is_file()


def test_train_all_classes(h5, tmp_path):
    cfg = tmp_path / "xgb.yaml"
    cfg.write_text("feature_sets: [density, meta]\nn_estimators: 3\nn_jobs: 1\n")
    r = run("train", "xgboost", "--data", h5, "-o", tmp_path / "m", "--config", cfg,
            "--classes", "all")
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "m" / "manifest.json").read_text())["classes"]) == 9


def test_errors(h5, tmp_path, one_line_error):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("n_estimator: 3\n")
    one_line_error(run("train", "xgboost", "--data", h5, "-o", tmp_path / "m", "--config", cfg),
              "unknown key 'n_estimator'", "did you mean 'n_estimators'")
    one_line_error(run("evaluate", "--model", tmp_path / "nope", h5, "-o", tmp_path / "r"),
              "no such model")
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    (folder / "manifest.json").write_text(json.dumps({
        "format": "wafertk-model/1", "kind": "xgboost-classifier", "model_file": "model.json",
        "classes": ["a", "b"]}))
    one_line_error(run("evaluate", "--model", folder, h5, "-o", tmp_path / "r"), str(folder))
    unl = write_wafers(WaferSet.from_maps(make_wafers(3, random_state=0).maps),
                       tmp_path / "unl.h5")
    model = tmp_path / "m2"
    cfg2 = tmp_path / "ok.yaml"
    cfg2.write_text("feature_sets: [density]\nn_estimators: 2\nn_jobs: 1\n")
    assert run("train", "xgboost", "--data", h5, "-o", model, "--config", cfg2).exit_code == 0
    one_line_error(run("evaluate", "--model", model, unl, "-o", tmp_path / "r"),
              "no labels to evaluate against")
