"""Every fast feature path against its straightforward scikit-image/scipy reference,
column by column (wafertk.features.reference; the benchmark times the same pairs)."""

import numpy as np
import pytest

from wafertk.data.synthetic import make_wafers
from wafertk.features import (
    density_features,
    gabor_features,
    gabor_responses_reference,
    geometry_features,
    local_features,
    radon_features,
)
from wafertk.features._common import resized_fail_channel
from wafertk.features.reference import (
    density_features_ref,
    gabor_features_ref,
    gabor_responses_fft,
    geometry_features_ref,
    local_features_ref,
    radon_features_loop,
)

CLASSES = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Random", "Scratch", "Near-full",
           "none"]


@pytest.fixture(scope="module")
def ws():
    w = make_wafers(18, classes=CLASSES, shape_range=(12, 60), random_state=3)
    extra = [np.ones((1, 1), np.uint8), np.full((1, 5), 2, np.uint8),
             np.pad(np.full((3, 3), 2, np.uint8), 4, constant_values=1)]
    return list(w) + extra


def _per_column(fast, ref, rtol, atol):
    assert fast.shape == ref.shape
    for j in range(fast.shape[1]):
        np.testing.assert_allclose(fast[:, j], ref[:, j], rtol=rtol, atol=atol,
                                   err_msg=f"column {j}")


def test_fft_gabor_equals_skimage_gabor(ws):
    """The Gabor reference itself: skimage.filters.gabor's values, kernels built once."""
    for img in resized_fail_channel(ws[:4], 32):
        np.testing.assert_allclose(gabor_responses_fft(img, (0.05, 0.2), 2),
                                   gabor_responses_reference(img, (0.05, 0.2), 2), atol=1e-6)


@pytest.mark.parametrize("fast, ref, rtol, atol", [
    # float32 OpenCV filtering vs float64 FFT: rounding only
    (gabor_features, gabor_features_ref, 1e-4, 1e-6),
    (density_features, density_features_ref, 0, 1e-6),
    (radon_features, radon_features_loop, 1e-5, 1e-6),
    (geometry_features, geometry_features_ref, 1e-5, 1e-6),
    (local_features, local_features_ref, 1e-6, 1e-6),
], ids=["gabor", "density", "radon", "geometry", "local"])
def test_fast_path_equals_reference_per_column(ws, fast, ref, rtol, atol):
    a, b = fast(ws), ref(ws)
    assert np.isfinite(a).all() and np.abs(a).sum() > 0
    _per_column(a, b, rtol, atol)
