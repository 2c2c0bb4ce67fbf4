"""The logged model as MLflow users call it: pyfunc in process, `mlflow models predict` and `mlflow models serve`
as real subprocesses, with CSV and JSON, string, datetime and integer time stamps, and the model's own errors."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import DATA, free_port, write

from forecast import api, tracking
from forecast.serving import RequestError
from forecast.ui import stop_group


@pytest.fixture(scope="module")
def model_only(tmp_path_factory):
    """The loaded pyfunc model of a seasonal naive on three M3 series (in a store of its own, trained once for the
    tests that only call it) and the history."""
    folder = tmp_path_factory.mktemp("model_only")
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    history = df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:3])].reset_index(drop=True)
    history.to_csv(folder / "m3_three.csv", index=False)
    result = api.train(folder / "m3_three.csv", "seasonal-naive", horizon=6,
                       tracking_uri=f"sqlite:///{folder}/mlflow.db")
    return None, history, tracking.load_model(result.model_uri, f"sqlite:///{folder}/mlflow.db")


@pytest.fixture
def trained(m3_csv):
    """A seasonal-naive model on three M3 series, with its history as a CSV user would send it."""
    result = api.train(m3_csv, "seasonal-naive", horizon=6)
    return result, pd.read_csv(m3_csv), tracking.load_model(result.model_uri)


def test_dates_as_strings_datetimes_or_a_csv_give_the_cli_numbers(trained, m3_csv):
    result, history, model = trained
    cli = api.predict(result.model_uri, m3_csv, 7, levels=(80, 95))
    as_strings = model.predict(history, params={"horizon": 7, "level": [80, 95]})
    as_dates = model.predict(history.assign(ds=pd.to_datetime(history["ds"])), params={"horizon": 7, "level": [80, 95]})
    assert list(as_strings.columns) == ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95",
                                        "yhat_hi_95"]
    pd.testing.assert_frame_equal(as_strings, cli)
    pd.testing.assert_frame_equal(as_dates, cli)
    assert len(as_strings) == 3 * 7


def test_integer_steps_as_numbers_or_strings(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(uid, t, 10 + np.sin(t / 2) + rng.normal(0, 0.1)) for uid in ("s1", "s2") for t in range(1, 41)]
    path = tmp_path / "steps.csv"
    pd.DataFrame(rows, columns=["unique_id", "t", "y"]).to_csv(path, index=False)
    result = api.train(path, "ar", horizon=4)
    model = tracking.load_model(result.model_uri)
    history = pd.read_csv(path)
    numbers = model.predict(history, params={"horizon": 4})
    strings = model.predict(history.astype({"t": str}), params={"horizon": 4})
    pd.testing.assert_frame_equal(numbers, strings)
    assert numbers["ds"].tolist() == [41, 42, 43, 44] * 2
    with pytest.raises(RequestError, match="holds dates but the model was trained on integer steps"):
        model.predict(history.assign(t=pd.date_range("2020-01-01", periods=40, freq="MS").tolist() * 2))


@pytest.mark.parametrize("horizon", [5, "5", 5.0, "5.0", np.int64(5)])
def test_horizon_as_an_integral_float_or_a_numeric_string(model_only, horizon):
    _, history, model = model_only
    forecast = model.predict(history, params={"horizon": horizon})
    pd.testing.assert_frame_equal(forecast, model.predict(history, params={"horizon": 5}))
    assert len(forecast) == 15


@pytest.mark.parametrize("params, message", [
    ({"horizon": 0}, "parameter horizon: 0 is not allowed; give a whole number of steps of at least 1"),
    ({"horizon": -3}, "parameter horizon: -3 is not allowed"),
    ({"horizon": 2.5}, "parameter horizon: 2.5 is not allowed"),
    ({"horizon": "six"}, "parameter horizon: 'six' is not allowed"),
    ({"horizon": True}, "parameter horizon: True is not allowed"),
    ({"levle": [80]}, "parameter levle: unknown; the model takes horizon, level, quantiles"),
    ({"level": [120]}, "parameter level: must be between 0 and 100"),
    ({"level": ["x"]}, "parameter level: ['x'] is not allowed; give a list of numbers"),
    ({"quantiles": [0.1, 1.5]}, "parameter quantiles: must be between 0 and 1"),
])
def test_bad_parameters_are_refused_in_one_line(model_only, params, message):
    _, history, model = model_only
    with pytest.raises(RequestError) as caught:
        model.predict(history, params=params)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_levels_as_a_numpy_array_or_one_number(model_only):
    _, history, model = model_only
    expected = model.predict(history, params={"horizon": 2, "level": [80.0]})
    for level in (np.array([80]), 80, "80", ["80"]):
        pd.testing.assert_frame_equal(model.predict(history, params={"horizon": 2, "level": level}), expected)
    assert list(expected.columns[-2:]) == ["yhat_lo_80", "yhat_hi_80"]


def test_rows_keep_the_requests_order_of_series(trained):
    _, history, model = trained
    ids = history["unique_id"].drop_duplicates().tolist()
    shuffled = pd.concat([history[history["unique_id"] == uid] for uid in reversed(ids)])
    forecast = model.predict(shuffled, params={"horizon": 2})
    assert forecast["unique_id"].drop_duplicates().tolist() == list(reversed(ids))
    by_id = model.predict(history, params={"horizon": 2})
    pd.testing.assert_frame_equal(forecast.sort_values(["unique_id", "ds"]).reset_index(drop=True), by_id)


def test_the_model_carries_its_code_and_public_requirements_only(trained, tmp_path):
    result, _, _ = trained
    local = mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model"))
    requirements = (tmp_path / "model" / "requirements.txt").read_text().split()
    names = {line.split("==")[0].lower() for line in requirements}
    assert "forecast" not in names and {"torch", "mlflow", "pandas", "statsmodels", "numpy"} <= names
    assert "torch==2.13.0" in requirements and all("==" in line for line in requirements)
    mlmodel = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["code"] == "code"
    assert (tmp_path / "model" / "code" / "forecast" / "tracking" / "runs.py").is_file()
    signature = mlmodel["signature"]
    inputs = {spec["name"]: spec for spec in json.loads(signature["inputs"])}
    assert inputs["ds"]["type"] == "string" and inputs["unique_id"]["required"] is False
    assert {p["name"] for p in json.loads(signature["params"])} == {"horizon", "level", "quantiles"}
    example = json.loads((tmp_path / "model" / "serving_input_example.json").read_text())
    assert example["params"] == {"horizon": 6} and isinstance(example["dataframe_split"]["data"][0][1], str)
    assert local


def test_register_prints_the_version_and_compare_shows_it(air_csv):
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from forecast.cli import main

    first = CliRunner().invoke(main, ["train", str(air_csv), "--model", "naive", "--register", "airline"])
    second = CliRunner().invoke(main, ["train", str(air_csv), "--model", "seasonal-naive", "--register", "airline"])
    assert "registered: models:/airline/1" in first.output.splitlines()
    assert "registered: models:/airline/2" in second.output.splitlines()
    MlflowClient().set_registered_model_alias("airline", "champion", "2")
    by_alias = CliRunner().invoke(main, ["predict", "models:/airline@champion", str(air_csv), "-H", "1"])
    by_version = CliRunner().invoke(main, ["predict", "models:/airline/2", str(air_csv), "-H", "1"])
    assert by_alias.exit_code == 0 and by_alias.output == by_version.output
    table = api.compare("air_passengers").set_index("model")
    assert table.loc["naive", ["registered", "version", "aliases"]].tolist() == ["airline", "1", ""]
    assert table.loc["seasonal-naive", ["registered", "version", "aliases"]].tolist() == ["airline", "2", "@champion"]


def test_runs_log_their_data_as_a_dataset_and_the_pipeline_its_leaderboard(air_csv, tmp_path):
    from mlflow.tracking import MlflowClient

    from forecast.data import file_sha256
    from forecast.pipeline import run_pipeline

    pipeline = write(tmp_path, "air.yaml", f"name: air\ndata: {{path: {air_csv}}}\nbacktest: {{folds: 2}}\n"
                                           "models: [naive, seasonal-naive]\n")
    result = run_pipeline(pipeline, echo=lambda line: None)
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    for run in [parent, *children]:
        (dataset,) = run.inputs.dataset_inputs
        assert dataset.dataset.name == "air_passengers.csv"
        assert dataset.dataset.digest == file_sha256(air_csv)[:16]
        assert json.loads(dataset.dataset.source)["uri"].endswith("air_passengers.csv")
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]
    note = parent.data.tags["mlflow.note.content"]
    assert "| rank | label | model |" in note and "seasonal-naive" in note and "naive" in note
    assert note.index("seasonal-naive") < note.index("| 2 | naive")


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _frame(predictions: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(predictions)
    return frame.assign(ds=pd.to_datetime(frame["ds"]))


def test_mlflow_models_serve_answers_csv_and_json_with_clear_errors(trained, store):
    result, history, model = trained
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", result.model_uri,
                               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/ping", server)
        expected = model.predict(history, params={"horizon": 6})
        status, body = _post(f"{url}/invocations", history.to_csv(index=False).encode(), "text/csv")
        assert status == 200
        pd.testing.assert_frame_equal(_frame(body["predictions"]), expected, check_dtype=False)

        ids = history["unique_id"].drop_duplicates().tolist()
        reordered = pd.concat([history[history["unique_id"] == uid] for uid in reversed(ids)])
        request = {"dataframe_split": json.loads(reordered.to_json(orient="split", index=False)),
                   "params": {"horizon": 3.0, "level": [80]}}
        status, body = _post(f"{url}/invocations", json.dumps(request).encode(), "application/json")
        assert status == 200
        answer = _frame(body["predictions"])
        assert answer["unique_id"].drop_duplicates().tolist() == list(reversed(ids))
        direct = model.predict(reordered, params={"horizon": 3, "level": [80]})
        pd.testing.assert_frame_equal(answer, direct, check_dtype=False)

        for params, message in (({"horizon": 0}, "parameter horizon: 0 is not allowed"),
                                ({"levle": [80]}, "parameter levle: unknown")):
            request = {"dataframe_records": history.to_dict(orient="records"), "params": params}
            status, body = _post(f"{url}/invocations", json.dumps(request).encode(), "application/json")
            assert status == 400 and body["message"].startswith(message)
            assert "\n" not in body["message"] and "Traceback" not in json.dumps(body)
    finally:
        stop_group(server)


@pytest.mark.parametrize("content_type", ["csv", "json"])
def test_mlflow_models_predict_reads_a_csv_or_json_file(trained, store, tmp_path, content_type):
    result, history, model = trained
    source = tmp_path / f"history.{content_type}"
    if content_type == "csv":
        history.to_csv(source, index=False)
    else:
        source.write_text(json.dumps({"dataframe_records": history.to_dict(orient="records")}))
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "mlflow", "models", "predict", "-m", result.model_uri,
                           "-i", str(source), "-t", content_type, "-o", str(out), "--env-manager", "local"],
                          env={**os.environ, "MLFLOW_TRACKING_URI": store}, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    answer = _frame(json.loads(out.read_text())["predictions"])
    pd.testing.assert_frame_equal(answer, model.predict(history), check_dtype=False)


@pytest.mark.slow
def test_served_from_a_fresh_virtualenv_with_only_public_requirements(trained, store, tmp_path):
    """`mlflow models serve --env-manager virtualenv`: a new venv from requirements.txt alone (minutes: pip
    installs MLflow, torch and the rest), the package's code from inside the model. Run with `pytest -m slow`."""
    result, history, model = trained
    port, envs = free_port(), tmp_path / "envs"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_ENV_ROOT": str(envs)}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", result.model_uri,
                               "--env-manager", "virtualenv", "--host", "127.0.0.1", "-p", str(port)],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(f"http://127.0.0.1:{port}/ping", server, seconds=900)
        request = {"dataframe_split": json.loads(history.to_json(orient="split", index=False)),
                   "params": {"horizon": "4", "level": [95]}}
        status, body = _post(f"http://127.0.0.1:{port}/invocations", json.dumps(request).encode(), "application/json")
        assert status == 200
        expected = model.predict(history, params={"horizon": 4, "level": [95]})
        pd.testing.assert_frame_equal(_frame(body["predictions"]), expected, check_dtype=False)
        (venv,) = envs.glob("mlflow-*")
        installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
                                   capture_output=True, text=True).stdout.lower().split()
        assert not any(line.startswith("forecast==") for line in installed)
        assert any(line.startswith("torch==2.13.0") for line in installed)
    finally:
        stop_group(server)
