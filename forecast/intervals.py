"""Prediction intervals and quantiles: what users ask for (levels, quantiles), the columns they get, the shapes
that keep quantiles from crossing, conformal calibration for the nets, and the interval metrics (coverage, MSIS as
the M4 competition defines it, the scaled quantile loss)."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from forecast.errors import ModelError

DEFAULT_LEVELS = (80.0, 95.0)
CALIBRATION_MIN = 200  # residuals wanted at the first step of a calibration
MSIS_LEVEL = 95.0  # the M4 competition's interval


def _open_interval(values, option: str, top: float, example: str) -> tuple[float, ...]:
    """The numbers of `values`, each in (0, top), sorted, duplicates dropped; one clear error otherwise."""
    out = []
    for item in values or ():
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ModelError(f"{option} {item!r}: not a number; give {example}") from None
        if not 0 < value < top:
            raise ModelError(f"{option} {item}: must be between 0 and {top:g} ({example})")
        out.append(value)
    return tuple(sorted(set(out)))


def check_levels(levels) -> tuple[float, ...]:
    """Levels in percent, each in (0, 100), sorted, duplicates dropped."""
    return _open_interval(levels, "--level", 100, "a coverage in percent, e.g. 80 or 95")


def check_quantiles(quantiles) -> tuple[float, ...]:
    """Quantiles as probabilities in (0, 1), from a list or a comma-separated string, sorted."""
    if isinstance(quantiles, str):
        quantiles = [q for q in quantiles.split(",") if q.strip()]
    return _open_interval(quantiles, "--quantiles", 1, "probabilities, e.g. 0.1,0.5,0.9")


def _label(value: float) -> str:
    return f"{value:g}"


def level_columns(level: float) -> tuple[str, str]:
    """statsforecast's names: yhat_lo_80, yhat_hi_80."""
    return f"yhat_lo_{_label(level)}", f"yhat_hi_{_label(level)}"


def quantile_column(q: float) -> str:
    """yhat_q10 for 0.1, yhat_q2.5 for 0.025."""
    return f"yhat_q{_label(round(q * 100, 6))}"


def level_bounds(level: float) -> tuple[float, float]:
    """The probabilities of a level's lower and upper bound (rounded, so that they can be looked up)."""
    alpha = 1 - level / 100
    return round(alpha / 2, 10), round(1 - alpha / 2, 10)


def probabilities(levels=(), quantiles=()) -> tuple[float, ...]:
    """Every probability the levels' bounds and the quantiles need, sorted."""
    probs = {round(q, 10) for q in quantiles}
    for level in levels:
        probs.update(level_bounds(level))
    return tuple(sorted(probs))


def normal_quantiles(probs) -> np.ndarray:
    """Standard normal quantiles z_p (P,)."""
    return np.array([NormalDist().inv_cdf(p) for p in probs])


def to_columns(yhat: np.ndarray, bands: np.ndarray, probs, levels=(), quantiles=()) -> dict[str, np.ndarray]:
    """The output columns from point forecasts (S, h) and forecast quantiles (S, h, P) at `probs`: sorted along P
    so that no quantile crosses another, and each level's interval widened to hold the point forecast."""
    bands = np.sort(bands, axis=-1)
    index = {round(p, 10): k for k, p in enumerate(probs)}
    columns = {}
    for level in levels:
        p_lo, p_hi = level_bounds(level)
        lo, hi = level_columns(level)
        columns[lo] = np.minimum(bands[..., index[p_lo]], yhat)
        columns[hi] = np.maximum(bands[..., index[p_hi]], yhat)
    ordered = {}
    for level in sorted(levels):  # lo_95, lo_80, hi_80, hi_95 are nested: lo_95 <= lo_80 and hi_80 <= hi_95
        lo, hi = level_columns(level)
        ordered[lo], ordered[hi] = columns[lo], columns[hi]
    for q in quantiles:
        ordered[quantile_column(q)] = bands[..., index[round(q, 10)]]
    return ordered


