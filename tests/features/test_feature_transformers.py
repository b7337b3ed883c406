"""The scikit-learn contract of the feature transformers, the registry and extraction."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from wafertk.data.synthetic import make_wafers
from wafertk.errors import UnknownNameError, WafertkError
from wafertk.features import (
    FEATURE_SETS,
    DensityFeatures,
    FilterFeatures,
    GaborFeatures,
    GeometryFeatures,
    MetaFeatures,
    RadonFeatures,
    extract_features,
    feature_names,
    make_feature_union,
)

SMALL = {"gabor": {"frequencies": (0.2,), "orientations": 2, "size": 24},
         "filters": {"filters": ("sobel", "lbp", "ridge"), "size": 24}}


@pytest.fixture(scope="module")
def ws():
    return make_wafers(12, shape_range=(8, 30), random_state=0)


@pytest.mark.parametrize("name", list(FEATURE_SETS))
def test_transformer_contract(name, ws):
    t = FEATURE_SETS[name](**SMALL.get(name, {}))
    params = t.get_params()
    c = clone(t)
    assert c.get_params() == params and c is not t
    X = t.fit(ws).transform(ws)
    assert X.shape == (len(ws), t.n_features_out_) and X.dtype == np.float32
    assert np.isfinite(X).all()
    assert len(t.get_feature_names_out()) == X.shape[1]
    # a list of 2-D maps gives the same values as the WaferSet
    X2 = clone(t).fit_transform(list(ws))
    if name != "meta":  # meta uses the WaferSet's die_size column (equal here anyway)
        np.testing.assert_allclose(X, X2)


def test_params_stored_unchanged_and_checked_in_fit():
    t = GaborFeatures(frequencies=(0.7,))
    assert t.frequencies == (0.7,)  # no validation in __init__
    with pytest.raises(WafertkError):
        t.fit(None)
    with pytest.raises(UnknownNameError, match="did you mean 'ridge'"):
        FilterFeatures(filters=("ridg",)).fit(None)


def test_pipeline_and_feature_union(ws):
    union = FeatureUnion([("d", DensityFeatures()), ("r", RadonFeatures(n_points=5)),
                          ("g", GeometryFeatures()), ("m", MetaFeatures())])
    pipe = Pipeline([("features", union), ("scale", StandardScaler())])
    X = pipe.fit_transform(ws)
    names = union.get_feature_names_out()
    assert X.shape == (len(ws), len(names)) == (len(ws), 13 + 10 + 8 + 17)
    pipe2 = clone(pipe).set_params(features__r__n_points=3)
    assert pipe2.fit_transform(ws).shape[1] == len(names) - 4


def test_registry_union_and_unknown_set(ws):
    u = make_feature_union("density,radon", {"radon": {"n_points": 4}})
    assert [n for n, _ in u.transformer_list] == ["density", "radon"]
    with pytest.raises(UnknownNameError, match="did you mean 'radon'"):
        make_feature_union("density,radom")
    with pytest.raises(WafertkError):
        make_feature_union("density", {"gabor": {}})
    names = feature_names(["density", "geometry"])
    assert names[0] == "density__density_edge_top" and len(names) == 21


def test_extract_features_parallel_equals_serial(ws):
    sets = ["density", "radon", "geometry", "meta"]
    a = extract_features(ws, sets, n_jobs=1)
    b = extract_features(ws, sets, n_jobs=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (len(ws), len(feature_names(sets)))
