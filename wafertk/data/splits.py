"""Lot-disjoint, class-stratified splits, class-balance tables and class weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wafertk.errors import WafertkError

if TYPE_CHECKING:
    from wafertk.data.waferset import WaferSet


def lot_stratified_split(
    labels: Sequence | np.ndarray,
    groups: Sequence | np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    random_state: int | None = 0,
) -> list[np.ndarray]:
    """Split indices so that no group (lot) is in two parts and classes keep their proportions.

    Groups are visited largest first (ties in random order from ``random_state``) and each is
    put in the part that most lacks its classes relative to that part's target share, a greedy
    stratified group split.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Class of each sample (any hashable values; ``""`` counts as a class of its own).
    groups : array-like of shape (n,)
        Group (lot) of each sample.
    fractions : sequence of float, default (0.6, 0.2, 0.2)
        Target share of each part; must be positive and sum to 1.
    random_state : int or None, default 0
        Seed; the same seed gives the same split.

    Returns
    -------
    list of ndarray of int64
        Sorted indices of each part, one array per fraction.

    Examples
    --------
    >>> tr, va, te = lot_stratified_split(["a"] * 10, list("aabbccddee"))
    >>> sorted(set(tr) | set(va) | set(te)) == list(range(10))
    True
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    fr = np.asarray(fractions, dtype=np.float64)
    if len(labels) != len(groups):
        raise WafertkError(f"{len(labels)} labels but {len(groups)} groups")
    if fr.ndim != 1 or len(fr) < 2 or (fr <= 0).any() or not np.isclose(fr.sum(), 1.0):
        raise WafertkError(f"split fractions must be positive and sum to 1, got {list(fractions)}")
    n = len(labels)
    if n == 0:
        raise WafertkError("cannot split an empty set")
    _, y = np.unique(labels, return_inverse=True)
    _, g = np.unique(groups, return_inverse=True)
    n_cls, n_grp, k = y.max() + 1, g.max() + 1, len(fr)
    counts = np.zeros((n_grp, n_cls), np.int64)
    np.add.at(counts, (g, y), 1)
    if n_grp < k:
        raise WafertkError(f"{n_grp} lots cannot fill {k} lot-disjoint splits")
    rng = np.random.default_rng(random_state)
    # rare classes drive the order: groups holding rare classes are placed first
    rarity = (counts / np.maximum(counts.sum(axis=0), 1)).max(axis=1)
    order = np.lexsort((rng.random(n_grp), -counts.sum(axis=1), -rarity))
    target = fr[:, None] * counts.sum(axis=0)[None, :]  # (k, n_cls)
    filled = np.zeros((k, n_cls), np.float64)
    assign = np.empty(n_grp, np.int64)
    total_target = fr * n
    total = np.zeros(k)
    for gi in order:
        c = counts[gi]
        # deficit of each part for this group's classes, relative to its target
        need = ((target - filled) / np.maximum(target, 1e-9) * c).sum(axis=1) / max(c.sum(), 1)
        need += 0.5 * (total_target - total) / np.maximum(total_target, 1e-9)
        part = int(np.argmax(need))
        assign[gi] = part
        filled[part] += c
        total[part] += c.sum()
    # make sure no part is empty (possible with very few lots)
    for part in range(k):
        if not (assign == part).any():
            donor = int(np.argmax(np.bincount(assign, minlength=k)))
            cand = order[::-1][assign[order[::-1]] == donor]
            assign[cand[0]] = part
    sample_part = assign[g]
    return [np.flatnonzero(sample_part == p).astype(np.int64) for p in range(k)]


def class_balance(labels: Sequence | np.ndarray, class_names: Sequence[str] | None = None):
    """Class counts and fractions as a :class:`pandas.DataFrame` (unlabeled ``""`` last).

    Parameters
    ----------
    labels : array-like of str, shape (n,)
    class_names : sequence of str, optional
        Order of the rows; classes with no sample are listed with count 0.

    Returns
    -------
    pandas.DataFrame
        Columns ``class``, ``count``, ``fraction``.
    """
    import pandas as pd

    labels = np.asarray(labels).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    found = dict(zip(names.tolist(), counts.tolist(), strict=True))
    order = list(class_names) if class_names is not None else sorted(n for n in found if n)
    order += [c for c in sorted(found) if c not in order and c != ""]
    if "" in found:
        order.append("")
    rows = [(c if c else "(unlabeled)", found.get(c, 0)) for c in order]
    df = pd.DataFrame(rows, columns=["class", "count"])
    df["fraction"] = df["count"] / max(len(labels), 1)
    return df


