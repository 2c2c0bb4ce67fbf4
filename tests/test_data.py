"""CSV loading: column detection, frequency inference, validation errors, splits and future time stamps."""

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, SHARED, write
from hypothesis import given
from hypothesis import strategies as st

from forecast.data import (
    Frequency,
    default_horizon,
    future_frame,
    load_series,
    season_of,
    series_arrays,
    split_holdout,
)
from forecast.data.splits import rolling_origins, scorable_folds
from forecast.errors import DataError


def test_single_series_columns_and_monthly_frequency_are_detected(air_csv):
    data = load_series(air_csv)
    assert (data.columns.id_col, data.columns.time_col, data.columns.target_col) == (None, "month", "passengers")
    assert data.freq == Frequency(alias="MS", step=1, season=12)
    assert data.n_series == 1 and data.n_points == 144
    assert data.df["unique_id"].unique().tolist() == ["passengers"]
    assert data.df["ds"].iloc[0] == pd.Timestamp("1949-01-01") and data.df["y"].iloc[-1] == 432.0
    assert len(data.sha256) == 64


def test_long_format_is_picked_up_by_its_default_names():
    data = load_series(DATA / "m3_monthly_train.csv")
    assert data.columns.id_col == "unique_id"
    assert data.n_series == 1428 and data.n_points == 141858
    assert data.freq.season == 12
    # sorted by series then time
    first = data.df[data.df["unique_id"] == data.df["unique_id"].iloc[0]]["ds"]
    assert first.is_monotonic_increasing


@pytest.mark.parametrize("stamps, alias, season", [
    (pd.date_range("2000-01-01", periods=30, freq="QS"), "QS-JAN", 4),
    (pd.date_range("2000-01-01", periods=30, freq="YS"), "YS-JAN", 1),
    (pd.date_range("2000-01-02", periods=30, freq="W"), "W-SUN", 52),
    (pd.date_range("2000-01-01", periods=30, freq="D"), "D", 7),
    (pd.date_range("2000-01-01", periods=30, freq="h"), "h", 24),
    (pd.date_range("2000-01-01", periods=30, freq="30min"), "30min", 48),
])
def test_frequency_and_season_are_inferred(tmp_path, stamps, alias, season):
    path = tmp_path / "s.csv"
    pd.DataFrame({"when": stamps, "value": np.arange(30.0)}).to_csv(path, index=False)
    data = load_series(path)
    assert data.freq.alias == alias and data.freq.season == season


def test_integer_time_index_and_semicolon_delimiter(tmp_path):
    path = write(tmp_path, "int.csv", "t;value\n" + "".join(f"{2 * i};{i * 1.5}\n" for i in range(20)))
    data = load_series(path)
    assert data.columns.time_col == "t"
    assert data.freq == Frequency(alias=None, step=2, season=1)
    assert list(data.freq.future(38, 3)) == [40, 42, 44]


