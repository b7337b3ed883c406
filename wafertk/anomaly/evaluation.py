"""Evaluation of anomaly scores (higher = more anomalous) and views of a latent space.

* :func:`anomaly_metrics`: ROC-AUC, PR-AUC (average precision) and the confusion at a
  threshold, through :func:`wafertk.evaluate.binary_metrics`;
* :func:`threshold_sweep`: the operating points from very sensitive to very specific;
* :func:`choose_threshold`: a threshold from the normal share expected (``contamination``) or,
  with labels, the best F1 or a target recall;
* :func:`latent_moments`, :func:`latent_projection`, :func:`plot_latent`: latent features by
  class (PCA or t-SNE scatter, per-class mean norm and spread).

No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wafertk.errors import WafertkError


def _check(y: np.ndarray | None, scores: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise WafertkError("anomaly scores hold NaN or infinite values")
    if y is None:
        return None, s
    t = np.asarray(y).astype(bool).reshape(-1)
    if t.shape != s.shape:
        raise WafertkError(f"labels {t.shape} and scores {s.shape} differ in length")
    return t, s


def anomaly_metrics(y_true, scores, threshold: float) -> dict[str, Any]:
    """ROC-AUC, PR-AUC and the confusion at ``threshold`` (anomalous where score >= it).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 / True = anomalous.
    scores : array-like of shape (n,)
        Higher = more anomalous.
    threshold : float

    Returns
    -------
    dict
        :func:`wafertk.evaluate.binary_metrics`'s figures plus ``pr_auc`` (= average
        precision) and ``flagged`` (share of samples at or above the threshold).

    Examples
    --------
    >>> m = anomaly_metrics([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9], 0.25)
    >>> m["roc_auc"], m["recall"], m["flagged"]
    (1.0, 1.0, 0.5)
    """
    from wafertk.evaluate import binary_metrics

    t, s = _check(y_true, scores)
    out = binary_metrics(t, s, threshold=float(threshold))
    out["pr_auc"] = out["average_precision"]
    out["flagged"] = float((s >= threshold).mean()) if len(s) else 0.0
    return out


def threshold_sweep(y_true, scores, *, n_points: int = 21,
                    chosen: float | None = None) -> list[dict[str, float]]:
    """Operating points from very sensitive to very specific.

    The thresholds are quantiles of the scores (flagging from every sample down to none);
    ``chosen`` is added and marked.

    Parameters
    ----------
    y_true : array-like of shape (n,) or None
        1 = anomalous; None gives only the flagged shares.
    scores : array-like of shape (n,)
    n_points : int, default 21
    chosen : float, optional
        The operating point in use (row with ``chosen: 1``).

    Returns
    -------
    list of dict
        ``threshold``, ``flagged`` (share), and with labels ``recall``, ``precision``,
        ``fpr``, ``f1``; ``chosen`` 0/1. Sorted by threshold, ascending.
    """
    t, s = _check(y_true, scores)
    qs = np.unique(np.quantile(s, np.linspace(0, 1, n_points))) if len(s) else np.zeros(0)
    thresholds = sorted(set(qs.tolist()) | ({float(chosen)} if chosen is not None else set()))
    rows = []
    for th in thresholds:
        pred = s >= th
        row: dict[str, float] = {"threshold": float(th), "flagged": float(pred.mean())}
        if t is not None:
            tp, fp = int((pred & t).sum()), int((pred & ~t).sum())
            pos, neg = int(t.sum()), int((~t).sum())
            rec = tp / pos if pos else 0.0
            prec = tp / (tp + fp) if tp + fp else 0.0
            row.update(recall=rec, precision=prec, fpr=fp / neg if neg else 0.0,
                       f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        row["chosen"] = int(chosen is not None and th == float(chosen))
        rows.append(row)
    return rows


def choose_threshold(scores, y_true=None, *, contamination: float = 0.05,
                     method: str = "quantile", target_recall: float = 0.9) -> float:
    """A decision threshold on anomaly scores.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Scores of held-out samples (normal ones for ``"quantile"``, when labels say which).
    y_true : array-like of shape (n,), optional
        1 = anomalous. With ``"quantile"`` only the normal samples' scores are used.
    contamination : float, default 0.05
        ``"quantile"``: the share of normal samples allowed above the threshold (the false
        alarm rate aimed at), i.e. the threshold is their ``1 - contamination`` quantile.
    method : {"quantile", "f1", "recall"}
        ``"f1"``: the threshold of best F1 (needs labels of both kinds); ``"recall"``: the
        highest threshold reaching ``target_recall`` (needs labels).
    target_recall : float, default 0.9

    Returns
    -------
    float

    Examples
    --------
    >>> choose_threshold(np.arange(100.0), contamination=0.1)
    89.1
    """
    t, s = _check(y_true, scores)
    if len(s) == 0:
        raise WafertkError("no scores to choose a threshold from")
    if not 0 < contamination < 1:
        raise WafertkError(f"contamination must be in (0, 1), got {contamination}")
    if method == "quantile":
        ref = s if t is None or t.all() else s[~t]
        return float(np.quantile(ref, 1 - contamination))
    if t is None or t.all() or not t.any():
        raise WafertkError(f"threshold method {method!r} needs labels of both kinds")
    if method == "f1":
        from sklearn.metrics import precision_recall_curve

        prec, rec, thr = precision_recall_curve(t, s)  # thresholds: the scores themselves
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0.0)
        best = np.flatnonzero(f1[:-1] == f1[:-1].max())
        return float(thr[best].max())
    if method == "recall":
        pos = np.sort(s[t])[::-1]
        k = max(int(np.ceil(target_recall * len(pos))) - 1, 0)
        return float(pos[k])
    raise WafertkError(f"unknown threshold method {method!r} (quantile, f1, recall)")


def validation_threshold(scores, y_val=None, *, contamination: float,
                         method: str = "quantile") -> float:
    """:func:`choose_threshold` on validation scores, with ``"quantile"`` in place of a
    labelled ``method`` when ``y_val`` does not hold both normal and anomalous samples."""
    y = None if y_val is None else np.asarray(y_val, bool)
    if method != "quantile" and (y is None or y.all() or not y.any()):
        method = "quantile"
    return choose_threshold(scores, y, contamination=contamination, method=method)


def latent_moments(z: np.ndarray, labels) -> list[dict[str, Any]]:
    """Per-class moments of latent vectors.

    Parameters
    ----------
    z : ndarray of shape (n, d)
    labels : array-like of str, shape (n,)

    Returns
    -------
    list of dict
        Per class: ``class``, ``n``, ``mean_norm`` (norm of the class mean), ``spread`` (mean
        per-dimension standard deviation), ``distance_to_overall_mean`` (of the class mean),
        ``mean_radius`` (mean distance of the vectors to the overall mean).
    """
    z = np.asarray(z, np.float64)
    lab = np.asarray(labels).astype(str)
    centre = z.mean(axis=0)
    out = []
    for c in sorted(set(lab.tolist())):
        zc = z[lab == c]
        m = zc.mean(axis=0)
        out.append({"class": c, "n": int(len(zc)), "mean_norm": float(np.linalg.norm(m)),
                    "spread": float(zc.std(axis=0).mean()),
                    "distance_to_overall_mean": float(np.linalg.norm(m - centre)),
                    "mean_radius": float(np.linalg.norm(zc - centre, axis=1).mean())})
    return out


def latent_projection(z: np.ndarray, *, method: str = "pca",
                      random_state: int | None = 0) -> np.ndarray:
    """Two-dimensional view of latent vectors (PCA, or t-SNE for at most 5,000 points).

    Returns
    -------
    ndarray of shape (n, 2)
    """
    z = np.asarray(z, np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(2, z.shape[1], len(z))
        p = PCA(n_components=k, random_state=random_state).fit_transform(z)
        return np.pad(p, ((0, 0), (0, 2 - k)))
    if method == "tsne":
        from sklearn.manifold import TSNE

        if len(z) > 5000:
            raise WafertkError(f"t-SNE of {len(z)} points is too slow here: subsample to 5,000")
        return TSNE(n_components=2, random_state=random_state,
                    perplexity=min(30.0, max(len(z) - 1, 1) / 3)).fit_transform(z)
    raise WafertkError(f"unknown projection {method!r} (pca, tsne)")


def plot_latent(z: np.ndarray, labels, path: str | os.PathLike, *, method: str = "pca",
                title: str = "latent space", random_state: int | None = 0) -> Path:
    """Scatter of :func:`latent_projection` coloured by class, saved as PNG (atomically)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    from wafertk._atomic import atomic_path

    xy = latent_projection(z, method=method, random_state=random_state)
    lab = np.asarray(labels).astype(str)
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for c in sorted(set(lab.tolist())):
        m = lab == c
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.6, label=f"{c or '(unlabeled)'} ({m.sum()})")
    ax.set_title(f"{title} ({method.upper()})")
    ax.legend(fontsize=7, markerscale=2)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def binary_labels(y, n: int, what: str = "y") -> np.ndarray:
    """``y`` (``n`` values, 1/True = anomalous) as a bool array, or a one-line error.

    Raises
    ------
    WafertkError
        A length other than ``n``, or NaN among float labels.
    """
    t = np.asarray(y).reshape(-1)
    if len(t) != n:
        raise WafertkError(f"{what} has {len(t)} values for {n} samples")
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise WafertkError(f"{what} holds NaN values")
    return t.astype(bool)
