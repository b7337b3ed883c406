"""``wafertk train xgboost`` and ``wafertk evaluate`` end to end on a tiny synthetic file."""

import json

import numpy as np
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
    r = run("train", "xgboost", "--data", h5, "--output", out, "--config", cfg, "--seed", 1,
            "--split-seed", 2)
    assert r.exit_code == 0, r.output
    (line,) = r.stdout.strip().splitlines()
    assert line.startswith(f"wrote {out}: xgboost, validation accuracy") and " s" in line
    for f in ("model.json", "manifest.json", "config.yaml", "report.json", "report.html"):
        assert (out / f).is_file()
    resolved = (out / "config.yaml").read_text().splitlines()
    assert "seed: 1" in resolved and "split_seed: 2" in resolved
    man = json.loads((out / "manifest.json").read_text())
    assert man["classes"] == ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Random",
                              "Scratch", "Near-full"]
    rep = tmp_path / "rep"
    r = run("evaluate", "--model", out, h5, "--out", rep)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {rep}: 160 wafers, accuracy")
    assert run("evaluate", "--model", out, h5, "-o", tmp_path / "q", "-q").stdout == ""
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


def test_evaluate_accepts_shipped_model_names(h5, tmp_path, one_line_error):
    from wafertk.registry import SHIPPED_DIR

    if not (SHIPPED_DIR / "xgboost" / "model.json").is_file():
        pytest.skip("shipped XGBoost model not present")
    r = run("evaluate", "--model", "xgboost", h5, "-o", tmp_path / "rep", "--batch-size", 64)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert res["extra"]["model_kind"] == "xgboost-classifier" and res["metrics"]["n"] == 160
    one_line_error(run("evaluate", "--model", "xgbost", h5, "-o", tmp_path / "r2"),
                   "unknown model 'xgbost'", "did you mean 'xgboost'", "`wafertk models`")
    assert not (tmp_path / "r2").exists()


def test_paths_checked_before_anything(h5, tmp_path, one_line_error):
    one_line_error(run("evaluate", "--model", "xgboost", tmp_path, "-o", tmp_path / "r"),
                   str(tmp_path), "is a folder")
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(run("evaluate", "--model", "xgboost", h5, "-o", f), str(f),
                   "not a folder")
    one_line_error(run("train", "xgboost", "--data", tmp_path / "missing.h5", "-o",
                       tmp_path / "m"), "missing.h5", "no such file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("val_fraction: 2\nlearning_rate: -1\n")
    one_line_error(run("train", "xgboost", "--data", h5, "-o", tmp_path / "m", "--config", bad,
                       "--jobs", 1), f"{bad}: val_fraction: 2.0 is not in (0, 1)",
                   "learning_rate: -1.0 is not > 0")


def test_training_data_errors_name_the_file(tmp_path, one_line_error):
    ws = make_wafers(40, n_lots=8, random_state=0)
    ws.labels = None
    unl = write_wafers(ws, tmp_path / "unl.h5")
    one_line_error(run("train", "xgboost", "--data", unl, "-o", tmp_path / "m"), str(unl),
                   "no labeled wafers")
    one = make_wafers(40, n_lots=8, random_state=0)
    one.labels = np.array(["Center"] * 20 + ["none"] * 20, dtype=object)
    path = write_wafers(one, tmp_path / "one.h5")
    one_line_error(run("train", "xgboost", "--data", path, "-o", tmp_path / "m"), str(path),
                   "at least two of the classes")
    assert not (tmp_path / "m").exists()
