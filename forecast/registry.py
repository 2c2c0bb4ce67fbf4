"""Model name -> class, imported only when asked for, so `forecast --help` and `--model ar` never import torch."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from forecast.errors import ModelError

MODELS = {
    "naive": "forecast.models.baselines:Naive",
    "seasonal-naive": "forecast.models.baselines:SeasonalNaive",
    "ar": "forecast.models.ar:AutoRegressive",
    "rnn": "forecast.models.neural:RNNForecaster",
    "lstm": "forecast.models.neural:LSTMForecaster",
    "gru": "forecast.models.neural:GRUForecaster",
    "transformer": "forecast.models.neural:TransformerForecaster",
    "gbm": "forecast.models.gbm:GradientBoosting",
    "combination": "forecast.models.combination:Combination",
}
NEURAL = ("rnn", "lstm", "gru", "transformer")
GLOBAL = NEURAL + ("gbm",)  # one model over all series: with refit off, trained once before the first origin
PER_SERIES = ("naive", "seasonal-naive", "ar")  # fitted series by series: on Spark with --engine spark


def model_class(name: str):
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, **params):
    """A new, unfitted model from its name and hyperparameters (None values take the defaults)."""
    return model_class(name)(**{k: v for k, v in params.items() if v is not None})


def load(path: str | Path):
    """A fitted model from a folder written by `Forecaster.save`, checking the folder before using it."""
    from forecast.models.base import CONFIG_FILE, FORMAT, manifest

    path = Path(path)
    config = path / CONFIG_FILE
    if not config.is_file():
        raise ModelError(f"{path}: no {CONFIG_FILE}; this is not a saved forecast model")
    try:
        doc = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{config}: not valid JSON ({exc}); the model folder is damaged") from None
    expected = {"format", "model", "config", "h", "freq", "state", "extra"}
    if not isinstance(doc, dict) or not expected <= set(doc) <= expected | {"covariates", "files"}:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ModelError(f"{config}: unexpected layout {found}; expected the keys {sorted(expected)}")
    if doc["format"] not in range(1, FORMAT + 1):
        raise ModelError(f"{config}: model format {doc['format']} is not supported (this version reads 1 to {FORMAT})")
    if "files" in doc:  # saved with its files' digests (older models without them load as before)
        found = manifest(path)
        for name, entry in doc["files"].items():
            if found.get(name) != entry:
                what = "is missing" if name not in found else "differs from the one saved (truncated or changed)"
                raise ModelError(f"{path / name}: {what}; the model folder is incomplete or damaged, train it again")
    try:
        return model_class(doc["model"]).restore(path, doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{config}: cannot rebuild the model ({exc}); the model folder is damaged") from None
