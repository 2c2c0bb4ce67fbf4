"""Seasonal adjustment and log/standard scaling: the seasonality test, the indices, exact inverses, the sMAPE loss."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forecast.metrics import smape
from forecast.training import smape_loss
from forecast.transforms import SeriesTransform, is_seasonal, seasonal_indices

FACTORS = np.array([0.8, 0.9, 1.0, 1.1, 1.3, 1.2, 1.0, 0.9, 0.85, 0.95, 1.0, 1.0])


def seasonal_series(n=96, trend=0.01, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 * np.exp(trend * t) * FACTORS[t % 12] * np.exp(noise * rng.standard_normal(n))


def test_the_seasonality_test_finds_a_seasonal_series_and_not_noise():
    assert is_seasonal(seasonal_series(noise=0.02), 12)
    noise = 100 + np.random.default_rng(1).standard_normal(96)
    assert not is_seasonal(noise, 12)
    assert not is_seasonal(seasonal_series(n=30), 12)  # fewer than three seasons: never called seasonal
    assert not is_seasonal(seasonal_series(), 1)


def test_seasonal_indices_recover_multiplicative_factors():
    index = seasonal_indices(seasonal_series(n=120, trend=0.0), 12)
    np.testing.assert_allclose(index, FACTORS / FACTORS.mean(), rtol=1e-9)
    assert index.mean() == pytest.approx(1.0)


def test_forecasting_the_adjusted_level_continues_the_seasonal_pattern():
    y = seasonal_series(n=108, trend=0.0)  # 9 years: the next 18 months are the same factors again
    t = SeriesTransform.fit(y[:90], 12)
    assert t.log and t.index is not None
    z = t.transform(y[:90])
    np.testing.assert_allclose(z, np.log(100 * FACTORS.mean()), rtol=1e-9)  # flat once adjusted
    np.testing.assert_allclose(t.inverse(np.full(18, z[-1])), y[90:], rtol=1e-9)


@given(arrays(float, st.integers(2, 60), elements=st.floats(-1e4, 1e4, allow_nan=False)), st.sampled_from([1, 4, 12]))
def test_transform_then_inverse_is_the_identity(y, season):
    t = SeriesTransform.fit(y, season)
    z = t.transform(y)
    assert np.all(np.isfinite(z))
    # inverse from position 0: the history itself
    np.testing.assert_allclose(t.inverse(z, start=0), y, rtol=1e-7, atol=1e-6 * max(1.0, np.abs(y).max()))


@given(arrays(float, st.integers(36, 96), elements=st.floats(0, 1e4)), st.integers(1, 5))
def test_series_with_zeros_keep_their_logs_and_invert_exactly(y, zeros):
    y[:zeros] = 0.0  # e.g. months when the business was closed
    if y.max() == 0:
        return
    t = SeriesTransform.fit(y, 12)
    assert t.log and t.shift == pytest.approx(0.1 * y.mean())
    z = t.transform(y)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(t.inverse(z, start=0), y, rtol=1e-7, atol=1e-6 * max(1.0, y.max()))
    assert np.all(t.inverse(z - 50) >= 0)  # forecasts never fall below zero


def test_a_seasonal_series_with_closed_months_is_seasonally_adjusted():
    y = seasonal_series(n=96, trend=0.0, noise=0.02)
    y[np.arange(96) % 12 == 0] = 0.0  # closed every January
    t = SeriesTransform.fit(y, 12)
    assert t.log and t.index is not None and t.index[0] < 0.2 * t.index[1:].mean()
    # once adjusted, the closed months sit at the level of the others
    z = t.transform(y)
    assert np.std(z) < 0.1
    old = SeriesTransform.fit(y, 12, shift_zeros=False)  # before: standardised, seasonality left in
    assert not old.log and old.index is None


def test_non_positive_and_constant_series_are_standardised_without_dividing_by_zero():
    mixed = SeriesTransform.fit(np.array([-1.0, 0.0, 1.0, 2.0]), 1)  # negative values: standardised
    assert not mixed.log and mixed.loc == pytest.approx(0.5) and mixed.index is None
    for constant in (np.full(10, 5.0), np.zeros(10)):
        t = SeriesTransform.fit(constant, 1, log=False)
        assert t.scale > 0 and np.all(np.isfinite(t.transform(constant)))
    assert SeriesTransform.fit(seasonal_series(), 12, deseasonalize=False).index is None


@given(arrays(float, st.integers(1, 30), elements=st.floats(0.01, 1e4)),
       arrays(float, st.integers(1, 30), elements=st.floats(0.01, 1e4)))
def test_smape_loss_on_logs_is_smape(a, b):
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    loss = smape_loss(torch.as_tensor(np.log(a)), torch.as_tensor(np.log(b))).item()
    assert loss * 100 == pytest.approx(smape(b, a), rel=1e-9, abs=1e-9)
