"""Classic decoders on binned spike counts, in plain numpy.

- :func:`bin_spikes`: spike times -> counts per bin and unit.
- :func:`lagged`: counts -> a design matrix holding the current bin and ``lags`` past bins.
- :class:`RidgeDecoder`: ridge regression on lagged counts (a Wiener filter).
- :class:`KalmanDecoder`: linear-Gaussian state space model (Wu et al., 2003): the decoded
  variable follows ``y_t = A y_{t-1} + d + w``, counts follow ``x_t = H y_t + c + v``.

Both are fitted with :meth:`fit` on a list of contiguous segments (one per training interval)
so that lags and dynamics never cross the gap between two intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["KalmanDecoder", "RidgeDecoder", "bin_spikes", "lagged"]


def bin_spikes(
    timestamps: np.ndarray,
    unit_index: np.ndarray,
    num_units: int,
    start: float,
    end: float,
    bin_size: float,
) -> np.ndarray:
    """Counts spikes per bin and unit.

    Bins are ``[start + k * bin_size, start + (k + 1) * bin_size)`` for
    ``k = 0 .. ceil((end - start) / bin_size) - 1``; spikes outside ``[start, end)`` are ignored.

    Args:
        timestamps: (n_spikes,) spike times in seconds.
        unit_index: (n_spikes,) int unit of each spike, in ``[0, num_units)``.
        num_units: number of units (columns).
        start, end: the span to bin, in seconds.
        bin_size: bin width in seconds (> 0).

    Returns:
        (n_bins, num_units) float64 counts.
    """
    if bin_size <= 0:
        raise ValueError(f"bin_size must be > 0 seconds, got {bin_size}.")
    timestamps = np.asarray(timestamps, dtype=np.float64)
    unit_index = np.asarray(unit_index, dtype=np.int64)
    if timestamps.shape != unit_index.shape:
        raise ValueError(
            f"timestamps and unit_index must have the same shape, got {timestamps.shape} and "
            f"{unit_index.shape}."
        )
    n_bins = max(0, int(np.ceil((end - start) / bin_size - 1e-9)))
    counts = np.zeros((n_bins, num_units), dtype=np.float64)
    if n_bins == 0 or timestamps.size == 0:
        return counts
    keep = (timestamps >= start) & (timestamps < end)
    bins = np.floor((timestamps[keep] - start) / bin_size).astype(np.int64)
    bins = np.minimum(bins, n_bins - 1)
    units = unit_index[keep]
    if units.size and (units.min() < 0 or units.max() >= num_units):
        raise ValueError(f"unit_index must lie in [0, {num_units}), got values in "
                         f"[{units.min()}, {units.max()}].")
    np.add.at(counts, (bins, units), 1.0)
    return counts


def lagged(counts: np.ndarray, lags: int) -> np.ndarray:
    """Stacks the current bin and ``lags`` past bins (zeros before the first bin).

    Args:
        counts: (n_bins, n_units).
        lags: number of past bins (>= 0).

    Returns:
        (n_bins, n_units * (lags + 1)); columns ``[k * n_units, (k + 1) * n_units)`` hold the
        counts ``k`` bins in the past.
    """
    if lags < 0:
        raise ValueError(f"lags must be >= 0, got {lags}.")
    counts = np.asarray(counts, dtype=np.float64)
    n, u = counts.shape
    out = np.zeros((n, u * (lags + 1)), dtype=np.float64)
    for k in range(lags + 1):
        out[k:, k * u:(k + 1) * u] = counts[: n - k] if k else counts
    return out


def _as_segments(x: np.ndarray | Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        x = [x]
    segments = [np.asarray(s, dtype=np.float64) for s in x]
    for s in segments:
        if s.ndim != 2:
            raise ValueError(f"{name} segments must be 2-D (n_bins, n_features), got shape {s.shape}.")
    return segments


def _check_pairs(xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"got {len(xs)} count segments but {len(ys)} target segments.")
    for i, (x, y) in enumerate(zip(xs, ys)):
        if len(x) != len(y):
            raise ValueError(f"segment {i}: {len(x)} bins of counts but {len(y)} target rows.")
    if sum(len(x) for x in xs) == 0:
        raise ValueError("no training bins: every segment is empty.")


class RidgeDecoder:
    """Ridge regression (Wiener filter) from lagged binned counts to targets.

    Minimises ``||Y - X W - 1 b||^2 + alpha ||W||^2`` (the intercept ``b`` is not penalised),
    where ``X`` holds the counts of the current and ``lags`` past bins.

    Args:
        alpha: L2 penalty (>= 0).
        lags: number of past bins used as features.
    """

    def __init__(self, alpha: float = 1.0, lags: int = 5) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        self.alpha = float(alpha)
        self.lags = int(lags)
        self.coef_: np.ndarray | None = None  # (n_features, n_out)
        self.intercept_: np.ndarray | None = None  # (n_out,)

    def features(self, counts: np.ndarray) -> np.ndarray:
        """Lagged design matrix of one contiguous segment of counts."""
        return lagged(counts, self.lags)

    def fit(self, counts: np.ndarray | Sequence[np.ndarray],
            targets: np.ndarray | Sequence[np.ndarray]) -> RidgeDecoder:
        """Fits on one or several contiguous segments.

        Args:
            counts: (n_bins, n_units) or a list of them.
            targets: (n_bins, n_out) or a list of them (same lengths).
        """
        xs, ys = _as_segments(counts, "counts"), _as_segments(targets, "targets")
        _check_pairs(xs, ys)
        x = np.concatenate([self.features(c) for c in xs])
        y = np.concatenate(ys)
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef_ = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
        self.intercept_ = y_mean - x_mean @ self.coef_
        return self

    def predict(self, counts: np.ndarray) -> np.ndarray:
        """Predicts (n_bins, n_out) from one contiguous segment of counts (n_bins, n_units)."""
        if self.coef_ is None:
            raise ValueError("RidgeDecoder is not fitted; call fit(counts, targets) first.")
        return self.features(counts) @ self.coef_ + self.intercept_


def _lstsq_affine(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``y ~ x @ w + b`` by ridge least squares; returns (w (d_x, d_y), b (d_y,))."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    w = np.linalg.lstsq(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc, rcond=None)[0]
    return w, ym - xm @ w


class KalmanDecoder:
    """Kalman filter decoder (Wu et al., 2003) with affine dynamics and observation models.

    Fitted by least squares: dynamics ``y_t = A y_{t-1} + d`` on consecutive bins of each
    segment (residual covariance ``W``); observations ``x_t = H y_t + c`` (residual covariance
    ``Q``). Decoding runs the standard predict/update recursion from the training mean.

    Args:
        alpha: small ridge penalty used in both least-squares fits (stabilises them).
    """

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = float(alpha)
        self.A = self.d = self.W = self.H = self.c = self.Q = None
        self.y0: np.ndarray | None = None
        self.P0: np.ndarray | None = None

    def fit(self, counts: np.ndarray | Sequence[np.ndarray],
            targets: np.ndarray | Sequence[np.ndarray]) -> KalmanDecoder:
        """Fits on one or several contiguous segments of (counts (n, n_units), targets (n, d))."""
        xs, ys = _as_segments(counts, "counts"), _as_segments(targets, "targets")
        _check_pairs(xs, ys)
        if not any(len(y) > 1 for y in ys):
            raise ValueError(
                f"KalmanDecoder.fit needs a segment of at least 2 consecutive bins to fit the dynamics, "
                f"but got segments of lengths {[len(y) for y in ys]}; use longer training intervals or a "
                "smaller bin_size."
            )
        prev = np.concatenate([y[:-1] for y in ys if len(y) > 1])
        nxt = np.concatenate([y[1:] for y in ys if len(y) > 1])
        a, self.d = _lstsq_affine(prev, nxt, self.alpha)
        self.A = a.T
        res = nxt - prev @ a - self.d
        self.W = np.cov(res, rowvar=False).reshape(len(self.d), len(self.d))
        y, x = np.concatenate(ys), np.concatenate(xs)
        h, self.c = _lstsq_affine(y, x, self.alpha)
        self.H = h.T
        res = x - y @ h - self.c
        q = np.cov(res, rowvar=False).reshape(x.shape[1], x.shape[1])
        self.Q = q + 1e-6 * np.eye(len(q))  # silent units would make Q singular
        self.y0 = y.mean(0)
        self.P0 = np.cov(y, rowvar=False).reshape(len(self.y0), len(self.y0))
        return self

    def predict(self, counts: np.ndarray) -> np.ndarray:
        """Filters one contiguous segment: (n_bins, n_units) -> (n_bins, d)."""
        if self.A is None:
            raise ValueError("KalmanDecoder is not fitted; call fit(counts, targets) first.")
        counts = np.asarray(counts, dtype=np.float64)
        # information form (Woodbury): with few states and many units, each step only inverts
        # (d, d) matrices: P+ = (P-^-1 + H^T Q^-1 H)^-1, y+ = y- + P+ H^T Q^-1 (x - H y- - c)
        q_inv_h = np.linalg.solve(self.Q, self.H)  # Q^-1 H  (n_units, d)
        ht_qi_h = self.H.T @ q_inv_h  # (d, d)
        innovations = counts - self.c  # x - c, (n_bins, n_units)
        projected = innovations @ q_inv_h  # rows: H^T Q^-1 (x - c)
        y, p = self.y0.copy(), self.P0.copy()
        out = np.empty((len(counts), len(y)))
        for t in range(len(counts)):
            y = self.A @ y + self.d
            p = self.A @ p @ self.A.T + self.W
            p = np.linalg.inv(np.linalg.inv(p) + ht_qi_h)
            p = 0.5 * (p + p.T)
            y = y + p @ (projected[t] - ht_qi_h @ y)
            out[t] = y
        return out
