"""The WM-811K wafer sets of the anomaly benchmarks, drawn one way for every script.

``anomaly_wafers.py``, ``anomaly_wafers_baselines.py`` and ``anomaly_knn_trim.py`` score the
production test (the seeded lot-disjoint 25 % of Test A lots,
:func:`wafertk.data.splits.production_test_lots`) and train on

* setting (a): the ``none`` wafers of the shipped models' training data (the Training
  partition + the Test A lots outside the production test and the demo sample), outside a
  seeded 20 % of its lots kept for validation;
* setting (b): ``wm811k_unlabeled_200k.npz``, no labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wafertk.anomaly.features_knn import FeatureKNNDetector

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "wm811k"


def subsample(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random ``k`` of ``n`` rows (all of them if ``k`` is None
    or ``n <= k``)."""
    if k is None or n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


@dataclass
class ProductionTest:
    """Test A, its production-test mask, and the production test with its truth."""

    test_a: object
    prod: np.ndarray
    test: object
    y: np.ndarray


def production_test(max_test: int | None = None, seed: int = 0) -> ProductionTest:
    """The production test (optionally a seeded subsample); ``y`` = defective (not none)."""
    from wafertk.data.importers import read_npz_pack
    from wafertk.data.splits import production_test_lots

    test_a = read_npz_pack(SHARED / "wm811k_test_a.npz")
    lots = test_a.lot.astype(str)
    prod = np.isin(lots, production_test_lots(lots))
    test = test_a.take(np.flatnonzero(prod))
    test = test.take(subsample(len(test), max_test, seed))
    return ProductionTest(test_a, prod, test, test.label_strings().astype(str) != "none")


@dataclass
class LabelledPool:
    """Setting (a)'s pool: the wafers, which are in validation lots, which are ``none``, and
    how many rows come first from the Training partition (the rest are Test A)."""

    wafers: object
    is_val: np.ndarray
    normal: np.ndarray
    n_training_partition: int


def labelled_pool(pt: ProductionTest, seed: int = 0) -> LabelledPool:
    """The shipped models' training data minus the demo lots, with seeded validation lots."""
    from wafertk.data import WaferSet, read_wafers
    from wafertk.data.importers import read_npz_pack

    train = read_npz_pack(SHARED / "wm811k_train.npz")
    lots = pt.test_a.lot.astype(str)
    demo = np.unique(read_wafers(ROOT / "data" / "wafers.h5").lot.astype(str))
    keep = ~pt.prod & ~np.isin(lots, demo)
    both = WaferSet.concat([train, pt.test_a.take(np.flatnonzero(keep))])
    blots = both.lot.astype(str)
    names = np.unique(blots)
    val_lots = names[np.random.default_rng(seed).permutation(len(names))
                     [:round(0.2 * len(names))]]
    return LabelledPool(both, np.isin(blots, val_lots),
                        both.label_strings().astype(str) == "none", len(train))


def setting_a_train(pool: LabelledPool, max_train: int | None, seed: int = 0):
    """Setting (a)'s training wafers: ``none`` wafers outside the validation lots."""
    tr = np.flatnonzero(~pool.is_val & pool.normal)
    return pool.wafers.take(tr[subsample(len(tr), max_train, seed)])


def setting_b_train(max_train: int | None, seed: int = 0):
    """Setting (b)'s training wafers: a seeded subsample of the unlabeled pack."""
    from wafertk.data.importers import read_npz_pack

    unl = read_npz_pack(SHARED / "wm811k_unlabeled_200k.npz")
    return unl.take(subsample(len(unl), max_train, seed))


class PrecomputedFeatureKNN(FeatureKNNDetector):
    """The library's ``features-knn`` detector on features extracted once beforehand:
    ``X`` is the feature matrix (``extract_features`` of the wafers) instead of wafers."""

    def _features(self, X):
        return np.asarray(X, np.float64)
