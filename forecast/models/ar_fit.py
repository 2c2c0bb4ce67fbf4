"""The arithmetic of AR(τ) for many series at once: the KPSS test, the order chosen by information criterion, least
squares, the stationarity check, forecasts and their error weights, each on a matrix of series of one length (one
row per series, one LAPACK call per matrix rather than a Python loop per series). A single series is a matrix of
one row, so one series and a million get the same numbers.

The results equal statsmodels' (`kpss(..., nlags="auto")`, `ar_select_order`, `AutoReg(..., trend="c")`) up to
rounding; tests/test_models.py checks them against it."""

from __future__ import annotations

import warnings

import numpy as np

KPSS_LEVEL = 0.05  # difference a series when the KPSS test rejects level stationarity at this level
KPSS_MIN = 10  # points below which the test is not run: such short series are differenced when d is "auto"
KPSS_CRITICAL = [0.347, 0.463, 0.574, 0.739]  # statsmodels' table for regression="c"
KPSS_P = [0.10, 0.05, 0.025, 0.01]


def lag_matrix(y: np.ndarray, lags: int, hold_back: int, exog: np.ndarray | None = None):
    """(target y_t, regressors [1, x_t, y_{t-1}, .., y_{t-lags}]) for t from `hold_back` on, as statsmodels' AutoReg
    (x_t: the exogenous regressors `exog` (n, E) at t, when given); for a matrix `y` (S, n) and `exog` (S, n, E),
    the same per row: (S, n - hold_back) and (S, n - hold_back, 1 + E + lags)."""
    y = np.asarray(y, float)
    n = y.shape[-1]
    e = 0 if exog is None else exog.shape[-1]
    x = np.ones((*y.shape[:-1], n - hold_back, 1 + e + lags))
    if e:
        x[..., 1:1 + e] = exog[..., hold_back:, :]
    for i in range(1, lags + 1):
        x[..., e + i] = y[..., hold_back - i:n - i]
    return y[..., hold_back:], x


def _autocovariances(r: np.ndarray, lags: int) -> np.ndarray:
    """(S, lags + 1) the sums Σ_t r_t r_{t-i}, i = 0..lags, of the rows of `r`."""
    n = r.shape[1]
    return np.stack([np.einsum("ij,ij->i", r[:, i:], r[:, :n - i]) for i in range(lags + 1)], axis=1)


def kpss_rejects(z: np.ndarray) -> np.ndarray:
    """(S,) whether the KPSS test of level stationarity rejects at KPSS_LEVEL for each row of `z` (S, n), with
    statsmodels' automatic lag (Hobijn et al. 1998) and its p-value table."""
    rows, nobs = z.shape
    resid = z - z.mean(axis=1, keepdims=True)
    cov_lags = int(np.power(nobs, 2.0 / 9.0))
    gamma = _autocovariances(resid, min(cov_lags, nobs - 1))  # (S, cov_lags + 1)
    prods = gamma[:, 1:] / (nobs / 2.0)
    s0 = gamma[:, 0] / nobs + prods.sum(axis=1)
    s1 = (np.arange(1, prods.shape[1] + 1) * prods).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_hat = 1.1447 * np.power((s1 / s0) ** 2, 1.0 / 3.0)
        lags = np.minimum(np.nan_to_num(gamma_hat * np.power(nobs, 1.0 / 3.0), posinf=nobs).astype(int), nobs - 1)
    gamma = _autocovariances(resid, int(lags.max(initial=0)))  # (S, max lag + 1)
    i = np.arange(1, gamma.shape[1])
    bartlett = np.where(i[None] <= lags[:, None], 1.0 - i[None] / (lags[:, None] + 1.0), 0.0)
    s_hat = (gamma[:, 0] + 2 * (gamma[:, 1:] * bartlett).sum(axis=1)) / nobs
    eta = np.sum(np.cumsum(resid, axis=1) ** 2, axis=1) / nobs ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = np.interp(eta / s_hat, KPSS_CRITICAL, KPSS_P)
    return p_value < KPSS_LEVEL


