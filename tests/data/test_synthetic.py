import numpy as np
import pytest

from wafertk.data import WM811K_CLASSES
from wafertk.data.synthetic import make_wafer, make_wafers
from wafertk.errors import WafertkError


def test_every_pattern_on_varied_grids():
    ws = make_wafers(90, shape_range=(10, 80), random_state=0)
    assert sorted(set(ws.labels)) == sorted(WM811K_CLASSES)
    assert len({tuple(s) for s in ws.shapes}) > 1
    for m in ws:
        assert set(np.unique(m)) <= {0, 1, 2}
    assert len(set(ws.wafer_id)) == 90


def test_patterns_have_their_signature():
    def fail(p, **kw):
        return make_wafer(p, (61, 61), rng=0, noise=0, **kw) == 2

    yy, xx = np.mgrid[0:61, 0:61]
    r = np.hypot(yy - 30, xx - 30) / 30.5
    assert fail("Center")[r < 0.15].mean() > 0.7 and fail("Center")[r > 0.8].mean() == 0
    assert fail("Edge-Ring")[(r > 0.92) & (r <= 1)].mean() > 0.6
    assert fail("Edge-Ring")[r < 0.7].mean() == 0
    assert fail("Near-full")[r <= 1].mean() > 0.75
    assert 0 < fail("Scratch").sum() < 0.1 * (r <= 1).sum()
    assert not fail("none").any()


def test_reproducible_and_errors():
    a, b = make_wafers(12, random_state=4), make_wafers(12, random_state=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(WafertkError):
        make_wafer("Blob")
    with pytest.raises(WafertkError):
        make_wafers(3, classes=["Blob"])
