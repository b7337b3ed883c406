"""The one registry: architectures, loaders, shipped models; one test over every entry."""

import shutil

import numpy as np
import pytest

from wafertk import registry
from wafertk.data.synthetic import make_wafers
from wafertk.errors import ModelFileError, UnknownNameError, WafertkError
from wafertk.registry import (
    create_model,
    get_entry,
    list_models,
    list_shipped,
    load_model,
    register_model,
    resolve_model,
)

#: small build arguments per family, for the test over every architecture
TINY = {
    "wafer-cnn": {"input_shape": (16, 16, 3), "conv_filters": (4,), "dense_units": 4},
    "wafer-transfer": {"input_shape": (36, 36, 3), "dense_units": 4},  # SqueezeNet: >= 35
    "baseline": {"feature_sets": ["density"], "n_estimators": 2, "n_jobs": 1},
    "image": {"input_shape": (75, 75, 3), "n_classes": 3},  # 75: Inception's smallest
}


def test_builtin_entries_listed_without_importing_them():
    names = [e.name for e in list_models()]
    assert {"wafer_cnn_detector", "wafer_cnn_classifier", "xgboost_baseline"} <= set(names)
    assert [e.name for e in list_models("wafer_cnn_*")] == [
        "wafer_cnn_classifier", "wafer_cnn_detector"]
    assert {s.name for s in list_shipped()} == {"detector", "detector-fast", "classifier",
                                                "xgboost", "ensemble"}


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean 'wafer_cnn_detector'"):
        get_entry("wafer_cnn_detectr")
    with pytest.raises(UnknownNameError, match="did you mean 'xgboost'.*`wafertk models`"):
        load_model("xgbost")
    with pytest.raises(UnknownNameError, match="unknown model 'nothing'"):
        resolve_model("nothing")


def test_register_conflict_and_load():
    register_model("test_entry", "test", "wafertk.data.synthetic:make_wafer", "x")
    assert get_entry("test_entry").load().__name__ == "make_wafer"
    with pytest.raises(ValueError, match="already registered"):
        register_model("test_entry", "test", "os:path")
    registry._ARCHITECTURES.pop("test_entry")


def test_names_and_paths(tmp_path, monkeypatch):
    assert resolve_model("detector") == registry.SHIPPED_DIR / "detector"
    # an existing path wins over a shipped name; a path-like string stays a path
    (tmp_path / "detector").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("detector") == tmp_path.joinpath("detector").relative_to(tmp_path)
    with pytest.raises(ModelFileError, match="no such model"):
        load_model("./missing")


def test_kind_checked_and_unknown_kind(tmp_path):
    from wafertk.models.manifest import Manifest, write_manifest

    with pytest.raises(ModelFileError, match="wrong kind"):
        load_model("xgboost", kind=("cnn-detector", "cnn-classifier"))
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.bin").write_bytes(b"x")
    write_manifest(d, Manifest(kind="mystery", model_file="model.bin", classes=["a", "b"]))
    with pytest.raises(ModelFileError, match="unknown model kind 'mystery'"):
        load_model(d)


@pytest.mark.tf
@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_every_architecture_builds(name):
    """timm's common test: every registered architecture builds and runs on tiny input."""
    entry = get_entry(name)
    ws = make_wafers(24, n_lots=6, random_state=0)
    if entry.family == "anomaly":
        _check_anomaly_architecture(name, ws)
        return
    model = create_model(name, **TINY[entry.family])
    if entry.family == "image":
        out = np.asarray(model(np.zeros((2, 75, 75, 3), np.float32), training=False))
        assert out.shape == (2, 3) and np.isfinite(out).all()
        assert entry.kind == "image-classifier"
    elif entry.family in ("wafer-cnn", "wafer-transfer"):
        from wafertk.data.preprocess import die_metadata, one_hot, resize_maps

        x = one_hot(resize_maps(ws, TINY[entry.family]["input_shape"][0]))
        feed = x if len(model.inputs) == 1 else {"maps": x, "meta": die_metadata(ws)}
        out = np.asarray(model(feed, training=False))
        assert out.shape[0] == len(ws) and np.isfinite(out).all()
        assert entry.kind == ("cnn-detector" if out.shape[1] == 1 else "cnn-classifier")
    else:
        proba = model.fit(ws).predict_proba(ws)
        assert proba.shape[0] == len(ws)
        np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)


def _check_anomaly_architecture(name, ws):
    tiny = {"conv_filters": (4, 8), "input_size": 16, "batch_size": 8, "epochs": 1,
            "random_state": 0}
    if name == "anomaly_features_knn":
        model = create_model(name, feature_sets=["density", "meta"], k=3).fit(ws)
    elif name == "anomaly_pretrained_knn":  # images, a real backbone: tests/anomaly
        x = np.random.default_rng(0).random((6, 40, 40, 3), dtype=np.float32)
        model = create_model(name, backbone="squeezenet", image_size=40, k=2)
        with pytest.raises(WafertkError, match="needs the backbone's pretrained weights"):
            model.fit(x)
        assert get_entry(name).kind == "anomaly-detector"
        return
    elif name.startswith("anomaly_latent"):
        enc = create_model("anomaly_vae", latent_dim=4, **tiny).fit(ws)
        model = create_model(name, encoder=enc, random_state=0, n_estimators=5)
        if name == "anomaly_latent_classifier":
            model.fit(ws, ws.label_strings())
        else:
            model.fit(ws)
    else:
        extra = {"centre_weight": 1.0} if name == "anomaly_ocvae" else {}
        model = create_model(name, **tiny, **extra).fit(ws)
    s = model.score_samples(ws)
    assert s.shape == (len(ws),) and np.isfinite(s).all()
    assert get_entry(name).kind == "anomaly-detector"


@pytest.mark.tf
@pytest.mark.parametrize("name", [s.name for s in list_shipped()])
def test_every_shipped_model_loads_by_name_and_predicts(name, tmp_path):
    shipped = {s.name: s for s in list_shipped()}[name]
    pred = load_model(name)
    ws = make_wafers(5, random_state=1)
    proba = pred.predict_proba(ws)
    assert proba.shape == (5, len(pred.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert shipped.manifest().kind == pred.manifest.kind
    # the same folder by path loads the same model
    copy = shutil.copytree(shipped.path, tmp_path / name)
    np.testing.assert_allclose(load_model(copy).predict_proba(ws), proba, rtol=1e-6)
