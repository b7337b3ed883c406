"""Temperature scaling and recall-targeted thresholds (wafertk.models.calibration)."""

import numpy as np
import pytest

from wafertk.errors import WafertkError
from wafertk.models.calibration import (
    apply_temperature,
    fit_temperature,
    logits_from_proba,
    nll,
    threshold_for_recall,
)


def test_temperature_lowers_nll_of_overconfident_toy():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    true_logits = rng.normal(0, 1, (n, k))
    true_logits[np.arange(n), y] += 1.0
    over = true_logits * 5  # over-confident by a factor 5
    t = fit_temperature(over, y)
    assert t > 2
    assert nll(over, y, t) < nll(over, y, 1.0)
    # binary logits too
    yb = rng.integers(0, 2, n)
    zb = (yb * 2 - 1) * 0.5 + rng.normal(0, 1, n)
    tb = fit_temperature(zb * 6, yb)
    assert nll(zb * 6, yb, tb) < nll(zb * 6, yb, 1.0)


def test_apply_temperature_and_logits_invert():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(apply_temperature(logits_from_proba(p), 1.0), p, atol=1e-6)
    rows = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(apply_temperature(logits_from_proba(rows), 1.0), rows, atol=1e-6)


def test_threshold_meets_target_recall_and_is_highest():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    score = np.clip(y * 0.4 + rng.random(1000) * 0.6, 0, 1)
    for target in (0.5, 0.9, 0.97, 1.0):
        thr = threshold_for_recall(y, score, target)
        recall = (score[y == 1] >= thr).mean()
        assert recall >= target
        higher = np.nextafter(thr, 2)
        assert (score[y == 1] >= higher).mean() < target
    with pytest.raises(WafertkError):
        threshold_for_recall(y, score, 0)


def test_models_do_not_import_training():
    """Layers point down: the model layer (calibration included) never imports training."""
    import subprocess
    import sys

    code = ("import sys, wafertk.models, wafertk.models.predictors, wafertk.models.calibration, "
            "wafertk.registry\nprint('wafertk.training' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
