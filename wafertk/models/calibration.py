"""Post-hoc decisions on validation outputs: temperature scaling and recall-targeted thresholds.

NumPy/SciPy only (no TensorFlow): the predictors apply them at inference, the trainer fits
them on validation outputs.
"""

from __future__ import annotations

import numpy as np

from wafertk.errors import WafertkError

_EPS = 1e-7


def logits_from_proba(p: np.ndarray) -> np.ndarray:
    """Logits of probabilities.

    Parameters
    ----------
    p : ndarray of shape (n,) or (n, k)
        Sigmoid outputs (1-D) or softmax rows (2-D).

    Returns
    -------
    ndarray of the same shape
        ``log(p / (1 - p))`` for 1-D input, ``log(p)`` for rows (logits up to a constant,
        which softmax ignores).
    """
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p)) if p.ndim == 1 else np.log(p)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities: ``sigmoid(z / T)`` for 1-D logits, ``softmax(z / T)`` rows."""
    z = np.asarray(logits, np.float64) / float(temperature)
    if z.ndim == 1:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer labels ``y`` (0/1 for 1-D logits)."""
    p = apply_temperature(logits, temperature)
    y = np.asarray(y, np.int64)
    if p.ndim == 1:
        p = np.clip(np.where(y == 1, p, 1 - p), _EPS, 1)
    else:
        p = np.clip(p[np.arange(len(y)), y], _EPS, 1)
    return float(-np.log(p).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, bounds=(0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the validation NLL (temperature scaling).

    Parameters
    ----------
    logits : ndarray of shape (n,) or (n, k)
        Binary logits, or class logits (log-probabilities are fine).
    y : ndarray of shape (n,)
        Integer labels.
    bounds : tuple of float
        Search range of ``T``.

    Returns
    -------
    float
        ``T > 1`` softens over-confident outputs; 1.0 for an empty set.
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y)
    if len(y) == 0:
        return 1.0
    res = minimize_scalar(lambda lt: nll(logits, y, float(np.exp(lt))),
                          bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    t = float(np.exp(res.x))
    return t if nll(logits, y, t) <= nll(logits, y, 1.0) else 1.0


def threshold_for_recall(y_true: np.ndarray, score: np.ndarray, target_recall: float = 0.97
                         ) -> float:
    """Highest threshold whose recall (``score >= threshold`` predicted positive) reaches target.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        1 = positive (defective).
    score : ndarray of shape (n,)
    target_recall : float in (0, 1]

    Returns
    -------
    float
    """
    if not 0 < target_recall <= 1:
        raise WafertkError(f"target recall must be in (0, 1], got {target_recall}")
    y = np.asarray(y_true).astype(bool)
    pos = np.sort(np.asarray(score, np.float64)[y])[::-1]
    if len(pos) == 0:
        return 0.5
    k = int(np.ceil(target_recall * len(pos) - 1e-9))
    return float(pos[max(k, 1) - 1])
