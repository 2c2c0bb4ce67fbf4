"""`forecast ui` for real: a server on a free port over a filled store, asked through MLflow's REST API."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, wait_for

from forecast.pipeline import run_pipeline


def call(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_ui_serves_a_pipeline_parent_and_its_children(air_csv, store, tmp_path):
    pipeline = tmp_path / "air.yaml"
    pipeline.write_text(f"name: air\ndata: {{path: {air_csv}}}\nbacktest: {{folds: 2}}\n"
                        "models: [naive, seasonal-naive]\n")
    result = run_pipeline(pipeline, echo=lambda line: None)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "forecast", "ui", "--port", str(port)],
                              env={**os.environ, "MLFLOW_TRACKING_URI": store}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, found = time.monotonic() + 90, None
        while time.monotonic() < deadline and found is None:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                found = call(f"{base}/experiments/get-by-name?experiment_name=air")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert found is not None, "the UI did not answer within 90 s"
        runs = call(f"{base}/runs/search", {"experiment_ids": [found["experiment"]["experiment_id"]]})["runs"]
        tags = {r["info"]["run_name"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs}
        assert set(tags) == {"air", "naive", "seasonal-naive"}
        assert "mlflow.parentRunId" not in tags["air"]
        assert tags["naive"]["mlflow.parentRunId"] == tags["seasonal-naive"]["mlflow.parentRunId"] == result.run_id
        assert all(r["info"]["status"] == "FINISHED" for r in runs)
        board = urllib.request.urlopen(f"http://127.0.0.1:{port}/get-artifact?path=leaderboard.csv"
                                       f"&run_uuid={result.run_id}", timeout=5).read().decode()
        assert board.splitlines()[0].startswith("rank,label,model,status")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def start_ui(store: str, log: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """`forecast ui` in a session of its own (so that the test can see its whole process group), once it answers;
    what it prints goes to `log`."""
    port = free_port()
    with open(log, "wb") as sink:
        ui = subprocess.Popen([sys.executable, "-m", "forecast", "ui", "--port", str(port)],
                              env={**os.environ, "MLFLOW_TRACKING_URI": store, **env}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert ui.poll() is None, log.read_text()[-2000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return ui, port
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError("the UI did not answer within 90 s")


def processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, ppid, pgid = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if state != "Z":
                found.append((int(entry), int(ppid), int(pgid)))
    return found


def group_members(pgid: int) -> list[int]:
    return [pid for pid, _, group in processes() if group == pgid]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("sig", [signal.SIGTERM])  # SIGINT and SIGHUP take the same handler (~40 s a server)
def test_a_signal_to_forecast_ui_stops_the_server_and_all_its_workers(store, sig, tmp_path):
    ui, port = start_ui(store, tmp_path / "ui.log", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="true")  # all its workers
    (server,) = [pid for pid, parent, _ in processes() if parent == ui.pid]  # mlflow ui, in a group of its own
    try:
        wait_for(lambda: len(group_members(server)) > 8, 60)  # job consumers may start after the server answers
        assert len(group_members(server)) > 8  # mlflow ui, uvicorn and its workers, the job consumers
        ui.send_signal(sig)  # to the forecast process alone, as a service manager or `docker stop` does
        assert ui.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while group_members(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert group_members(server) == [] and group_members(ui.pid) == [] and port_is_free(port)
    finally:
        for group in (ui.pid, server):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