@dataclass
class Calibration:
    """Split-conformal calibration: quantiles (h, P) of normalised validation residuals per horizon step, at a
    grid of probabilities. The model normalises: the nets divide their errors by each series' seasonal-naive MAE
    (forecast quantiles y_hat + q_j(p) s_i), AR by its own standard deviation per step."""

    probs: np.ndarray  # (P,) the grid
    table: np.ndarray  # (h, P) residual quantiles per step
    n: int  # residuals at the step with the fewest
    source: str  # "validation" (held-out windows), "validation+holdout" (and a scored fit's holdout) or "in-sample"
    growth: bool = True  # past the calibrated horizon the spread grows as sqrt(step), and pooled steps as below
    power: float = 0.5  # with growth, pooled steps' spread grows as step ** power: estimated where steps were pooled

    GRID = np.round(np.r_[0.001, 0.005, np.arange(0.01, 1.0, 0.01), 0.995, 0.999], 6)
    MIN_PER_STEP = 50  # fewer residuals at a step: pool every step's, each divided by step ** power

    @classmethod
    def from_residuals(cls, residuals: np.ndarray, source: str, growth: bool = True,
                       power: float | None = None) -> Calibration:
        """From normalised residuals (N, h), NaN where a window has none at a step: per step the conformal
        quantile at each grid probability, with the finite-sample correction (the ceil((n + 1) p)-th smallest of
        n, the floor below the median). Steps with fewer than MIN_PER_STEP residuals take the quantiles of all
        steps' residuals pooled, each divided by its step ** power, times the step ** power: `power` estimated from
        how the residuals' mean absolute value grows with the step (growth_power) unless given; without `growth`
        (residuals already divided by a standard deviation that grows with the step) pooled as they are."""
        counts = np.isfinite(residuals).sum(axis=0)  # (h,)
        if counts.max(initial=0) == 0:
            raise ModelError("no residuals to calibrate the prediction intervals on")
        pooling = bool((counts < cls.MIN_PER_STEP).any())
        if not growth:
            power = 0.0
        elif power is None:
            power = growth_power(residuals) if pooling else 0.5
        steps = np.arange(1, residuals.shape[1] + 1) ** power  # (h,)
        pooled = (residuals / steps)[np.isfinite(residuals)]
        table = []
        for j in range(residuals.shape[1]):
            column = residuals[:, j][np.isfinite(residuals[:, j])]
            table.append(cls._conformal(column) if len(column) >= cls.MIN_PER_STEP else
                         cls._conformal(pooled) * steps[j])
        return cls(cls.GRID, np.stack(table), int(counts.min()), source, growth, float(power))

    @classmethod
    def _conformal(cls, values: np.ndarray) -> np.ndarray:
        """The conformal quantiles (len(GRID),) of a sample."""
        ordered, n, probs = np.sort(values), len(values), cls.GRID
        rank = np.where(probs >= 0.5, np.ceil((n + 1) * probs), np.floor((n + 1) * probs)) - 1
        return ordered[np.clip(rank, 0, n - 1).astype(int)]

    def quantiles(self, probs, steps: int) -> np.ndarray:
        """(steps, P) residual quantiles at `probs`; past the calibrated horizon the last step's spread grows with
        the square root of the steps, as a random walk's does (whatever `power`: the recursion feeds forecasts back
        in, which the calibrated steps never did)."""
        table = np.stack([np.interp(probs, self.probs, row) for row in self.table])  # (h, P)
        h = len(table)
        if steps <= h:
            return table[:steps]
        further = np.arange(h + 1, steps + 1)[:, None]  # (steps - h, 1)
        return np.concatenate([table, table[-1] * (np.sqrt(further / h) if self.growth else np.ones_like(further))])

    @property
    def pooled(self) -> bool:
        """Whether some step had under MIN_PER_STEP residuals and took the pooled quantiles."""
        return self.n < self.MIN_PER_STEP

    def to_dict(self) -> dict:
        return {"probs": self.probs.tolist(), "table": self.table.tolist(), "n": self.n, "source": self.source,
                "growth": self.growth, "power": self.power}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibration:
        return cls(np.asarray(doc["probs"], float), np.asarray(doc["table"], float), int(doc["n"]), doc["source"],
                   bool(doc.get("growth", True)), float(doc.get("power", 0.5)))


def growth_power(residuals: np.ndarray) -> float:
    """The exponent b of mean|r_j| ~ a j ** b over the steps j of residuals (N, h): the least-squares slope of the
    log mean absolute residual on the log step, each step weighted by its residuals, clipped to [0, 1] (flat errors
    to a random walk's square root and on to a trend's linear growth); 0.5 where fewer than two steps tell."""
    absolute = np.abs(residuals)
    counts = np.isfinite(absolute).sum(axis=0)  # (h,)
    mean = np.nansum(absolute, axis=0) / np.maximum(counts, 1)  # (h,)
    ok = (counts > 0) & (mean > 0)
    if ok.sum() < 2:
        return 0.5
    x, y, w = np.log(np.arange(1, len(mean) + 1)[ok]), np.log(mean[ok]), counts[ok].astype(float)
    x_bar, y_bar = np.average(x, weights=w), np.average(y, weights=w)
    spread = np.sum(w * (x - x_bar) ** 2)
    return float(np.clip(np.sum(w * (x - x_bar) * (y - y_bar)) / spread, 0.0, 1.0)) if spread > 0 else 0.5


