"""Baselines against brute-force binning and closed-form least squares / Gaussian conditioning."""

import numpy as np
import pytest

from torch_brain.baselines.linear import KalmanDecoder, RidgeDecoder, bin_spikes, lagged


def test_bin_spikes_brute_force():
    rng = np.random.default_rng(0)
    ts = rng.uniform(-0.5, 3.5, 300)
    units = rng.integers(0, 4, 300)
    got = bin_spikes(ts, units, 4, start=0.0, end=3.0, bin_size=0.25)
    assert got.shape == (12, 4)
    for k in range(12):
        lo, hi = 0.25 * k, 0.25 * (k + 1)
        for u in range(4):
            assert got[k, u] == np.sum((ts >= lo) & (ts < hi) & (units == u))


def test_lagged_by_hand():
    counts = np.array([[1.0, 10], [2, 20], [3, 30]])
    expected = np.array([[1, 10, 0, 0, 0, 0], [2, 20, 1, 10, 0, 0], [3, 30, 2, 20, 1, 10]], float)
    np.testing.assert_array_equal(lagged(counts, 2), expected)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: bin_spikes([0.1], [0], 1, 0, 1, 0.0), ValueError, "bin_size must be > 0"),
        (lambda: bin_spikes([0.1, 0.2], [0], 1, 0, 1, 0.1), ValueError, "same shape"),
        (lambda: bin_spikes([0.1], [3], 2, 0, 1, 0.1), ValueError, r"unit_index must lie in \[0, 2\)"),
        (lambda: RidgeDecoder().predict(np.zeros((2, 2))), ValueError, "not fitted"),
        (lambda: RidgeDecoder().fit(np.zeros((3, 2)), np.zeros((2, 1))), ValueError, "3 bins of counts but 2 target rows"),
        (lambda: KalmanDecoder().predict(np.zeros((2, 2))), ValueError, "not fitted"),
        (lambda: KalmanDecoder().fit([np.ones((1, 3))], [np.ones((1, 2))]), ValueError,
         r"at least 2 consecutive bins .* lengths \[1\]"),
        (lambda: RidgeDecoder(alpha=-1), ValueError, "alpha must be >= 0"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _ridge_reference(x, y, alpha):
    """Normal equations on [X, 1] with the intercept unpenalised."""
    xa = np.hstack([x, np.ones((len(x), 1))])
    pen = alpha * np.eye(xa.shape[1])
    pen[-1, -1] = 0.0
    beta = np.linalg.solve(xa.T @ xa + pen, xa.T @ y)
    return beta[:-1], beta[-1]


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_ridge_matches_closed_form(alpha):
    rng = np.random.default_rng(1)
    counts = [rng.poisson(2.0, (40, 3)).astype(float), rng.poisson(2.0, (25, 3)).astype(float)]
    targets = [rng.normal(size=(40, 2)), rng.normal(size=(25, 2))]
    model = RidgeDecoder(alpha=alpha, lags=2).fit(counts, targets)
    # lags never cross segments: build each segment's design separately by hand
    x = np.vstack([lagged(c, 2) for c in counts])
    w, b = _ridge_reference(x, np.vstack(targets), alpha)
    np.testing.assert_allclose(model.coef_, w, atol=1e-9)
    np.testing.assert_allclose(model.intercept_, b, atol=1e-9)
    np.testing.assert_allclose(model.predict(counts[1]), lagged(counts[1], 2) @ w + b, atol=1e-9)


def test_ridge_recovers_a_linear_filter():
    rng = np.random.default_rng(2)
    counts = rng.poisson(3.0, (2000, 4)).astype(float)
    true_w = rng.normal(size=(12, 1))
    y = lagged(counts, 2) @ true_w + 0.5
    model = RidgeDecoder(alpha=0.0, lags=2).fit(counts, y)
    np.testing.assert_allclose(model.coef_, true_w, atol=1e-8)


def _simulate(rng, a, d, h, c, w_cov, q_cov, n):
    y = np.zeros((n, len(d)))
    prev = np.zeros(len(d))
    for t in range(n):
        prev = a @ prev + d + rng.multivariate_normal(np.zeros(len(d)), w_cov)
        y[t] = prev
    x = y @ h.T + c + rng.multivariate_normal(np.zeros(len(c)), q_cov, size=n)
    return x, y


def test_kalman_fit_recovers_parameters():
    rng = np.random.default_rng(3)
    a = np.array([[0.9, 0.1], [-0.1, 0.9]])
    d = np.array([0.05, -0.02])
    h = rng.normal(size=(5, 2))
    c = rng.normal(size=5)
    x, y = _simulate(rng, a, d, h, c, 0.01 * np.eye(2), 0.1 * np.eye(5), 20000)
    model = KalmanDecoder(alpha=0.0).fit(x, y)
    np.testing.assert_allclose(model.A, a, atol=0.02)
    np.testing.assert_allclose(model.H, h, atol=0.02)
    np.testing.assert_allclose(model.Q, 0.1 * np.eye(5), atol=0.01)


def test_kalman_filter_equals_gaussian_conditioning():
    """The filtered mean at t is E[y_t | x_1..x_t]: compute it from the joint Gaussian."""
    rng = np.random.default_rng(4)
    k, m, n = 2, 3, 5
    model = KalmanDecoder()
    model.A = np.array([[0.8, 0.2], [0.0, 0.7]])
    model.d = np.array([0.1, -0.1])
    model.W = np.array([[0.2, 0.05], [0.05, 0.1]])
    model.H = rng.normal(size=(m, k))
    model.c = rng.normal(size=m)
    model.Q = np.diag([0.3, 0.2, 0.4])
    model.y0 = np.array([0.5, -0.5])
    model.P0 = np.array([[0.5, 0.1], [0.1, 0.3]])
    x = rng.normal(size=(n, m))
    got = model.predict(x)

    # y_t = A^t y0 + sum_{s<=t} A^{t-s} (d + w_s) with y0 ~ N(y0, P0); joint over y_1..y_n
    a_pow = [np.linalg.matrix_power(model.A, p) for p in range(n + 1)]
    mean_y = np.zeros((n, k))
    cov_y = np.zeros((n * k, n * k))
    for t in range(1, n + 1):
        mean_y[t - 1] = a_pow[t] @ model.y0 + sum(a_pow[t - s] @ model.d for s in range(1, t + 1))
        for u in range(1, n + 1):
            cov = a_pow[t] @ model.P0 @ a_pow[u].T
            cov = cov + sum(a_pow[t - s] @ model.W @ a_pow[u - s].T for s in range(1, min(t, u) + 1))
            cov_y[(t - 1) * k:t * k, (u - 1) * k:u * k] = cov
    big_h = np.kron(np.eye(n), model.H)
    mean_x = (mean_y @ model.H.T + model.c).ravel()
    cov_x = big_h @ cov_y @ big_h.T + np.kron(np.eye(n), model.Q)
    cov_yx = cov_y @ big_h.T
    for t in range(1, n + 1):
        obs = slice(0, t * m)
        gain = np.linalg.solve(cov_x[obs, obs], cov_yx[(t - 1) * k:t * k, obs].T).T
        expected = mean_y[t - 1] + gain @ (x[:t].ravel() - mean_x[obs])
        np.testing.assert_allclose(got[t - 1], expected, atol=1e-9)
