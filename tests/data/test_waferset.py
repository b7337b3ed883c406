import numpy as np
import pytest

from wafertk.data import WM811K_CLASSES, WaferSet, check_wafer_maps
from wafertk.errors import WafertkError


def _maps():
    return [np.ones((3, 4), np.uint8), np.full((5, 2), 2, np.uint8), np.zeros((1, 1), np.uint8)]


def test_from_maps_round_trip_and_defaults():
    ws = WaferSet.from_maps(_maps())
    assert len(ws) == 3
    for a, b in zip(ws, _maps(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(ws.wafer_id) == ["0", "1", "2"]
    np.testing.assert_array_equal(ws.die_size, [12, 10, 0])
    assert ws.labels is None and not ws.has_labels
    assert ws.class_names == WM811K_CLASSES


def test_from_fixed_array():
    arr = np.random.default_rng(0).integers(0, 3, size=(4, 6, 5))
    ws = WaferSet.from_maps(arr)
    assert ws.shapes.tolist() == [[6, 5]] * 4
    np.testing.assert_array_equal(ws[3], arr[3])


def test_take_slice_concat_keep_everything():
    ws = WaferSet.from_maps(_maps(), labels=["Center", "", "none"], lot=["a", "b", "c"],
                            extras={"orig_index": np.array([7, 8, 9])})
    t = ws.take([2, 0])
    assert t.lot.tolist() == ["c", "a"] and t.extras["orig_index"].tolist() == [9, 7]
    np.testing.assert_array_equal(t[1], _maps()[0])
    s = ws.slice(1, 3)
    np.testing.assert_array_equal(s[0], _maps()[1])
    c = WaferSet.concat([s, t])
    assert len(c) == 4 and c.labels.tolist() == ["", "none", "none", "Center"]
    np.testing.assert_array_equal(c[3], _maps()[0])
    assert ws.take(np.array([True, False, True])).lot.tolist() == ["a", "c"]
    assert len(ws.take([])) == 0


def test_label_codes_and_mask():
    ws = WaferSet.from_maps(_maps(), labels=["Center", "", "none"])
    assert ws.label_codes().tolist() == [0, -1, 8]
    assert ws.labeled_mask().tolist() == [True, False, True]
    with pytest.raises(WafertkError, match="unknown class 'none'"):
        ws.label_codes(["Center"])


@pytest.mark.parametrize(
    "maps, match",
    [
        ([np.full((2, 2), 3, np.uint8)], "outside"),
        ([np.ones((2, 2), np.float32)], "dtype float32"),
        ([np.ones(4, np.uint8)], "2-D"),
    ],
)
def test_bad_maps_rejected(maps, match):
    with pytest.raises(WafertkError, match=match):
        WaferSet.from_maps(maps)
    with pytest.raises(WafertkError, match=match):
        check_wafer_maps(maps)


def test_bad_columns_rejected():
    with pytest.raises(WafertkError, match="unknown class 'Blob'"):
        WaferSet.from_maps(_maps(), labels=["Blob", "", ""])
    with pytest.raises(WafertkError, match="lot has shape"):
        WaferSet.from_maps(_maps(), lot=["a"])
    with pytest.raises(WafertkError, match="offsets"):
        WaferSet(np.ones(5, np.uint8), np.array([0, 4]), np.array([[2, 2]]))