def calibration_plan(lengths, h: int) -> tuple[int, int] | None:
    """(the shortest series calibrated on, the origins per series) of a calibration over series of these
    `lengths`: those long enough for a validation window (else those of h + 2 points), from as many origins as
    CALIBRATION_MIN residuals at the first step need; None when no series is long enough."""
    from forecast.windows import validation_length

    lengths = np.asarray(lengths, int)
    for shortest in (validation_length(h), h + 2):
        count = int((lengths >= shortest).sum())
        if count:
            return shortest, min(h, -(-CALIBRATION_MIN // count))
    return None


def holdout_residuals(series, h: int, errors, plan: tuple[int, int] | None = None) -> np.ndarray | None:
    """The normalised errors (N, h) a model makes forecasting the last h points of every series long enough for a
    validation window (else of every series of h + 2 points) from the points before them, from origins at each of
    those points where the series are few (as many as CALIBRATION_MIN residuals at the first step need); NaN where
    an origin leaves no point at a step. `errors(picked, histories, steps)` returns the (S, steps) normalised errors
    of the series `picked` (indices into `series`) forecast from `histories`. `plan`: the calibration_plan of all
    the series when these are a part of them (fitted apart, on Spark). None when nothing varies."""
    plan = plan or calibration_plan([len(s) for s in series], h)
    if plan is None:
        return None
    shortest, origins = plan
    pick = [i for i, s in enumerate(series) if len(s) >= shortest]
    if not pick:
        return None
    residuals = np.full((len(pick) * origins, h), np.nan)
    for k in range(origins):
        histories = [series[i][:len(series[i]) - h + k] for i in pick]
        residuals[k * len(pick):(k + 1) * len(pick), :h - k] = errors(pick, histories, h - k)
    return residuals if np.isfinite(residuals).any() else None


def fill_scales(scales: np.ndarray) -> np.ndarray:
    """Scales with the zero, NaN and tiny ones replaced by the median of the others (1 when there are none)."""
    scales = np.asarray(scales, float)
    good = np.isfinite(scales) & (scales > 1e-12)
    fallback = float(np.median(scales[good])) if good.any() else 1.0
    return np.where(good, scales, fallback)


# -- metrics


def interval_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float) -> np.ndarray:
    """The M4 competition's interval score per point: (hi - lo) + 2/a (lo - y)[y < lo] + 2/a (y - hi)[y > hi]."""
    a = 1 - level / 100
    return (hi - lo) + 2 / a * (lo - y) * (y < lo) + 2 / a * (y - hi) * (y > hi)


def pinball(y: np.ndarray, q: np.ndarray, p: float) -> np.ndarray:
    """The quantile (pinball) loss of forecast quantile `q` at probability `p`, per point."""
    return np.maximum(p * (y - q), (p - 1) * (y - q))


def interval_metrics(joined: pd.DataFrame, scales: pd.Series, levels=(), quantiles=(), id_col="unique_id",
                     y_col="y") -> dict[str, float]:
    """coverage_L (the fraction of all points inside each level's interval), msis_L (per series the mean interval
    score over the horizon, divided by the series' in-sample seasonal-naive MAE, then the mean over series; series
    without a scale left out, as MASE does) and the mean scaled quantile loss `sql` over every quantile given and
    every level's bounds (with yhat as the median), scaled the same way: an approximation of the CRPS over MAE."""
    y = joined[y_col].to_numpy(float)
    scale = joined[id_col].map(scales).to_numpy(float)
    ok = np.isfinite(scale) & (scale > 0)
    scale = np.where(ok, scale, 1.0)  # series without a scale are left out below; no division by zero
    out = {}
    pairs = [(0.5, joined["yhat"].to_numpy(float))]
    for level in levels:
        lo_col, hi_col = level_columns(level)
        lo, hi = joined[lo_col].to_numpy(float), joined[hi_col].to_numpy(float)
        out[f"coverage_{_label(level)}"] = float(np.mean((y >= lo) & (y <= hi)) * 100)
        per_point = interval_score(y, lo, hi, level)
        out[f"msis_{_label(level)}"] = _mean_over_series(joined[id_col], per_point / scale, ok)
        pairs += list(zip(level_bounds(level), (lo, hi)))
    pairs += [(q, joined[quantile_column(q)].to_numpy(float)) for q in quantiles]
    if len(pairs) > 1:
        losses = np.mean([pinball(y, q, p) for p, q in pairs], axis=0)
        out["sql"] = _mean_over_series(joined[id_col], losses / scale, ok)
    return out


def _mean_over_series(ids: pd.Series, values: np.ndarray, ok: np.ndarray) -> float:
    frame = pd.DataFrame({"id": ids.to_numpy()[ok], "v": values[ok]})
    return float(frame.groupby("id", sort=False)["v"].mean().mean()) if len(frame) else float("nan")
