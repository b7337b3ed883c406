import json

import pytest

from wafertk.errors import ModelFileError
from wafertk.models import Manifest, load_manifest, load_predictor, write_manifest


def _model(tmp_path, kind="xgboost-classifier"):
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.json").write_text("{}")
    write_manifest(d, Manifest(kind=kind, model_file="model.json", classes=["a", "b"]))
    return d


def test_manifest_round_trip(tmp_path):
    d = _model(tmp_path)
    man = load_manifest(d, "xgboost-classifier")
    assert man.classes == ["a", "b"] and man.versions["wafertk"] and man.created
    assert load_manifest(d / "manifest.json").kind == "xgboost-classifier"


def test_manifest_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such model"):
        load_manifest(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no manifest.json"):
        load_manifest(tmp_path / "empty")
    d = _model(tmp_path)
    with pytest.raises(ModelFileError, match="wrong kind"):
        load_manifest(d, "cnn-detector")
    (d / "model.json").unlink()
    with pytest.raises(ModelFileError, match="'model.json' is missing"):
        load_manifest(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_manifest(d)
    (d / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelFileError, match="unknown manifest format"):
        load_manifest(d)


def test_unknown_kind(tmp_path):
    d = _model(tmp_path, kind="mystery")
    with pytest.raises(ModelFileError, match="unknown model kind 'mystery'"):
        load_predictor(d)
