"""Big files read and forecast in chunks of whole series (forecast.data.chunks): the same forecasts as the whole
file, one-line errors that name the file's own rows, and no half-written output."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import api
from forecast.cli import main
from forecast.data import chunks
from forecast.errors import DataError


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """60 real M3 monthly series (3,042 rows) as CSV and Parquet, and an AR model trained on them (a local
    model folder: the store of each test is its own)."""
    import mlflow

    folder = tmp_path_factory.mktemp("chunks")
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    df = df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:60])].reset_index(drop=True)
    df.to_csv(folder / "m3.csv", index=False)
    df.to_parquet(folder / "m3.parquet", index=False, row_group_size=700)  # row groups that cut series
    store = f"sqlite:///{folder}/mlflow.db"
    trained = api.train(folder / "m3.csv", "ar", horizon=6, experiment="chunks", tracking_uri=store)
    mlflow.set_tracking_uri(store)
    local = mlflow.artifacts.download_artifacts(trained.model_uri, dst_path=str(folder / "model"))
    return df, folder, local.rstrip("/")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", ["m3.parquet", "m3.csv"])
def test_chunks_of_whole_series_forecast_as_the_whole_file(history, name, monkeypatch):
    df, folder, uri = history
    whole = api.predict(uri, folder / name, 6, levels=(80, 95))
    monkeypatch.setattr(chunks, "CSV_CHUNK_BYTES", 0)  # the CSV too is read in chunks
    parts = list(api.predict_chunks(uri, folder / name, 6, levels=(80, 95), chunk_rows=500))
    assert len(parts) >= 6  # 500-row pieces of 3,042 rows
    for part in parts:  # every series whole, in one chunk
        assert (part.groupby("unique_id").size() == 6).all()
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert whole["unique_id"].nunique() == 60 and len(whole) == 360


def test_the_cli_writes_chunk_by_chunk_the_same_file(history, monkeypatch, tmp_path):
    df, folder, uri = history
    expected = api.predict(uri, folder / "m3.parquet", 6, levels=(95,))
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 900)
    for out in (tmp_path / "f.parquet", tmp_path / "f.csv"):
        done = invoke("predict", uri, folder / "m3.parquet", "-H", 6, "--level", 95, "-o", out)
        assert done.exit_code == 0, done.output
        assert f"wrote 360 forecasts for 60 series to {out}" in done.output
        written = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out, parse_dates=["ds"])
        pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    printed = invoke("predict", uri, folder / "m3.parquet", "-H", 6)
    lines = printed.output.strip().splitlines()
    assert lines[0] == "unique_id,ds,yhat" and len(lines) == 361  # one header over all chunks


def test_a_series_split_across_the_file_is_refused_naming_it_and_its_row(history, monkeypatch, tmp_path):
    df, folder, uri = history
    first = df["unique_id"].iloc[0]
    moved = pd.concat([df.iloc[10:], df.iloc[:10]], ignore_index=True)  # 10 rows of the first series at the end
    path = tmp_path / "split.parquet"
    moved.to_parquet(path, index=False)
    out = tmp_path / "out.csv"
    with monkeypatch.context() as patch:
        patch.setattr(chunks, "CHUNK_ROWS", 1000)
        done = invoke("predict", uri, path, "-H", 6, "-o", out)
    assert done.exit_code == 1
    row = len(df) - 10 + 2  # the file's line: the header is line 1
    assert done.output.strip() == (f"Error: {path}: row {row}: series '{first}' again after other series; a file "
                                   "this large is read in chunks of whole series, so sort it by id and time (or "
                                   "keep each series' rows together)")
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))  # no half-written forecasts
    assert len(api.predict(uri, path, 6)) == 360  # read whole (it is small), the same file forecasts


def test_an_error_in_a_later_chunk_names_the_files_row(history, tmp_path, monkeypatch):
    df, folder, uri = history
    bad = df.astype({"y": object})
    bad.loc[3000, "y"] = "abc"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    monkeypatch.setattr(chunks, "CSV_CHUNK_BYTES", 0)
    with pytest.raises(DataError, match=r"row 3002: 'abc' in column 'y' is not a number"):
        list(api.predict_chunks(uri, path, 6, chunk_rows=1000))


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.integers(1, 30), min_size=1, max_size=25), size=st.integers(1, 90))
def test_series_chunks_hold_each_series_whole_once(runs, size):
    ids = np.repeat([f"s{i}" for i in range(len(runs))], runs)
    frame = pd.DataFrame({"unique_id": ids, "y": np.arange(len(ids), dtype=float)})
    pieces = [frame.iloc[i:i + size].reset_index(drop=True) for i in range(0, len(frame), size)]
    out = list(chunks.series_chunks(iter(pieces), "unique_id", "f.csv"))
    pd.testing.assert_frame_equal(pd.concat([c for _, c in out], ignore_index=True), frame)
    starts = [s for s, _ in out]
    assert starts == list(np.cumsum([0] + [len(c) for _, c in out[:-1]]))
    owners = [set(c["unique_id"]) for _, c in out]
    assert sum(len(o) for o in owners) == len(runs)  # no series in two chunks


def test_series_met_again_inside_one_chunk_is_refused():
    frame = pd.DataFrame({"unique_id": ["a", "a", "b", "a", "c", "c"], "y": range(6)})
    with pytest.raises(DataError, match=r"f.csv: row 5: series 'a' again after other series"):
        list(chunks.series_chunks(iter([frame.iloc[:5], frame.iloc[5:]]), "unique_id", "f.csv"))
    whole = list(chunks.series_chunks(iter([frame]), "unique_id", "f.csv"))  # read whole: any order
    assert len(whole) == 1 and whole[0][1] is frame
