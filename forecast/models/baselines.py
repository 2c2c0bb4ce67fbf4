"""Naive baselines: the last value, and the last season's values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.models.base import Forecaster


@dataclass
class NaiveConfig:
    pass


@dataclass
class SeasonalNaiveConfig:
    season: int | None = None  # None: the data's season length


class Naive(Forecaster):
    """Every future value equals the last one observed."""

    name = "naive"
    Config = NaiveConfig

    def _fit(self, ids, series, h):
        pass

    def _forecast(self, ids, series, h):
        return np.stack([np.full(h, s[-1], dtype=float) for s in series])


class SeasonalNaive(Forecaster):
    """Every future value equals the value one season earlier (the last value for series shorter than a season)."""

    name = "seasonal-naive"
    Config = SeasonalNaiveConfig

    def _fit(self, ids, series, h):
        pass

    def _forecast(self, ids, series, h):
        m = self.config.season or self.freq_.season
        rows = []
        for s in series:
            last = s[-m:] if len(s) >= m else s[-1:]
            rows.append(np.resize(last, h) if len(last) else np.full(h, np.nan))
        return np.stack(rows)
