"""Every test gets its own MLflow store and working directory, and small CSVs cut from the bundled real data."""

import socket
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from forecast.data import load_series

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared"

TINY_NET = ["--hidden-size", "8", "--layers", "1", "--epochs", "2", "--lookback", "12"]


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store under tmp_path; the working directory is tmp_path too."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def air_csv():
    return DATA / "air_passengers.csv"


@pytest.fixture
def m3_csv(tmp_path):
    """Three real M3 monthly series in long format (unique_id, ds, y)."""
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    keep = df["unique_id"].drop_duplicates().iloc[:3]
    path = tmp_path / "m3_three.csv"
    df[df["unique_id"].isin(keep)].to_csv(path, index=False)
    return path


def m3_monthly(folder: Path, count: int):
    """The first `count` real M3 monthly series, written to `folder` and loaded."""
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    path = folder / f"m3_monthly_{count}.csv"
    df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:count])].to_csv(path, index=False)
    return load_series(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four real M3 monthly series."""
    return m3_monthly(tmp_path_factory.mktemp("data"), 4)


def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def reseal(folder) -> None:
    """Rewrite a saved model's file digests (forecaster.json "files") to match its folder as it is now: what someone
    who tampers with a file and knows the format would do, so that the loaders' own defences are what is tested."""
    import json

    from forecast.models.base import manifest

    config = Path(folder) / "forecaster.json"
    doc = json.loads(config.read_text())
    doc["files"] = manifest(Path(folder))
    config.write_text(json.dumps(doc))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds=90.0, every=0.2):
    """The first truthy value of condition(), asked every `every` seconds; an OSError or an MLflow error (a server
    still starting) counts as not yet. AssertionError after `seconds`."""
    from mlflow.exceptions import MlflowException

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = condition()
        except (OSError, MlflowException):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def assert_same_fit(single, parts, df, h: int) -> None:
    """A per-series model fitted in buckets (on Spark, in processes) is the one fitted in one process: the same
    calibration, validation error, forecasts and bounds (and for AR the same orders), to the last bits that the
    linear algebra may round differently for matrices of other sizes (AR stacks the series of one length)."""
    import numpy as np
    import pandas as pd

    assert single.residuals_.shape == parts.residuals_.shape
    np.testing.assert_allclose(np.sort(single.residuals_, axis=0), np.sort(parts.residuals_, axis=0), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(single.calibration_.table, parts.calibration_.table, rtol=1e-12, atol=1e-12)
    assert parts.validation_mase_ == pytest.approx(single.validation_mase_, rel=1e-12)
    pd.testing.assert_frame_equal(parts.predict(h, df, levels=(80, 95)), single.predict(h, df, levels=(80, 95)))
    if hasattr(single, "params_"):
        assert parts.params_.keys() == single.params_.keys() and parts.first_ == single.first_
