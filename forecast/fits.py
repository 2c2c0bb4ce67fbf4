"""Fitted models shared within one command: while a pipeline runs, a combination takes its members' fits from the
members' own runs (same model, settings, data and horizon) instead of fitting them again."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict

import pandas as pd

from forecast.data import ID, TARGET, TIME

_shared: dict | None = None


@contextmanager
def shared():
    """Within this block, fitted models are kept and reused (forecast.pipeline.run_pipeline)."""
    global _shared
    outer, _shared = _shared, {} if _shared is None else _shared
    try:
        yield
    finally:
        _shared = outer


def _key(model, df: pd.DataFrame, h: int, covariates) -> tuple:
    fingerprint = int(pd.util.hash_pandas_object(df[[ID, TIME, TARGET]], index=False).sum())
    return (model.name, json.dumps(asdict(model.config), sort_keys=True, default=str), int(h), len(df), fingerprint,
            repr(covariates))


def lookup(model, df: pd.DataFrame, h: int, covariates):
    """The fitted twin of the unfitted `model` (same kind and settings) fitted on `df` for `h`, or None."""
    return None if _shared is None else _shared.get(_key(model, df, h, covariates))


def store(model, df: pd.DataFrame, h: int, covariates) -> None:
    if _shared is not None:
        _shared[_key(model, df, h, covariates)] = model
