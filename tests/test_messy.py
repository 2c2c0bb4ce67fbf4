"""Real users' files: delimiters, BOM, gaps and missing values, duplicates, irregular stamps, time zones,
degenerate series, and a fuzz test: every outcome is a load or a one-line ForecastError."""

import numpy as np
import pandas as pd
import pytest
from conftest import write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecast import registry
from forecast.data import load_series, split_holdout
from forecast.errors import DataError, ForecastError


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiters_bom_and_quoted_fields(tmp_path, sep):
    rows = "".join(f'"2000-{m:02d}-01"{sep}"{m * 1.5}"\n' for m in range(1, 13))
    path = tmp_path / "q.csv"
    path.write_bytes(("\ufeff" + f"month{sep}sales\n" + rows).encode("utf-8"))
    data = load_series(path)
    assert data.columns.time_col == "month" and data.columns.target_col == "sales"
    assert data.df["y"].tolist() == [m * 1.5 for m in range(1, 13)]


GAPPY = "month,y\n2000-01-01,1\n2000-02-01,2\n2000-04-01,4\n2000-05-01,\n2000-06-01,8\n"


@pytest.mark.parametrize("fill, expected", [
    ("interpolate", [1, 2, 3, 4, 6, 8]),
    ("ffill", [1, 2, 2, 4, 4, 8]),
    ("zero", [1, 2, 0, 4, 0, 8]),
])
def test_gaps_and_missing_values_are_filled_on_request(tmp_path, fill, expected):
    data = load_series(write(tmp_path, "g.csv", GAPPY), fill=fill)
    assert data.df["y"].tolist() == expected
    assert data.df["ds"].tolist() == list(pd.date_range("2000-01-01", periods=6, freq="MS"))


def test_missing_values_are_refused_by_default_naming_the_row(tmp_path):
    path = write(tmp_path, "m.csv", "month,y\n2000-01-01,1\n2000-02-01,\n2000-03-01,3\n2000-04-01,4\n")
    with pytest.raises(DataError) as info:
        load_series(path)
    assert str(info.value) == (f"{path}: row 3: missing value in series 'y' (1 in all); fill them with "
                               "--fill interpolate, ffill or zero")


def test_leading_and_trailing_missing_values_shorten_the_series(tmp_path):
    path = write(tmp_path, "t.csv", "unique_id,ds,y\na,1,\na,2,\na,3,5\na,4,6\na,5,7\na,6,\nb,1,1\nb,2,2\nb,3,3\n")
    df = load_series(path).df
    assert df[df.unique_id == "a"]["ds"].tolist() == [3, 4, 5] and df["y"].isna().sum() == 0
    with pytest.raises(DataError, match="series 'c' has no values; remove it"):
        load_series(write(tmp_path, "e.csv", "unique_id,ds,y\nc,1,\nc,2,\nd,1,1\nd,2,2\nd,3,3\n"))


@pytest.mark.parametrize("how, expected", [("mean", 3.5), ("sum", 7.0), ("last", 5.0)])
def test_duplicates_are_aggregated_on_request(tmp_path, how, expected):
    path = write(tmp_path, "d.csv", "month,y\n2000-01-01,1\n2000-02-01,2\n2000-02-01,5\n2000-03-01,3\n")
    df = load_series(path, aggregate=how).df
    assert df["y"].tolist() == [1.0, expected, 3.0]


def test_irregular_stamps_are_refused_and_freq_overrides(tmp_path):
    daily = "day,y\n" + "".join(f"2000-01-{d:02d},{d}\n" for d in range(1, 11))
    irregular = daily.replace("2000-01-05,5", "2000-01-05 12:00,5")
    path = write(tmp_path, "i.csv", irregular)
    with pytest.raises(DataError, match=r"row 6: time stamp 2000-01-05 12:00:00 of series 'y' is off the D grid"):
        load_series(path)
    weekly = write(tmp_path, "w.csv", "day,y\n" + "".join(f"2000-01-{d:02d},{d}\n" for d in (2, 9, 16, 23, 30)))
    assert load_series(weekly).freq.alias == "W-SUN"
    with pytest.raises(DataError, match="has 4 gap"):
        load_series(weekly, freq="D")


