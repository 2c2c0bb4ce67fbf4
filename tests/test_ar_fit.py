"""AR's arithmetic over matrices of series (forecast.models.ar_fit) against statsmodels, and batching that changes no
number: many series fitted together forecast as each fitted alone; stacked transforms as one transform each."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.ar_model import AutoReg, ar_select_order
from statsmodels.tsa.stattools import kpss

from forecast.data import Frequency
from forecast.models.ar import AutoRegressive
from forecast.models.ar_fit import (
    choose_diffs,
    kpss_rejects,
    ols_rows,
    psi_rows,
    recurse_rows,
    select_orders,
    stationary_rows,
)
from forecast.transforms import SeriesTransform, Stacked, by_length, fit_transforms


def simulated(rows=40, n=90, seed=0):
    """AR(2) noise, random walks and trends: series the tests below disagree on."""
    rng = np.random.default_rng(seed)
    out = np.zeros((rows, n))
    for i in range(rows):
        e = rng.standard_normal(n)
        kind = i % 3
        if kind == 0:
            for t in range(2, n):
                out[i, t] = 0.5 * out[i, t - 1] - 0.3 * out[i, t - 2] + e[t]
        elif kind == 1:
            out[i] = np.cumsum(e)
        else:
            out[i] = 0.05 * np.arange(n) + e
    return out


def test_orders_equal_statsmodels_ar_select_order():
    y = simulated()
    for ic in ("aic", "bic"):
        ours = select_orders(y, 12, ic)
        theirs = [max(ar_select_order(row, maxlag=12, ic=ic, trend="c").ar_lags or [0]) for row in y]
        np.testing.assert_array_equal(ours, theirs)


def test_least_squares_equal_statsmodels_autoreg():
    y = simulated(rows=12)
    params, sigma2 = ols_rows(y, 3)
    for row, p, s2 in zip(y, params, sigma2):
        fit = AutoReg(row, 3, trend="c").fit()
        np.testing.assert_allclose(p, fit.params, rtol=1e-9, atol=1e-12)
        assert s2 == pytest.approx(fit.sigma2, rel=1e-9)


def test_kpss_decisions_equal_statsmodels():
    y = simulated(rows=60, n=70, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [kpss(row, regression="c", nlags="auto")[1] < 0.05 for row in y]
    np.testing.assert_array_equal(kpss_rejects(y), theirs)
    assert 10 < sum(theirs) < 50  # both kinds of answer are tested
    short = choose_diffs(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert short.tolist() == [1]  # too short to test: differenced
    assert choose_diffs(np.full((1, 30), 2.0)).tolist() == [0]  # constant: nothing to difference


def test_stationarity_agrees_with_the_polynomial_roots():
    rng = np.random.default_rng(5)
    phi = rng.uniform(-1.2, 1.2, (200, 3))
    roots = [np.all(np.abs(np.roots(np.r_[-p[::-1], 1.0])) > 1) for p in phi]
    np.testing.assert_array_equal(stationary_rows(phi), roots)
    assert stationary_rows(np.zeros((2, 0))).tolist() == [True, True]


def test_recursion_and_error_weights_by_hand():
    params = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 0.25]])
    path = recurse_rows(params, np.array([[2.0, 4.0], [4.0, 8.0]]), 2)
    np.testing.assert_allclose(path, [[3.0, 2.5], [5.0, 4.5]])  # 1 + .5*4, 1 + .5*3 | .5*8 + .25*4, .5*5 + .25*8
    psi = psi_rows(params[:, 1:], np.array([0, 1]), 3)
    np.testing.assert_allclose(psi, [[1.0, 0.5, 0.25], [1.0, 1.5, 2.0]])  # ψ2 = .5*.5 + .25 = .5; cumsum


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=8), st.integers(0, 10 ** 6))
def test_series_forecast_together_as_each_alone(lengths, seed):
    rng = np.random.default_rng(seed)
    series = [50 + np.cumsum(rng.standard_normal(n)) + 5 * np.sin(np.arange(n) * np.pi / 6) for n in lengths]
    model = AutoRegressive()
    model.freq_, model.h_, model.intervals = Frequency("MS", 1, 12), 4, False
    model._fit([f"s{i}" for i in range(len(series))], series, 4)
    fresh = AutoRegressive()
    fresh.freq_, fresh.h_, fresh.params_, fresh.diffs_, fresh.sigmas_ = model.freq_, 4, {}, {}, {}
    ids = [f"new{i}" for i in range(len(series))]
    together = fresh._paths(ids, series, 4, probs=np.array([0.1, 0.9]))
    for i, y in enumerate(series):
        alone = fresh._paths([ids[i]], [y], 4, probs=np.array([0.1, 0.9]))
        np.testing.assert_allclose(together[0][i], alone[0][0], rtol=1e-9)
        np.testing.assert_allclose(together[1][i], alone[1][0], rtol=1e-9)
        seen = model._paths([f"s{i}"], [y], 4)[0][0]  # the same series as fitted: the same forecast
        np.testing.assert_allclose(seen, alone[0][0], rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=6), st.integers(0, 10 ** 6),
       st.booleans(), st.sampled_from([1, 4, 12]))
def test_stacked_transforms_equal_one_transform_each(lengths, seed, log, season):
    rng = np.random.default_rng(seed)
    kinds = [lambda n: 10 + rng.gamma(2.0, 2.0, n), lambda n: rng.standard_normal(n),
             lambda n: np.maximum(rng.normal(1, 1, n), 0)]
    series = [kinds[i % 3](n) for i, n in enumerate(lengths)]
    together = fit_transforms(series, season, log=log)
    z = rng.standard_normal((len(series), 5))
    inverse = Stacked(together).inverse(z)
    for t, y, row, back in zip(together, series, z, inverse):
        alone = SeriesTransform.fit(y, season, log=log)
        assert (t.log, t.index is None) == (alone.log, alone.index is None)
        np.testing.assert_allclose([t.loc, t.scale, t.shift], [alone.loc, alone.scale, alone.shift], rtol=1e-12)
        np.testing.assert_allclose(back, alone.inverse(row), rtol=1e-12)
        np.testing.assert_allclose(Stacked([t]).transform(y[None], 0)[0], alone.transform(y), rtol=1e-12,
                                   atol=1e-12)


def test_series_are_grouped_by_length_keeping_their_order():
    groups = by_length([np.zeros(n) for n in (3, 70, 3, 45)])
    assert {n: g.tolist() for n, g in groups.items()} == {3: [0, 2], 45: [3], 70: [1]}