def choose_diffs(z: np.ndarray) -> np.ndarray:
    """(S,) d per row of `z` (S, n): 1 when the KPSS test rejects level stationarity (a trend or a random walk),
    else 0; constant rows 0; rows of fewer than KPSS_MIN points 1 (fewer than 3: 0)."""
    rows, n = z.shape
    if n < 3:
        return np.zeros(rows, int)
    if n < KPSS_MIN:
        return np.ones(rows, int)
    d = np.zeros(rows, int)
    varying = np.ptp(z, axis=1) != 0
    d[varying] = kpss_rejects(z[varying])
    return d


def choose_diff(z: np.ndarray) -> int:
    """`choose_diffs` of one series."""
    return int(choose_diffs(np.asarray(z, float)[None])[0])


def select_orders(y: np.ndarray, top: int, ic: str, exog: np.ndarray | None = None) -> np.ndarray:
    """(S,) τ in 0..top minimising the information criterion on the common sample y[top:] of each row of `y`
    (S, n), exactly as statsmodels' `ar_select_order(y, top, ic, trend="c")` ranks them, from one QR factorisation
    per row (the nested fits' residual sums of squares); every candidate has the regressors `exog` (S, n, E);
    -1 where the lag matrix is degenerate."""
    target, x = lag_matrix(y, top, top, exog)
    rows, nobs = target.shape
    e = x.shape[-1] - 1 - top
    if nobs <= top + 1 + e:
        return np.full(rows, -1)
    q, r = np.linalg.qr(x)
    diag = np.abs(np.diagonal(r, axis1=1, axis2=2))
    degenerate = np.any(diag < 1e-10 * np.maximum(1.0, np.abs(r).max(axis=(1, 2)))[:, None], axis=1)
    b = np.einsum("snk,sn->sk", q, target)
    # the SSR with the first 1 + E + k columns: the constant, the regressors, lags 1..k
    ssr = np.einsum("sn,sn->s", target, target)[:, None] - np.cumsum(b ** 2, axis=1)[:, e:]
    bad = degenerate | np.any(ssr <= 0, axis=1) | ~np.all(np.isfinite(ssr), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        llf = -nobs * (np.log(2 * np.pi * ssr / nobs) + 1) / 2
    k = np.arange(top + 1) + 1.0 + e  # parameters with the constant and the regressors
    penalty = {"aic": 2 * k, "bic": np.log(nobs) * k, "hqic": 2 * np.log(np.log(nobs)) * k}[ic]
    tau = np.argmin(np.where(bad[:, None], 0.0, -2 * llf + penalty), axis=1)
    return np.where(bad, -1, tau)


def select_order(y: np.ndarray, top: int, ic: str) -> int | None:
    """`select_orders` of one series; None when its lag matrix is degenerate."""
    tau = int(select_orders(np.asarray(y, float)[None], top, ic)[0])
    return None if tau < 0 else tau


def ols_ar(y: np.ndarray, lags: int, exog: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """([const, x's coefficients, φ1..φτ], σ² = SSR / nobs) of AR(τ) with a constant (and the regressors `exog`
    (n, E)) by least squares: statsmodels' `AutoReg(y, lags, trend="c", exog=exog).fit()` without its ~4 ms of
    set-up per series."""
    target, x = lag_matrix(y, lags, lags, exog)
    params, *_ = np.linalg.lstsq(x, target, rcond=None)
    resid = target - x @ params
    return params, float(resid @ resid / len(target))


def ols_rows(y: np.ndarray, lags: int, exog: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`ols_ar` of each row of `y` (S, n) (`exog` (S, n, E)): (S, 1 + E + lags) parameters and (S,) σ²; by QR, and
    by `ols_ar`'s least squares for the rows whose lag matrix is (nearly) singular."""
    target, x = lag_matrix(y, lags, lags, exog)
    width = x.shape[-1]
    q, r = np.linalg.qr(x)
    diag = np.abs(np.diagonal(r, axis1=1, axis2=2))
    singular = np.any(diag < 1e-10 * np.maximum(1.0, np.abs(r).max(axis=(1, 2)))[:, None], axis=1)
    singular |= diag.shape[1] < width  # fewer observations than parameters
    if singular.any():
        r = r.copy()
        r[singular] = np.eye(r.shape[1], width)  # solved apart below
    params = np.linalg.solve(r[:, :width, :], np.einsum("snk,sn->sk", q, target)[..., None])[..., 0] \
        if r.shape[1] >= width else np.zeros((len(y), width))
    resid = target - np.einsum("snk,sk->sn", x, params)
    sigma2 = np.einsum("sn,sn->s", resid, resid) / max(target.shape[1], 1)
    for i in np.flatnonzero(singular):
        params[i], sigma2[i] = ols_ar(y[i], lags, None if exog is None else exog[i])
    return params, sigma2


def stationary_rows(phi: np.ndarray) -> np.ndarray:
    """(S,) no root of 1 - φ1 z - .. - φτ z^τ on or inside the unit circle, per row of `phi` (S, τ): every
    eigenvalue of the companion matrix inside it."""
    rows, tau = phi.shape
    if not tau:
        return np.ones(rows, bool)
    companion = np.zeros((rows, tau, tau))
    companion[:, 0] = phi
    companion[:, np.arange(1, tau), np.arange(tau - 1)] = 1.0
    return np.all(np.abs(np.linalg.eigvals(companion)) < 1.0, axis=1) | ~np.any(phi, axis=1)


def stationary(phi: np.ndarray) -> bool:
    """`stationary_rows` of one coefficient vector."""
    return bool(stationary_rows(np.asarray(phi, float)[None])[0])


def max_order(n: int) -> int:
    """The largest τ a series of n points supports (n >= 2τ + 2)."""
    return max(0, (n - 2) // 2)


def fit_rows(y: np.ndarray, lags: int | None, max_lags: int, ic: str, exog: np.ndarray | None = None):
    """AR(τ) with a constant for each row of `y` (S, n), with the regressors `exog` (S, n, E) when given: (τ (S,),
    parameters (S, T + 1) [const, φ1..φτ] padded with zeros to the largest τ, the τ first tried (S,), the residual
    standard deviation σ (S,), the regressors' coefficients (S, E)); τ steps down while a fit is explosive or the
    series too short for it; fewer than 3 points give τ = 0, the mean (without regressors)."""
    y = np.asarray(y, float)
    rows, n = y.shape
    e = 0 if exog is None else exog.shape[-1]
    if lags is not None:
        tau = np.full(rows, int(lags))
    else:
        top = max(0, min(max_lags, (n - e) // 3))
        tau = select_orders(y, top, ic, exog) if top else np.zeros(rows, int)
        for i in np.flatnonzero(tau < 0):  # a degenerate lag matrix: statsmodels' own search
            tau[i] = _statsmodels_order(y[i], top, ic) if not e else 0
    first = tau.copy()
    tau = np.minimum(tau, max_order(n - e))
    params = np.zeros((rows, int(tau.max(initial=0)) + 1))
    sigma, beta = np.zeros(rows), np.zeros((rows, e))
    pending = tau > 0
    while pending.any():
        for t in np.unique(tau[pending]):
            picked = np.flatnonzero(pending & (tau == t))
            fitted, sigma2 = ols_rows(y[picked], int(t), None if exog is None else exog[picked])
            ok = stationary_rows(fitted[:, 1 + e:])
            params[picked[ok], 0] = fitted[ok, 0]
            params[picked[ok], 1:t + 1] = fitted[ok, 1 + e:]
            beta[picked[ok]] = fitted[ok, 1:1 + e]
            sigma[picked[ok]] = np.sqrt(sigma2[ok])
            pending[picked[ok]] = False
            tau[picked[~ok]] -= 1
        pending &= tau > 0
    mean = np.flatnonzero(tau == 0)
    if e and n > e + 1 and len(mean):  # the constant and the regressors alone
        fitted, sigma2 = ols_rows(y[mean], 0, exog[mean])
        params[mean, 0], beta[mean], sigma[mean] = fitted[:, 0], fitted[:, 1:], np.sqrt(sigma2)
    elif n and len(mean):
        params[mean, 0] = y[mean].mean(axis=1)
        sigma[mean] = y[mean].std(axis=1, ddof=1) if n > 1 else 0.0
    return tau, params, first, sigma, beta


def _statsmodels_order(y: np.ndarray, top: int, ic: str) -> int:
    from statsmodels.tsa.ar_model import ar_select_order

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selected = ar_select_order(y, maxlag=top, ic=ic, trend="c").ar_lags
    return int(max(selected)) if selected is not None and len(selected) else 0


def fit_series(y: np.ndarray, lags: int | None, max_lags: int, ic: str) -> tuple[int, np.ndarray, int, float]:
    """`fit_rows` of one series: (τ, [const, φ1..φτ], the τ first tried, σ)."""
    tau, params, first, sigma, _ = fit_rows(np.asarray(y, float)[None], lags, max_lags, ic)
    return int(tau[0]), params[0, :tau[0] + 1], int(first[0]), float(sigma[0])


def psi_rows(phi: np.ndarray, d: np.ndarray, h: int) -> np.ndarray:
    """(S, h) the weights ψ_0..ψ_{h-1} of the forecast errors' MA(∞) form per row of `phi` (S, T) (of the
    integrated series where d = 1): the j-step error variance is σ² Σ_{k<j} ψ_k²."""
    rows, tau = phi.shape
    psi = np.zeros((rows, h))
    psi[:, 0] = 1.0
    for k in range(1, h):
        top = min(k, tau)
        psi[:, k] = np.einsum("si,si->s", phi[:, :top], psi[:, k - 1::-1][:, :top]) if top else 0.0
    return np.where(np.asarray(d)[:, None] > 0, np.cumsum(psi, axis=1), psi)


def psi_weights(phi: np.ndarray, d: int, h: int) -> np.ndarray:
    """`psi_rows` of one coefficient vector."""
    return psi_rows(np.asarray(phi, float)[None], np.array([d]), h)[0]


def recurse_rows(params: np.ndarray, history: np.ndarray, h: int, effect: np.ndarray | None = None) -> np.ndarray:
    """(S, h) forecasts of y_t = c + Σ φ_i y_{t-i} (+ effect_t, the regressors' part at each future step (S, h))
    from the end of each row of `history` (S, n), `params` (S, T + 1) (rows shorter than T are taken as repeating
    their first value before it)."""
    const, phi = params[:, 0], params[:, 1:]
    rows, tau = phi.shape
    past = np.asarray(history, float)
    if past.shape[1] < tau:
        first = past[:, :1] if past.shape[1] else np.zeros((rows, 1))
        past = np.concatenate([np.repeat(first, tau - past.shape[1], axis=1), past], axis=1)
    buf = np.concatenate([past[:, past.shape[1] - tau:], np.empty((rows, h))], axis=1)
    for step in range(h):
        window = buf[:, step:tau + step][:, ::-1]  # y_{t-1}, .., y_{t-τ}
        buf[:, tau + step] = const + np.einsum("si,si->s", phi, window) + (0.0 if effect is None else effect[:, step])
    return buf[:, tau:]


def recurse(params: np.ndarray, history: np.ndarray, h: int) -> np.ndarray:
    """`recurse_rows` of one series."""
    return recurse_rows(np.asarray(params, float)[None], np.asarray(history, float)[None], h)[0]
