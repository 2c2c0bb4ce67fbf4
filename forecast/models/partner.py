"""A net's forecasts combined with a statistical forecast (AR's, a Theta line's, a damped trend's, the seasonal
naive's, or the mean of two of them), the partner and the weight chosen per data set on the validation windows:
the lesson of the M3 and M4 competitions that combinations of different models beat their members, and that a
global model needs a statistical fallback on data it does not suit."""

from __future__ import annotations

import numpy as np

from forecast.metrics import seasonal_scale
from forecast.models.baselines import seasonal_repeats
from forecast.transforms import Stacked, by_length
from forecast.windows import validation_length

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the net's weight; the partner gets the rest
PRIOR_WEIGHT = 0.5  # when no series is long enough to choose on: the weight most data sets chose (README)
# the statistical partners in generations, in the order ties are broken: the pick among the first generations keeps
# its place unless the lowest of a later generation is the lowest of all and beats it by more than one standard error
# (the damped trend's added on 2026-12-06, the seasonal naive's later that day: README)
GENERATIONS = (("ar",), ("ar+theta", "theta", "damped", "ar+damped", "theta+damped"),
               ("snaive", "ar+snaive", "theta+snaive"))
KINDS = tuple(kind for generation in GENERATIONS for kind in generation)
PRIOR_KIND = "ar+theta"  # `auto` without a series to choose on: the partner most data sets chose (README)
PARTNERS = ("auto", *KINDS, "none")  # --combine: auto chooses among KINDS on the validation windows
ALPHAS = np.linspace(0.05, 1.0, 20)  # the Theta line's smoothing weights, one chosen per series
THETA_CHUNK = 16_384  # series smoothed at once: memory stays flat
# the damped trend's grid: level weights, trend weights (as fractions of the level's) and damping factors; the
# triple of least in-sample one-step squared error is chosen per series
DAMPED_GRID = np.array([(a, b, phi) for a in np.linspace(0.05, 0.95, 10) for b in (0.0, 0.05, 0.1, 0.2, 0.3)
                        for phi in (0.8, 0.88, 0.94, 0.98)])
DAMPED_CHUNK = 512  # series smoothed at once: (series, grid) arrays of 0.8 MB, which stay in the cache


def kinds_of(combine: str) -> tuple[str, ...]:
    """The partners that `--combine` lets a fit choose from."""
    return KINDS if combine == "auto" else () if combine == "none" else (combine,)


def theta_lines(series: list[np.ndarray], h: int) -> np.ndarray:
    """The Theta method's forecasts (S, h) of the (seasonally adjusted) `series`, as Hyndman and Billah (2003) showed
    it to be: simple exponential smoothing, its weight chosen per series among ALPHAS by the in-sample one-step
    squared error, plus half the slope of the series' least-squares line per step ahead."""
    out = np.zeros((len(series), h))
    for start in range(0, len(series), THETA_CHUNK):
        out[start:start + THETA_CHUNK] = _theta_chunk(series[start:start + THETA_CHUNK], h)
    return out


def _theta_chunk(series: list[np.ndarray], h: int) -> np.ndarray:
    if not series:
        return np.zeros((0, h))
    lengths = np.array([len(s) for s in series])
    width = int(lengths.max())
    # time on the first axis, every series ending in the last row and repeating its first value before its start,
    # where its one-step errors are then 0 for every smoothing weight
    y = np.empty((width, len(series)))
    for column, s in enumerate(series):
        y[:width - len(s), column] = s[0]
        y[width - len(s):, column] = s
    level = np.repeat(y[0][:, None], len(ALPHAS), axis=1)  # (S, A)
    sse, error = np.zeros_like(level), np.empty_like(level)
    for t in range(1, width):
        np.subtract(y[t][:, None], level, out=error)
        sse += error * error
        error *= ALPHAS
        level += error
    smoothed = level[np.arange(len(series)), np.argmin(sse, axis=1)]
    t = np.arange(width, dtype=float)[:, None]
    inside = t >= (width - lengths)[None, :]  # (T, S)
    centred = np.where(inside, t - (width - (lengths + 1) / 2), 0.0)  # each series' time, centred on its own mean
    spread = (centred ** 2).sum(axis=0)
    slope = np.where(spread > 0, (centred * y).sum(axis=0) / np.where(spread > 0, spread, 1.0), 0.0)
    return smoothed[:, None] + 0.5 * slope[:, None] * np.arange(1, h + 1)