def test_time_zones_are_kept_through_to_the_forecast(tmp_path):
    rows = "".join(f"{t.isoformat()},{i}\n" for i, t in enumerate(pd.date_range("2024-03-01", periods=48,
                                                                               freq="h", tz="Australia/Sydney")))
    data = load_series(write(tmp_path, "tz.csv", "time,load\n" + rows))
    assert str(data.df["ds"].dt.tz) in ("UTC+11:00", "Australia/Sydney") or data.df["ds"].dt.tz is not None
    model = registry.create("seasonal-naive").fit(data.df, data.freq, 3)
    out = model.predict()
    assert out["ds"].iloc[0] == data.df["ds"].iloc[-1] + pd.Timedelta("1h")
    assert out["ds"].dt.tz is not None


@pytest.mark.parametrize("values", [np.full(40, 7.0), np.zeros(40), -np.arange(40.0) - 5, 1e9 + np.arange(40.0)])
@pytest.mark.parametrize("name", ["ar", "gru", "transformer", "seasonal-naive"])
def test_degenerate_series_forecast_without_nan(tmp_path, values, name):
    path = tmp_path / "s.csv"
    pd.DataFrame({"ds": pd.date_range("2000-01-01", periods=40, freq="MS"), "y": values}).to_csv(path, index=False)
    data = load_series(path)
    train, _ = split_holdout(data.df, 6)
    params = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12} if name in registry.NEURAL else {}
    out = registry.create(name, **params).fit(train, data.freq, 6).predict()
    assert np.isfinite(out["yhat"]).all() and len(out) == 6


cells = st.one_of(st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(str),
                  st.sampled_from(["", "NaN", "inf", "-inf", "abc", "2000-01-01", "01/02/2000", "2000-13-45",
                                   "1e309", '"x,y"', "\u00e9", "  ", "2000-01-01T00:00:00+05:00"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=200).map(lambda b: b),
    st.lists(st.lists(cells, min_size=1, max_size=4), max_size=12).map(
        lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8")),
    st.lists(st.tuples(st.sampled_from(["2000-01-01", "2000-02-01", "2000-03-01", "2000-05-01", "x", ""]), cells),
             max_size=12).map(lambda rows: ("ds,y\n" + "\n".join(f"{a},{b}" for a, b in rows)).encode("utf-8")),
))
def test_fuzzed_files_load_or_fail_with_one_line(tmp_path, content):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        data = load_series(path)
    except ForecastError as exc:
        message = str(exc)
        assert message and "\n" not in message and str(path) in message or message.startswith("--")
        return
    assert data.df["y"].notna().all() and np.isfinite(data.df["y"]).all()
    assert data.df.groupby("unique_id")["ds"].apply(lambda s: s.is_monotonic_increasing and s.is_unique).all()


def test_mixed_frequencies_and_rows_longer_than_the_header_are_refused(tmp_path):
    monthly = "".join(f"m,2000-{k:02d}-01,{k}\n" for k in range(1, 13))
    quarterly = "".join(f"q,2000-{k:02d}-01,{k}\n" for k in (1, 4, 7, 10))
    path = write(tmp_path, "mixed.csv", "unique_id,ds,y\n" + monthly + quarterly)
    with pytest.raises(DataError, match="series 'q' steps every 3 x MS, not at the MS of the rest"):
        load_series(path, fill="interpolate")  # never silently upsampled
    later = write(tmp_path, "later.csv", "ds,y\n2000-01-01,1\n2000-02-01,2,7\n2000-03-01,3\n")
    with pytest.raises(DataError, match=r"not a readable CSV \(Error tokenizing data. C error: Expected 2 fields "
                                        r"in line 3, saw 3\)"):
        load_series(later)
    first = write(tmp_path, "first.csv", "ds,y\n2000-01-01,1,7,8\n2000-02-01,2\n2000-03-01,3\n")
    with pytest.raises(DataError, match="some rows have more fields than the header; fix those rows"):
        load_series(first)
