"""Gabor bank: the OpenCV fast path equals skimage.filters.gabor; shapes and names."""

import numpy as np
import pytest

from wafertk.data.synthetic import make_wafers
from wafertk.errors import WafertkError
from wafertk.features import gabor_features, gabor_responses, gabor_responses_reference
from wafertk.features._common import resized_fail_channel
from wafertk.features.gabor import gabor_feature_names


@pytest.mark.parametrize("freq", [0.2, 0.3])
def test_opencv_matches_skimage(freq):
    ws = make_wafers(4, classes=["Scratch", "Donut", "Edge-Loc", "Random"], random_state=0)
    for img in resized_fail_channel(ws, 32):
        fast = gabor_responses(img, [freq], 3)
        ref = gabor_responses_reference(img, [freq], 3)
        assert fast.shape == ref.shape == (3, 32, 32)
        assert np.corrcoef(fast.ravel(), ref.ravel())[0, 1] > 0.9999
        np.testing.assert_allclose(fast, ref, atol=1e-5)


def test_features_shape_names_and_no_fail_zero():
    maps = [np.ones((10, 12), np.uint8), np.full((7, 7), 2, np.uint8)]
    X = gabor_features(maps, (0.1, 0.2), 2, size=16)
    assert X.shape == (2, 2 * 2 * 4) == (2, len(gabor_feature_names((0.1, 0.2), 2)))
    assert np.all(X[0] == 0) and np.isfinite(X).all() and X[1].max() > 0


def test_accepts_resized_stack_and_rejects_bad_bank():
    stack = np.zeros((3, 16, 16), np.uint8)
    stack[1, 4:8, 4:8] = 2
    assert gabor_features(stack, (0.2,), 2, size=16).shape == (3, 8)
    with pytest.raises(WafertkError):
        gabor_features(stack, (0.9,), 2, size=16)
    with pytest.raises(WafertkError):
        gabor_features(stack, (0.2,), 0, size=16)