def damped_lines(series: list[np.ndarray], h: int) -> np.ndarray:
    """Exponential smoothing with an additive damped trend (Gardner and McKenzie, 1985), forecasts (S, h) of the
    (seasonally adjusted) `series`: level l and trend b updated by each one-step error e = y - (l + phi b) as
    l += phi b + alpha e, b = phi b + alpha beta e, from l = the first value and b = the mean step of the first four;
    the triple (alpha, beta, phi) of DAMPED_GRID with the least in-sample one-step squared error is chosen per
    series; the forecast k steps ahead is l + (phi + ... + phi^k) b. The trend is damped, so the forecasts level off
    where a Theta line goes on rising: the safer extrapolation far ahead (Gardner, 2006)."""
    out = np.zeros((len(series), h))
    alpha, beta, phi = DAMPED_GRID.T  # (G,) each
    for n, picked in by_length(series).items():  # series of one length start together: no masks
        for start in range(0, len(picked), DAMPED_CHUNK):
            rows = picked[start:start + DAMPED_CHUNK]
            y = np.array([series[i] for i in rows], float).reshape(len(rows), n)
            out[rows] = _damped_rows(y, h, alpha, alpha * beta, phi)
    return out


def _damped_rows(y: np.ndarray, h: int, alpha: np.ndarray, ab: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """`damped_lines` of the rows of `y` (S, n), every triple of the grid at once, in place: (S, G) arrays."""
    rows, n = y.shape
    first = min(n - 1, 3)
    slope = (y[:, first] - y[:, 0]) / first if first else np.zeros(rows)
    level = np.repeat(y[:, :1], len(alpha), axis=1)
    trend = np.repeat(slope[:, None], len(alpha), axis=1)
    sse, predicted, error, scratch = (np.zeros_like(level) for _ in range(4))
    for t in range(1, n):
        np.multiply(phi, trend, out=predicted)
        predicted += level
        np.subtract(y[:, t:t + 1], predicted, out=error)
        np.multiply(error, error, out=scratch)
        sse += scratch
        np.multiply(alpha, error, out=scratch)
        np.add(predicted, scratch, out=level)  # l + phi b + alpha e
        np.multiply(phi, trend, out=trend)
        np.multiply(ab, error, out=scratch)
        trend += scratch  # phi b + alpha beta e
    picked, best = np.arange(rows), np.argmin(sse, axis=1)
    damping = np.cumsum(phi[best][:, None] ** np.arange(1, h + 1), axis=1)  # (S, h)
    return level[picked, best][:, None] + damping * trend[picked, best][:, None]


def seasonal_naives(series: list[np.ndarray], h: int, season: int) -> np.ndarray:
    """The seasonal naive forecasts (S, h): each series' last `season` values repeated; its last value where the
    series is shorter than a season (the `seasonal-naive` model's forecasts)."""
    out = np.zeros((len(series), h))
    for n, picked in by_length(series).items():
        rows = np.array([series[i] for i in picked], float).reshape(len(picked), n)
        out[picked] = seasonal_repeats(rows, h, season if n >= season else 1)
    return out


def uses(kind: str, part: str) -> bool:
    """Whether partner `kind` (e.g. "ar+damped") is made with `part` ("ar", "theta", "damped" or "snaive")."""
    return part in kind.split("+")


def statistical_parts(kinds, series: list[np.ndarray], stacked: Stacked, scaled: list[np.ndarray], h: int,
                      season: int) -> dict[str, np.ndarray | None]:
    """The forecasts (S, h) on the original scale of every part but AR that partners `kinds` use (None for the
    others), keyed as `partner_forecast` takes them: the Theta line and the damped trend of the transformed series
    `scaled` (their transforms `stacked`), the seasonal naive of the original `series`."""
    makers = {"theta": lambda: stacked.inverse(theta_lines(scaled, h)),
              "damped": lambda: stacked.inverse(damped_lines(scaled, h)),
              "snaive": lambda: seasonal_naives(series, h, season)}
    return {part: make() if any(uses(kind, part) for kind in kinds) else None for part, make in makers.items()}


def partner_forecast(kind: str, ar: np.ndarray | None, theta: np.ndarray | None,
                     damped: np.ndarray | None = None, snaive: np.ndarray | None = None) -> np.ndarray:
    """The forecasts of partner `kind` from AR's, the Theta line's, the damped trend's and the seasonal naive's
    (S, h), on the original scale."""
    parts = [part for name, part in (("ar", ar), ("theta", theta), ("damped", damped), ("snaive", snaive))
             if uses(kind, name)]
    return np.mean(parts, axis=0)


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


def pair_errors(histories, actual: np.ndarray, net: np.ndarray, partners: dict[str, np.ndarray],
                season: int) -> dict[tuple[str, float], np.ndarray]:
    """Per (partner, weight w of WEIGHTS), each series' MAE of w net + (1 - w) partner over its history's
    seasonal-naive MAE (S',): the series with a scale, the ones whose mean is MASE."""
    scales = np.array([seasonal_scale(y, season) for y in histories])
    ok = np.isfinite(scales) & (scales > 0)
    return {(kind, w): np.abs(actual - (w * net + (1 - w) * partner)).mean(axis=1)[ok] / scales[ok]
            for kind, partner in partners.items() for w in WEIGHTS}


def choose_partner(histories, actual: np.ndarray, net: np.ndarray, partners: dict[str, np.ndarray],
                   season: int) -> tuple[str, float, dict[str, float]]:
    """The partner (a key of `partners`) and weight w of WEIGHTS whose combination w net + (1 - w) partner has the
    lowest MASE on the validation windows (`actual`, `net`, each partner: (S, h); each series scaled by its
    history's seasonal-naive MAE), with every pair's MASE keyed "partner:w"; ties go to the net, then to the
    partner named first. The partners come in GENERATIONS, AR the first: the pick among the earlier generations is
    the incumbent, replaced only by the lowest pair of a later generation that is the lowest of all so far and
    beats it by more than one standard error of the two's difference over the series (the one-standard-error rule
    of model selection), so that a few windows, or one series, do not swap it on noise."""
    errors = pair_errors(histories, actual, net, partners, season)
    scores, best = {}, {}
    for (kind, w), per_series in errors.items():
        score = float(np.nanmean(per_series)) if len(per_series) else float("nan")
        scores[f"{kind}:{w:g}"] = score
        if np.isfinite(score) and (kind not in best or score < best[kind][1] or score == best[kind][1]
                                   and w > best[kind][0]):
            best[kind] = (w, score)
    if not best:
        kind = PRIOR_KIND if PRIOR_KIND in partners else next(iter(partners))
        return kind, PRIOR_WEIGHT, scores
    order = lambda k: (best[k][1], -best[k][0])  # noqa: E731 - dicts keep order: ties to the first named
    kind, offered = None, []
    for generation in (*GENERATIONS, tuple(k for k in best if k not in KINDS)):
        offered += [k for k in best if k in generation]
        lowest = min(offered, key=order, default=None)
        if kind is None or lowest in generation and lowest != kind and _beats(errors, (lowest, best[lowest][0]),
                                                                           (kind, best[kind][0])):
            kind = lowest
    return kind, best[kind][0], scores


def _beats(errors, challenger, incumbent) -> bool:
    """Whether pair `challenger`'s errors are lower than `incumbent`'s by more than one standard error of their
    difference over the series."""
    difference = errors[incumbent] - errors[challenger]
    difference = difference[np.isfinite(difference)]
    return len(difference) >= 2 and difference.mean() > difference.std(ddof=1) / np.sqrt(len(difference))


def combine(net: np.ndarray, partner: np.ndarray, weight: float) -> np.ndarray:
    return weight * net + (1 - weight) * partner


class Partnered:
    """What a net (forecast.models.neural) needs to combine its forecasts with a statistical partner: the choice of
    partner and weight while fitting, and the combined forecasts. Uses the net's `config` (combine, validate),
    `freq_`, `_transformed` and `_net_z`."""

    def _fit_partner(self, ids, series, h):
        """Fit AR (where a partner may use it) on the series less their validation windows, choose the partner
        (`--combine`'s choices) and the combination weight on those windows, then fit AR on all of every series for
        the forecasts. Returns the first AR (None when no series is long enough for a validation window, or the
        nets trained on those windows: then the partner and weight are the prior ones, until `inherit` takes
        those of a fit that held them out)."""
        kinds = kinds_of(self.config.combine)
        uses_ar = any(uses(k, "ar") for k in kinds)
        long = [i for i, s in enumerate(series) if len(s) >= validation_length(h)] if self.config.validate else []
        held_out = None
        if long:
            long_ids, history = [ids[i] for i in long], [series[i][:-h] for i in long]
            transforms, scaled = self._transformed(history)
            stacked = Stacked(transforms)
            held_out = fit_partner(long_ids, history, self.freq_, h, self) if uses_ar else None
            ar = held_out._forecast(long_ids, history, h) if uses_ar else None
            parts = statistical_parts(kinds, history, stacked, scaled, h, self.freq_.season)
            actual = np.stack([series[i][-h:] for i in long])
            self.partner_kind_, self.combine_weight_, self.combine_scores_ = choose_partner(
                history, actual, stacked.inverse(self._net_z(long_ids, scaled, h)),
                {k: partner_forecast(k, ar, **parts) for k in kinds}, self.freq_.season)
        else:
            self.partner_kind_ = PRIOR_KIND if PRIOR_KIND in kinds else kinds[0]
            self.combine_weight_ = PRIOR_WEIGHT
        self.partner_ = fit_partner(ids, series, self.freq_, h, self) if uses_ar else None
        return held_out

    def _partnered(self, ids, series, transforms, scaled, z, h, partner=None) -> np.ndarray | None:
        """The net's forecasts `z` (S, h, in the transformed space of `transforms` and `scaled`) combined with the
        partner's, on the original scale (AR's part from `partner`, by default the model's own AR); None where the
        model does not combine."""
        kind = getattr(self, "partner_kind_", None)
        if kind is None or self.combine_weight_ == 1.0:
            return None
        stacked, ar = Stacked(transforms), None
        if uses(kind, "ar"):
            partner = partner if partner is not None else self.partner_
            partner.covs_ = getattr(self, "covs_", None)  # the covariates of these series
            ar = partner._forecast(ids, series, h)
        parts = statistical_parts((kind,), series, stacked, scaled, h, self.freq_.season)
        return combine(stacked.inverse(z), partner_forecast(kind, ar, **parts), self.combine_weight_)
