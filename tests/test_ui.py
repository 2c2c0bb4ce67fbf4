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

from forecast import api


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_ui_serves_the_runs_of_the_store(air_csv, store):
    trained = api.train(air_csv, "naive")
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
                found = call(f"{base}/experiments/get-by-name?experiment_name=air_passengers")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert found is not None, "the UI did not answer within 90 s"
        runs = call(f"{base}/runs/search", {"experiment_ids": [found["experiment"]["experiment_id"]]})["runs"]
        assert [r["info"]["run_id"] for r in runs] == [trained.run_id]
        assert runs[0]["info"]["status"] == "FINISHED"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
