"""``pretrained-knn``: ImageNet SqueezeNet features + kNN on real CIFAR-10 images; save/load,
the run machinery and the CLI, bad input."""

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from test_anomaly_cli import fails_before_tensorflow, wafertk

from wafertk.errors import ModelFileError, WafertkError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def weights(squeezenet_weights):
    return squeezenet_weights  # tests/conftest.py


@pytest.fixture(scope="module")
def folder(shared_data, tmp_path_factory):
    """A small image folder of real CIFAR-10 test images: 30 automobiles, 30 birds."""
    src = shared_data / "cifar10" / "test"
    out = tmp_path_factory.mktemp("imgs") / "cifar"
    for c in ("automobile", "bird"):
        (out / c).mkdir(parents=True)
        for p in sorted((src / c).iterdir())[:30]:
            shutil.copy(p, out / c / p.name)
    return out


@pytest.fixture(scope="module")
def fitted(weights, folder):
    from wafertk.anomaly.data import read_image_folder
    from wafertk.anomaly.pretrained_knn import PretrainedKNNDetector

    cars = read_image_folder(folder, classes=["automobile"]).x
    det = PretrainedKNNDetector(weights=weights, image_size=64, k=3, random_state=0)
    return det.fit(cars[:20])


def test_normal_images_score_lower(fitted, folder):
    """Fitted on 20 automobiles: the 10 unseen automobiles score below the 30 birds."""
    from wafertk.anomaly.data import read_image_folder

    imgs = read_image_folder(folder)
    held = (imgs.labels == "bird") | (np.arange(len(imgs)) % 30 >= 20)
    s = fitted.score_samples(imgs.x[held])
    assert roc_auc_score(imgs.labels[held] == "bird", s) > 0.75
    e = fitted.transform(imgs.x[:4])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert fitted.reference_.shape == (20, 512)  # SqueezeNet fire8: 512 channels
    assert fitted.predict(imgs.x[:3]).dtype == np.int64


def test_save_load_round_trip_without_the_weights_file(fitted, folder, tmp_path):
    from wafertk.anomaly.data import read_image_folder
    from wafertk.registry import load_model

    fitted.save(tmp_path / "m")
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["extra"]["model"] == "pretrained-knn"
    assert len(man["extra"]["state"]["weights_sha256"]) == 16
    params = dict(man["extra"]["params"], weights="/nowhere/gone.h5")  # weights moved away
    man["extra"]["params"] = params
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(man))
    back = load_model(tmp_path / "m", kind="anomaly-detector")
    x = read_image_folder(folder).x[:12]
    np.testing.assert_allclose(back.score_samples(x), fitted.score_samples(x), rtol=1e-5)
    assert back.threshold_ == fitted.threshold_
    (tmp_path / "m" / "model.keras").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelFileError, match="corrupt model file"):
        load_model(tmp_path / "m", kind="anomaly-detector")


def test_bad_input(weights, fitted):
    from wafertk.anomaly.pretrained_knn import PretrainedKNNDetector
    from wafertk.data.synthetic import make_wafers

    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    with pytest.raises(WafertkError, match="needs the backbone's pretrained weights"):
        PretrainedKNNDetector().fit(x)
    with pytest.raises(WafertkError, match="did you mean 'fire8_concat'"):
        PretrainedKNNDetector(weights=weights, layer="fire8_concta").fit(x)
    with pytest.raises(WafertkError, match="use features-knn for wafers"):
        fitted.score_samples(make_wafers(3, random_state=0))
    with pytest.raises(WafertkError, match="at least 2"):
        PretrainedKNNDetector(weights=weights).fit(x[:1])
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(WafertkError, match="NaN"):
        fitted.score_samples(x)


def test_cli_train_and_score(weights, folder, tmp_path):
    run = tmp_path / "run"
    r = wafertk("anomaly", "train", "--model", "pretrained-knn", folder, "--normal-class",
                "automobile", "--weights", weights, "--k", "3", "-o", run)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {run}: pretrained-knn on ") and "ROC AUC" in r.stdout
    man = json.loads((run / "manifest.json").read_text())
    assert man["extra"]["params"]["k"] == 3 and man["extra"]["config"]["model"]["weights"]
    r = wafertk("anomaly", "score", run, folder, "-o", tmp_path / "scores")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "scores" / "scores.csv").is_file()


def test_cli_errors_before_tensorflow(folder, tmp_path):
    fails_before_tensorflow("anomaly", "train", "--model", "pretrained-knn", folder,
                            "-o", tmp_path / "r", needles=("model.weights",))
    fails_before_tensorflow("anomaly", "train", "--model", "pretrained-knn", folder,
                            "--weights", tmp_path / "missing.h5", "-o", tmp_path / "r",
                            needles=("missing.h5", "no such file"))
    assert not (tmp_path / "r").exists()
