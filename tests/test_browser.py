"""What a user sees in a real browser: headless Chromium (Debian's package) against `forecast ui` over a store
filled by a pipeline; the page text is checked and screenshots are kept under tests/artifacts/."""

import html
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import write
from test_ui import start_ui

from forecast.pipeline import run_pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1600,1000", "--virtual-time-budget=20000"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                                         "chromium; .ci/run installs it where apt-get can)")


def page(url: str, profile: Path, screenshot: Path) -> str:
    """The text of the page once its scripts have run (a fresh browser profile: no remembered view)."""
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, timeout=120).stdout.decode()
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def test_the_ui_opens_on_the_forecasting_runs_with_dataset_and_leaderboard(air_csv, store, tmp_path):
    pipeline = write(tmp_path, "air.yaml", f"name: air\ndata: {{path: {air_csv}}}\nbacktest: {{folds: 2}}\n"
                                           "models: [naive, seasonal-naive]\n")
    result = run_pipeline(pipeline, echo=lambda line: None)
    log = tmp_path / "ui.log"
    ui, _ = start_ui(store, log)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        (runs_page,) = [line.split(": ", 1)[1] for line in log.read_text().splitlines()
                        if line.startswith("  air: ")]
        assert runs_page.endswith("/runs?workflowType=machine_learning")
        runs = page(runs_page, tmp_path / "profile1", ARTIFACTS / "ui_runs.png")
        assert "Token Usage" not in runs and "Latency" not in runs  # the runs table, not the GenAI overview
        assert "Run Name" in runs and "Dataset" in runs
        assert " air " in runs and "air_passengers.csv" in runs and "training" in runs
        run_page = runs_page.replace("/runs?", f"/runs/{result.run_id}?")
        parent = page(run_page, tmp_path / "profile2", ARTIFACTS / "ui_pipeline_run.png")
        assert "Description" in parent and "No description" not in parent
        assert "rank label model status" in parent and "1 seasonal-naive seasonal-naive FINISHED" in parent
        assert "Child runs seasonal-naive , naive" in parent or "Child runs naive , seasonal-naive" in parent
        assert (ARTIFACTS / "ui_runs.png").stat().st_size > 10_000
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