def class_weights(y: Sequence[int] | np.ndarray, n_classes: int | None = None,
                  *, max_weight: float | None = None) -> dict[int, float]:
    """Balanced class weights ``n / (n_classes * count_c)`` as a dict for Keras/XGBoost.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Integer class codes.
    n_classes : int, optional
        Number of classes (default ``max(y) + 1``); absent classes get weight 0.
    max_weight : float, optional
        Clip weights to this value (rare classes can otherwise dominate).

    Returns
    -------
    dict of int to float
    """
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0:
        raise WafertkError("cannot compute class weights of an empty set")
    k = int(n_classes if n_classes is not None else y.max() + 1)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = counts > 0
    w = np.zeros(k)
    w[present] = len(y) / (present.sum() * counts[present])
    if max_weight is not None:
        w = np.minimum(w, max_weight)
    return {i: float(w[i]) for i in range(k)}


@dataclass
class Split:
    """Indices (into the labeled set) of the training and validation wafers."""

    train: np.ndarray
    val: np.ndarray


def validation_split(ws: WaferSet, fraction: float, seed: int) -> Split:
    """The lot-disjoint stratified train/validation split over all labeled wafers.

    Every shipped model (detector, CNN classifier, XGBoost) is trained with this split of the
    WM-811K Training partition (``fraction=0.2, seed=0``); a model of a subset of the classes
    uses it restricted to its classes, so all of them share their validation lots and can be
    compared, and chained in the two-phase pipeline, on the same wafers.

    Parameters
    ----------
    ws : WaferSet
        Labeled wafers (nine classes).
    fraction : float
        Validation share.
    seed : int

    Returns
    -------
    Split
    """
    labels = ws.label_strings().astype(str)
    groups = ws.lot.astype(str)
    if (groups == "").all():  # no lot information: every wafer is its own group
        groups = ws.wafer_id.astype(str)
    tr, va = lot_stratified_split(labels, groups, (1 - fraction, fraction), random_state=seed)
    return Split(tr, va)


#: Seed and share of the production test: a fixed, lot-disjoint part of the WM-811K Test A
#: lots (``wm811k_test_a.npz``) that nothing tunes on (no epochs, thresholds, temperatures,
#: configs or feature choices). The bundled demo sample is drawn from the other lots.
PRODUCTION_TEST_SEED = 2026
PRODUCTION_TEST_FRACTION = 0.25


def production_test_lots(lots: Sequence | np.ndarray, *, fraction: float = PRODUCTION_TEST_FRACTION,
                         seed: int = PRODUCTION_TEST_SEED) -> np.ndarray:
    """The lots of the production test: a seeded random ``fraction`` of the distinct lots.

    Whole lots are drawn (a fab runs whole lots), uniformly at random from the sorted distinct
    lot names, so the choice depends only on the set of lots, ``fraction`` and ``seed``, not
    on the order or the labels of the wafers.

    Parameters
    ----------
    lots : array-like of str, shape (n,)
        Lot of each wafer (repeats allowed).
    fraction : float, default 0.25
        Share of the distinct lots, in (0, 1).
    seed : int, default 2026

    Returns
    -------
    ndarray of str
        The chosen lot names, sorted.

    Examples
    --------
    >>> lots = [f"lot{i}" for i in range(8)]
    >>> len(production_test_lots(lots))
    2
    """
    if not 0 < fraction < 1:
        raise WafertkError(f"production test fraction must be in (0, 1), got {fraction}")
    names = np.unique(np.asarray(lots).astype(str))
    if len(names) < 2:
        raise WafertkError(f"{len(names)} lot(s) cannot make a lot-disjoint production test")
    k = max(1, int(round(fraction * len(names))))
    pick = np.random.default_rng(seed).permutation(len(names))[:k]
    return np.sort(names[pick])
