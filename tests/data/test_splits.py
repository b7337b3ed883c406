import numpy as np
import pytest

from wafertk.data.splits import class_balance, class_weights, lot_stratified_split
from wafertk.errors import WafertkError


def _data(seed=0, n_lots=400):
    rng = np.random.default_rng(seed)
    lots, labels = [], []
    classes = np.array(["none", "Center", "Edge-Ring", "Scratch", "Near-full"])
    p = np.array([0.7, 0.12, 0.12, 0.05, 0.01])
    for lot in range(n_lots):
        k = rng.integers(5, 26)
        lots += [f"L{lot}"] * k
        labels += list(rng.choice(classes, size=k, p=p))
    return np.array(labels), np.array(lots)


def test_no_lot_in_two_parts_and_everything_assigned():
    y, g = _data()
    parts = lot_stratified_split(y, g, random_state=3)
    assert sum(len(p) for p in parts) == len(y)
    assert len(np.unique(np.concatenate(parts))) == len(y)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(g[parts[i]]) & set(g[parts[j]])


def test_stratified_and_sized():
    y, g = _data()
    parts = lot_stratified_split(y, g, (0.6, 0.2, 0.2), random_state=0)
    for p, f in zip(parts, (0.6, 0.2, 0.2), strict=True):
        assert abs(len(p) / len(y) - f) < 0.02
        for c in np.unique(y):
            share = (y[p] == c).mean()
            assert abs(share - (y == c).mean()) < 0.02, c
    # every part gets some of the rarest class
    assert all((y[p] == "Near-full").any() for p in parts)


def test_reproducible_from_seed():
    y, g = _data()
    a = lot_stratified_split(y, g, random_state=5)
    b = lot_stratified_split(y, g, random_state=5)
    c = lot_stratified_split(y, g, random_state=6)
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_split_errors():
    with pytest.raises(WafertkError, match="sum to 1"):
        lot_stratified_split(["a"], ["x"], (0.5, 0.2))
    with pytest.raises(WafertkError, match="cannot fill"):
        lot_stratified_split(["a", "b"], ["x", "x"], (0.5, 0.5))
    with pytest.raises(WafertkError, match="empty"):
        lot_stratified_split([], [], (0.5, 0.5))


def test_class_balance_and_weights():
    df = class_balance(["a", "a", "b", ""], ["b", "a", "c"])
    assert df["class"].tolist() == ["b", "a", "c", "(unlabeled)"]
    assert df["count"].tolist() == [1, 2, 0, 1]
    w = class_weights([0, 0, 0, 1], n_classes=3)
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == 0
    assert class_weights([0, 1, 1, 1], max_weight=1.5)[0] == 1.5
