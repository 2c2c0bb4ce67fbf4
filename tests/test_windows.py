"""Windowing: counts, contents, padding, recent windows."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forecast.windows import last_windows, left_pad, make_windows, split_windows, validation_length

series_st = st.lists(arrays(float, st.integers(1, 40), elements=st.floats(-1e3, 1e3, allow_nan=False)),
                     min_size=1, max_size=5)


@given(series_st, st.integers(1, 10), st.integers(1, 6))
def test_window_count_and_contents(series, lookback, h):
    x, y = make_windows(series, lookback, h)
    expected = sum(max(len(s), lookback + h) - lookback - h + 1 for s in series)
    assert x.shape == (expected, lookback) and y.shape == (expected, h)
    # the first window of the first series is its (padded) start
    padded = left_pad(series[0], lookback + h)
    np.testing.assert_allclose(x[0], padded[:lookback], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(y[0], padded[lookback:lookback + h], rtol=1e-6, atol=1e-4)


@given(series_st, st.integers(1, 10), st.integers(1, 6))
def test_validation_targets_are_the_last_h_points_and_training_never_sees_them(series, lookback, h):
    weights = np.arange(1.0, len(series) + 1)
    train, val = split_windows(series, lookback, h, weights=weights)
    long = [len(s) >= validation_length(h) for s in series]
    if not any(long):
        assert val is None
    else:
        x_val, y_val, w_val = val
        assert x_val.shape == (sum(long), lookback) and y_val.shape == (sum(long), h)
        for s, target in zip([s for s, ok in zip(series, long) if ok], y_val):
            np.testing.assert_allclose(target, left_pad(s, lookback + h)[-h:], rtol=1e-6, atol=1e-4)
        assert w_val.tolist() == weights[np.array(long)].tolist()
    # long series train on the windows before their last h points, short ones on all of theirs
    counts = [max(len(s) - h if ok else len(s), lookback + h) - lookback - h + 1 for s, ok in zip(series, long)]
    assert len(train[0]) == sum(counts)
    assert train[2].tolist() == np.repeat(weights, counts).tolist()


@given(series_st, st.integers(1, 8), st.integers(1, 4), st.integers(1, 5))
def test_recent_keeps_each_series_last_windows(series, lookback, h, recent):
    x_all, y_all = make_windows(series, lookback, h)
    x, y = make_windows(series, lookback, h, recent)
    counts = [max(len(s), lookback + h) - lookback - h + 1 for s in series]
    assert len(x) == sum(min(c, recent) for c in counts)
    ends = np.cumsum(counts)  # each series' windows end at these rows of the full set
    keep = np.concatenate([np.arange(e - min(c, recent), e) for e, c in zip(ends, counts)])
    np.testing.assert_array_equal(x, x_all[keep])
    np.testing.assert_array_equal(y, y_all[keep])


def test_last_windows_pad_short_histories():
    out = last_windows([np.array([1.0, 2.0]), np.arange(10.0)], 4)
    assert out.tolist() == [[1.0, 1.0, 1.0, 2.0], [6.0, 7.0, 8.0, 9.0]]


@pytest.mark.parametrize("n", [3, 5])
def test_left_pad_keeps_long_series(n):
    y = np.arange(float(n))
    assert left_pad(y, 3) is y
