"""A net's forecasts combined with AR's, the weight chosen per data set on the validation windows: the lesson of the
M3 and M4 competitions that combinations of different models beat their members, and that a global model needs a
statistical fallback on data it does not suit."""

from __future__ import annotations

import numpy as np

from forecast.metrics import seasonal_scale

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the net's weight; AR gets the rest
PRIOR_WEIGHT = 0.5  # when no series is long enough to choose on: the weight most data sets chose (README)
PARTNERS = ("ar", "none")


def fit_partner(ids, series, freq, h, net=None):
    """An AR(τ) per series (forecast.models.ar), fitted as `forecast train --model ar` fits it, with the future-known
    covariates of `net` (the model it partners) as regressors."""
    from forecast.models.ar import AutoRegressive

    partner = AutoRegressive()
    partner.freq_, partner.h_ = freq, h
    partner.encoder_, partner.covs_ = getattr(net, "encoder_", None), getattr(net, "covs_", None)
    partner.intervals = False  # the net calibrates the combination's intervals itself
    partner._fit(list(ids), list(series), h)
    return partner


def choose_weight(histories, actual: np.ndarray, net: np.ndarray, partner: np.ndarray,
                  season: int) -> tuple[float, dict[float, float]]:
    """The weight w of WEIGHTS whose combination w net + (1 - w) partner has the lowest MASE on the validation
    windows (`actual`, `net`, `partner`: (S, h); each series scaled by its history's seasonal-naive MAE), with
    every weight's MASE; ties go to the net."""
    scales = np.array([seasonal_scale(y, season) for y in histories])
    ok = np.isfinite(scales) & (scales > 0)
    scores = {}
    for w in WEIGHTS:
        errors = np.abs(actual - (w * net + (1 - w) * partner)).mean(axis=1)  # (S,)
        scores[w] = float(np.nanmean(errors[ok] / scales[ok])) if ok.any() else float("nan")
    finite = {w: v for w, v in scores.items() if np.isfinite(v)}
    if not finite:
        return PRIOR_WEIGHT, scores
    best = min(finite.values())
    return max(w for w, v in finite.items() if v == best), scores


def combine(net: np.ndarray, partner: np.ndarray, weight: float) -> np.ndarray:
    return weight * net + (1 - weight) * partner
