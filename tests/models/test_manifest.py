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


@pytest.mark.parametrize("field, value, needle", [
    ("input_size", "abc", "input_size must be a positive integer or null, got 'abc'"),
    ("input_size", 0, "input_size"),
    ("extra", "oops", "extra must be a mapping, got 'oops'"),
    ("classes", "ab", "classes must be a non-empty list of distinct strings"),
    ("classes", ["a", 1], "classes must be"),
    ("classes", [], "classes must be"),
    ("extra", {"threshold": "high"}, "extra.threshold must be a number in [0, 1], got 'high'"),
    ("extra", {"threshold": 1.5}, "extra.threshold"),
    ("extra", {"temperature": 0}, "extra.temperature must be a number > 0, got 0"),
    ("extra", {"temperature": -2.0}, "extra.temperature"),
    ("extra", {"review_below": [1]}, "extra.review_below"),
    ("kind", 3, "kind must be a string"),
    ("model_file", "../model.json", "model_file must be a file name inside the folder"),
    ("preprocessing", [], "preprocessing must be a mapping"),
])
def test_manifest_values_of_the_wrong_type_name_the_manifest(tmp_path, field, value, needle):
    d = _model(tmp_path)
    data = json.loads((d / "manifest.json").read_text())
    data[field] = value
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError) as err:
        load_manifest(d)
    assert str(err.value).startswith(f"{d / 'manifest.json'}: invalid manifest: ")
    assert needle in str(err.value)


def test_manifest_not_an_object_or_missing_fields(tmp_path):
    d = _model(tmp_path)
    (d / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="not a JSON object"):
        load_manifest(d)
    (d / "manifest.json").write_text(json.dumps({"format": "wafertk-model/1", "kind": "x"}))
    with pytest.raises(ModelFileError, match="missing fields"):
        load_manifest(d)
    (d / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_manifest(d)


def test_shipped_manifests_are_valid():
    from wafertk.registry import list_shipped

    for s in list_shipped():
        assert s.manifest().classes
