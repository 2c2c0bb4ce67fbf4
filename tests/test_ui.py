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

from forecast.pipeline import run_pipeline


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
