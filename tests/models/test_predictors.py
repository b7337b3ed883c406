"""Loaded CNN predictors: test-time augmentation (D4 averaging) and its manifest setting."""

import json

import numpy as np
import pytest

from wafertk.data import WaferSet
from wafertk.errors import ModelFileError, WafertkError

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def detector_folder(tmp_path_factory):
    from wafertk.models.cnn import build_wafer_cnn_detector
    from wafertk.models.manifest import Manifest, write_manifest

    folder = tmp_path_factory.mktemp("det")
    m = build_wafer_cnn_detector((16, 16, 3), conv_filters=(4, 8), dense_units=8, seed=3)
    m.save(folder / "model.keras")
    write_manifest(folder, Manifest(kind="cnn-detector", model_file="model.keras",
                                    classes=["good", "defective"], input_size=16,
                                    extra={"threshold": 0.5}))
    return folder


def _square_wafers(n=12, seed=0):
    # 16x16 maps: resizing to the input size is the identity, so transforms commute with it
    rng = np.random.default_rng(seed)
    maps = rng.integers(1, 3, (n, 16, 16)).astype(np.uint8)
    maps[:, :3, :3] = 0  # an asymmetric no-die corner: rotations really change the map
    return maps


def test_d4_average_is_invariant_under_rotations_and_flips(detector_folder):
    from wafertk.models.predictors import TTA_TRANSFORMS, load_cnn_predictor, transform_maps

    det = load_cnn_predictor(detector_folder)
    assert det.tta == "none"
    maps = _square_wafers()
    plain = det.predict_proba(WaferSet.from_maps(maps))[:, 1]
    turned = det.predict_proba(WaferSet.from_maps(np.rot90(maps, 1, axes=(1, 2))))[:, 1]
    assert not np.allclose(plain, turned, atol=1e-6)  # the bare network is not invariant
    det.tta = "d4"
    base = det.predict_proba(WaferSet.from_maps(maps))
    for k, mirror in TTA_TRANSFORMS["d4"]:
        other = det.predict_proba(WaferSet.from_maps(transform_maps(maps, k, mirror)))
        np.testing.assert_allclose(other, base, atol=1e-5)
    # the average is over exactly the listed transforms, before calibration
    raw = np.mean([det.model(keras.ops.one_hot(transform_maps(maps, k, f).astype("int32"), 3),
                             training=False) for k, f in TTA_TRANSFORMS["d4"]], axis=0)
    np.testing.assert_allclose(det.forward((maps,)), raw, atol=1e-5)


def test_tta_from_manifest_and_bad_values(detector_folder, tmp_path):
    import shutil

    from wafertk.models.predictors import CnnPredictor, load_cnn_predictor

    folder = tmp_path / "det"
    shutil.copytree(detector_folder, folder)
    man = json.loads((folder / "manifest.json").read_text())
    man["extra"]["tta"] = "rot4"
    (folder / "manifest.json").write_text(json.dumps(man))
    det = load_cnn_predictor(folder)
    assert det.tta == "rot4" and "rot4" in repr(det)
    with pytest.raises(WafertkError, match="unknown test-time augmentation 'd8'"):
        CnnPredictor(det.model, det.manifest, tta="d8")
    man["extra"]["tta"] = "spin"
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="extra.tta 'spin'"):
        load_cnn_predictor(folder)
