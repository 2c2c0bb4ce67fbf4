"""The nets' statistical partner (forecast.models.partner): the Theta line, the choice of partner and weight on
the validation windows, and the combined forecast a fitted net gives, saved and loaded."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import registry
from forecast.data import ID, TARGET, split_holdout
from forecast.models import partner
from forecast.models.partner import ALPHAS, DAMPED_GRID, KINDS, choose_partner, damped_lines, theta_lines
from forecast.transforms import Stacked

TINY = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12}
H = 6


def theta_by_hand(z: np.ndarray, h: int) -> np.ndarray:
    """Simple exponential smoothing at each weight, the one of least in-sample one-step squared error, plus half
    the least-squares slope per step: one series at a time, in plain Python."""
    best = None
    for alpha in ALPHAS:
        level, sse = z[0], 0.0
        for value in z[1:]:
            sse += (value - level) ** 2
            level += alpha * (value - level)  # alpha * value + (1 - alpha) * level, rounded as the library does
        if best is None or sse < best[0]:
            best = (sse, level)
    t = np.arange(len(z)) - (len(z) - 1) / 2
    slope = float(z @ t / (t @ t)) if len(z) > 1 else 0.0
    return best[1] + 0.5 * slope * np.arange(1, h + 1)


def damped_by_hand(z: np.ndarray, h: int) -> np.ndarray:
    """Exponential smoothing with a damped trend at each (alpha, beta, phi) of the grid, the one of least in-sample
    one-step squared error: one series at a time, in plain Python."""
    best = None
    first = min(len(z) - 1, 3)
    for alpha, beta, phi in DAMPED_GRID:
        level, trend, sse = z[0], (z[first] - z[0]) / first if first else 0.0, 0.0
        for value in z[1:]:
            error = value - (level + phi * trend)
            sse += error ** 2
            level, trend = level + phi * trend + alpha * error, phi * trend + alpha * beta * error
        if best is None or sse < best[0]:
            best = (sse, level, trend, phi)
    _, level, trend, phi = best
    return level + np.cumsum(phi ** np.arange(1, h + 1)) * trend


@pytest.mark.parametrize("lines, by_hand, rtol, atol", [(theta_lines, theta_by_hand, 1e-9, 1e-6),
                                                       (damped_lines, damped_by_hand, 1e-7, 1e-5)])
@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), min_size=1, max_size=6),
       st.integers(1, 10))
def test_the_lines_equal_their_method_computed_one_series_at_a_time(lines, by_hand, rtol, atol, values, h):
    series = [np.array(v) for v in values]
    np.testing.assert_allclose(lines(series, h), np.stack([by_hand(s, h) for s in series]), rtol=rtol, atol=atol)


def test_a_damped_trend_levels_off_where_a_theta_line_keeps_rising():
    line = 3.0 + 2.0 * np.arange(30)
    damped = damped_lines([line, np.array([7.0])], 200)
    np.testing.assert_allclose(damped[1], 7.0)  # one point: its level, no trend
    steps = np.diff(damped[0])
    assert line[-1] + 1.5 < damped[0][0] < line[-1] + 2.0  # nearly the line's next point
    assert (steps > 0).all() and (np.diff(steps) < 0).all()  # rising ever more slowly
    assert damped[0][-1] < line[-1] + 2.0 * (1 / (1 - DAMPED_GRID[:, 2].max()))  # bounded: the sum of phi^k
    assert damped[0][-1] < theta_lines([line], 200)[0][-1]  # where the line, at half its slope, goes on


def test_a_straight_line_is_continued_at_half_its_slope():
    line = 3.0 + 2.0 * np.arange(30)
    np.testing.assert_allclose(theta_lines([line, np.array([7.0])], 3),
                               [[line[-1] + 1.0, line[-1] + 2.0, line[-1] + 3.0], [7.0, 7.0, 7.0]])


def test_the_partner_and_weight_with_the_lowest_validation_mase_are_chosen():
    rng = np.random.default_rng(0)
    histories = [rng.normal(10, 1, 30) for _ in range(5)]
    net, ar, theta = (rng.normal(10, 1, (5, 4)) for _ in range(3))
    actual = 0.25 * net + 0.75 * theta
    kind, weight, scores = choose_partner(histories, actual, net, {"ar": ar, "theta": theta}, 1)
    assert (kind, weight) == ("theta", 0.25) and scores["theta:0.25"] == 0.0
    assert len(scores) == 10 and min(scores.values()) == 0.0
    # a tie goes to the net, then to AR, then to the partner named first
    assert choose_partner(histories, net, net, {"ar": ar, "theta": theta}, 1)[:2] == ("ar", 1.0)
    assert choose_partner(histories, ar, net, {"ar+theta": ar, "ar": ar}, 1)[:2] == ("ar", 0.0)
    assert choose_partner(histories, ar, net, {"theta": ar, "ar+theta": ar}, 1)[:2] == ("theta", 0.0)


def test_another_partner_replaces_ar_only_beyond_one_standard_error():
    rng = np.random.default_rng(1)
    histories = [np.full(30, 10.0) + rng.normal(0, 1, 30) for _ in range(40)]
    actual = rng.normal(10, 1, (40, 4))
    far = actual + 1.0  # AR one unit off on every series
    net = actual + 5.0  # the net so far off that each partner takes all the weight
    steady = actual + 0.9  # 0.1 better on every series: beyond any noise
    noisy = actual + np.where(np.arange(40) % 2, 0.25, 1.7)[:, None]  # 0.025 better on average, 0.75 either way
    kinds = lambda partners: choose_partner(histories, actual, net, partners, 1)[:2]  # noqa: E731
    assert kinds({"ar": far, "theta": steady}) == ("theta", 0.0)
    assert kinds({"ar": far, "theta": noisy}) == ("ar", 0.0)
    one = [histories[0]]  # one series: no standard error, so no evidence against AR
    assert choose_partner(one, actual[:1], net[:1], {"ar": far[:1], "theta": steady[:1]}, 1)[:2] == ("ar", 0.0)
    assert choose_partner(one, actual[:1], net[:1], {"theta": steady[:1]}, 1)[:2] == ("theta", 0.0)


def test_a_later_generation_replaces_the_pick_only_as_the_lowest_of_all_beyond_one_standard_error():
    rng = np.random.default_rng(2)
    histories = [np.full(30, 10.0) + rng.normal(0, 1, 30) for _ in range(40)]
    actual = rng.normal(10, 1, (40, 4))
    net = actual + 5.0  # so far off that each partner takes all the weight
    kinds = lambda partners: choose_partner(histories, actual, net, partners, 1)[:2]  # noqa: E731
    # the Theta line beats AR beyond noise and is the pick; the seasonal naive beats the line beyond noise too
    assert kinds({"ar": actual + 1.0, "theta": actual + 0.9, "snaive": actual + 0.8}) == ("snaive", 0.0)
    # the seasonal naive beats AR beyond noise, but the Theta line (kept out by AR) is lower still: AR stays
    assert kinds({"ar": actual + 1.0, "theta": actual + np.where(np.arange(40) % 2, 0.0, 1.8)[:, None],
                  "snaive": actual + 0.95}) == ("ar", 0.0)
    assert kinds({"ar": actual + 1.0, "snaive": actual + 0.95}) == ("snaive", 0.0)  # without the line: replaced
    # a seasonal naive only within noise of the pick does not replace it
    noisy = actual + np.where(np.arange(40) % 2, 0.25, 1.7)[:, None]
    assert kinds({"ar": actual + 1.0, "snaive": noisy}) == ("ar", 0.0)


def test_the_seasonal_naive_repeats_the_last_season_or_the_last_value():
    np.testing.assert_array_equal(partner.seasonal_naives([np.arange(10.0), np.array([3.0, 5.0])], 7, 4),
                                  [[6, 7, 8, 9, 6, 7, 8], [5, 5, 5, 5, 5, 5, 5]])


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = split_holdout(data.df, H)
    return train, registry.create("gru", **TINY).fit(train, data.freq, H)


def test_a_net_forecasts_its_weight_times_its_own_plus_the_rest_times_its_partner(data, fitted):
    train, model = fitted
    details = model.fit_details()[0]
    assert details["combine_partner"] == model.partner_kind_ in KINDS
    assert details["combine_weight"] == model.combine_weight_ in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert len(details["combine_validation_mase"].split(",")) == len(KINDS) * 5  # every partner at every weight
    ids = sorted(train[ID].unique())
    series = [train.loc[train[ID] == i, TARGET].to_numpy(float) for i in ids]
    w = model.combine_weight_
    transforms, scaled = model._transformed(series)
    stacked = Stacked(transforms)
    ar = model.partner_._forecast(ids, series, H) if model.partner_ is not None else None
    combined = partner.partner_forecast(model.partner_kind_, ar, stacked.inverse(theta_lines(scaled, H)),
                                        stacked.inverse(damped_lines(scaled, H)),
                                        partner.seasonal_naives(series, H, data.freq.season))
    expected = w * stacked.inverse(model._net_z(ids, scaled, H)) + (1 - w) * combined
    np.testing.assert_allclose(model.predict()["yhat"].to_numpy().reshape(len(ids), H), expected, rtol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_each_partner_saves_and_loads_to_the_same_forecasts(data, kind, tmp_path):
    train, _ = split_holdout(data.df, H)
    model = registry.create("gru", **TINY, combine=kind).fit(train, data.freq, H)
    assert model.partner_kind_ == kind
    assert (model.partner_ is None) == (not partner.uses(kind, "ar"))  # no AR fitted where the partner does not use it
    loaded = registry.load(model.save(tmp_path / kind))
    assert loaded.partner_kind_ == kind and loaded.combine_weight_ == model.combine_weight_
    np.testing.assert_allclose(loaded.predict(df=train)["yhat"], model.predict()["yhat"], rtol=1e-9)


def test_a_model_saved_before_the_theta_partner_still_combines_with_ar(data, tmp_path):
    train, _ = split_holdout(data.df, H)
    model = registry.create("gru", **TINY, combine="ar").fit(train, data.freq, H)
    path = model.save(tmp_path / "old")
    doc = json.loads((path / "forecaster.json").read_text())
    del doc["state"]["partner_kind"]
    (path / "forecaster.json").write_text(json.dumps(doc))
    old = registry.load(path)
    assert old.partner_kind_ == "ar"
    np.testing.assert_allclose(old.predict(df=train)["yhat"], model.predict()["yhat"], rtol=1e-9)


def test_an_unknown_partner_is_refused():
    choices = ("auto, ar, ar\\+theta, theta, damped, ar\\+damped, theta\\+damped, snaive, ar\\+snaive, "
               "theta\\+snaive, none")
    with pytest.raises(Exception, match=f"--combine ets: unknown; choose one of {choices}"):
        registry.create("gru", combine="ets")