def test_rows_are_sorted_by_time(tmp_path):
    path = write(tmp_path, "shuffled.csv", "ds,y\n2000-03-01,3\n2000-01-01,1\n2000-02-01,2\n2000-04-01,4\n")
    assert load_series(path).df["y"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_season_override_and_aliases():
    assert season_of("MS") == 12 and season_of("QS-OCT") == 4 and season_of("15min") == 96
    data = load_series(DATA / "air_passengers.csv", season=6)
    assert data.freq.season == 6


def test_electricity_needs_a_named_target_then_loads_half_hourly():
    path = SHARED / "data" / "electricity_demand_vic_2014.csv"
    if not path.exists():
        pytest.skip("shared data not beside the checkout")
    with pytest.raises(DataError, match="ambiguous target, numeric columns demand_gw, temperature, workday"):
        load_series(path)
    data = load_series(path, target_col="demand_gw")
    assert data.freq.alias == "30min" and data.freq.season == 48 and data.n_points == 17520


@pytest.mark.parametrize("text, message", [
    ("month,name\n2000-01-01,a\n2000-02-01,b\n",
     "no numeric column to forecast (columns: month, name); name it with --target"),
    ("month,a,b\n2000-01-01,1,2\n2000-02-01,3,4\n",
     "ambiguous target, numeric columns a, b; name one with --target"),
    ("start,end,y\n2000-01-01,2000-02-01,1\n2000-02-01,2000-03-01,2\n",
     "ambiguous time column, candidates start, end; name one with --time-col"),
    ("month,y\n2000-01-01,1\n2000-02-01,2\nnot a date,3\n",
     "row 4: cannot parse 'not a date' in column 'month' as a date; fix or remove the row"),
    ("month,y\n2000-01-01,1\n2000-02-01,2\n2000-03-01,2\n2000-03-01,5\n",
     "row 5: duplicate time stamp 2000-03-01 00:00:00 in series 'y'; remove the duplicates or pass "
     "--aggregate mean, sum or last"),
    ("month,y\n2000-01-01,1\n2000-02-01,abc\n2000-03-01,3\n2000-04-01,4\n",
     "row 3: 'abc' in column 'y' is not a number; fix or remove the row"),
    ("month,y\n2000-01-01,1\n2000-02-01,2\n2000-03-01,3\n2000-05-01,4\n",
     "series 'y' has 1 gap(s) at MS, the first between 2000-03-01 00:00:00 and 2000-05-01 00:00:00 (row 5); "
     "fill them with --fill interpolate, ffill or zero, or give the right --freq"),
    ("", "the file is empty; give a CSV with a header row and data"),
    ("month,y\n", "the file has a header but no data rows"),
])
def test_bad_files_get_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as info:
        load_series(path)
    assert str(info.value) == f"{path}: {message}"
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_column_options(tmp_path, air_csv):
    with pytest.raises(DataError, match=r"nope.csv: no such file; check the path"):
        load_series(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"no column 'sales' \(from --target\); the columns are month, passengers"):
        load_series(air_csv, target_col="sales")


def test_duplicates_are_named_per_series_in_long_format(tmp_path):
    path = write(tmp_path, "long.csv", "unique_id,ds,y\na,1,1\na,2,2\nb,1,1\nb,1,2\nb,2,3\n")
    with pytest.raises(DataError, match="row 5: duplicate time stamp 1 in series 'b'"):
        load_series(path)


def test_split_holdout_takes_the_last_h_of_every_series(m3_csv):
    data = load_series(m3_csv)
    train, test = split_holdout(data.df, 5)
    assert (test.groupby("unique_id").size() == 5).all()
    assert len(train) + len(test) == data.n_points
    last_train = train.groupby("unique_id")["ds"].max()
    first_test = test.groupby("unique_id")["ds"].min()
    assert (last_train < first_test).all()


@given(st.integers(1, 60), st.integers(1, 8), st.integers(1, 8), st.integers(1, 6))
def test_scorable_folds_are_the_origins_rolling_origins_scores(length, h, step, most):
    """As many origins as a series of `length` points is scored at by rolling_origins (at least one), and no more."""
    df = pd.DataFrame({"unique_id": "a", "ds": np.arange(length), "y": np.arange(length, dtype=float)})
    folds = scorable_folds(length, h, step, most)
    scored = [not test.empty for _, test in rolling_origins(df, h, folds, step)]
    assert 1 <= folds <= most
    assert all(scored) or folds == 1
    if folds < most:  # one more origin would not be scored
        assert rolling_origins(df, h, folds + 1, step)[0][1].empty


def test_default_horizon_is_a_season_or_a_fifth_of_the_shortest_series():
    assert default_horizon(pd.Series([100, 50]), 12) == 12
    assert default_horizon(pd.Series([100, 30]), 1) == 6
    assert default_horizon(pd.Series([3]), 1) == 1


def test_future_frame_continues_each_series_at_its_frequency(m3_csv):
    data = load_series(m3_csv)
    ids, _ = series_arrays(data.df)
    out = future_frame(data.df, data.freq, 3, ids, np.zeros((len(ids), 3)))
    for uid in ids:
        last = data.df[data.df["unique_id"] == uid]["ds"].max()
        expected = pd.date_range(last, periods=4, freq="MS")[1:]
        assert list(out[out["unique_id"] == uid]["ds"]) == list(expected)
