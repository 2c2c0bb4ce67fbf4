"""forecast: train time-series forecasters on a CSV, track every run in MLflow, batch-predict from saved models."""

__version__ = "0.1.0"
