#!/usr/bin/env python3
"""Rules for choosing a net's statistical partner and weight, compared on the validation split only (never a test file):
each net is fitted once on every training series less its last horizon, with what its partner choice saw inside the
fit kept (its own validation windows: the horizon before); then every rule below picks a (partner, weight) from those
same inputs, and the pick is scored on the held-out last horizon, from the fitted model's own parts: its net's
forecast alone, its AR's and the other partners' of the same history. The "soft" rules average several pairs instead
of picking one (their forecasts are linear in the parts, so the average is one combination too). The "damped" rules
also offer the damped trend (`partner.damped_lines`), alone or with AR or the Theta line, under the one-standard-
error rule with AR the incumbent; rule A was the library's from 2026-12-06 (every other rule sees only the three
partners before it: AR, the Theta line and their mean). The "snaive" rules also offer the seasonal naive forecast,
alone or averaged with AR or the Theta line; rule E, the library's since the evening of 2026-12-06, keeps rule A's
pick unless a pair with the seasonal naive is the lowest of all and beats it by more than one standard error.

    python3 benchmarks/partner_rules.py --subset m1_quarterly m3_yearly
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

import forecast.models.partner as partner_module  # noqa: E402
from forecast import registry  # noqa: E402
from forecast.data import ID, TARGET  # noqa: E402
from forecast.data.splits import split_holdout  # noqa: E402
from forecast.metrics import seasonal_scale  # noqa: E402
from forecast.transforms import Stacked  # noqa: E402

WEIGHTS = partner_module.WEIGHTS


def lowest(errors, pairs=None):
    pairs = list(pairs or errors)
    return min(pairs, key=lambda pair: (errors[pair].mean(), -pair[1]))


def one_se(errors, incumbent):
    """The pair of lowest mean error, unless it beats `incumbent` by no more than one standard error."""
    best = lowest(errors)
    difference = errors[incumbent] - errors[best]
    if best == incumbent or len(difference) < 2 or difference.mean() <= difference.std(ddof=1) / np.sqrt(
            len(difference)):
        return incumbent
    return best


def best_weight(errors, kind):
    return lowest(errors, [(kind, w) for w in WEIGHTS])


def near_best(errors):
    """Every pair whose mean error is within one standard error (over the series, of its difference to the lowest)
    of the lowest, averaged with equal weights: the choice's noise averaged out instead of picked from. With one
    series, the one-standard-error rule."""
    best = lowest(errors)
    if len(errors[best]) < 2:
        return one_se(errors, best_weight(errors, "ar"))
    near = []
    for pair, e in errors.items():
        difference = e - errors[best]
        if pair == best or difference.mean() <= difference.std(ddof=1) / np.sqrt(len(difference)):
            near.append(pair)
    return {pair: 1 / len(near) for pair in near}


def softmin(errors):
    """All pairs, weighted by exp(-(mean error - the lowest) / the lowest's standard error over the series)."""
    best = lowest(errors)
    if len(errors[best]) < 2:
        return one_se(errors, best_weight(errors, "ar"))
    se = errors[best].std(ddof=1) / np.sqrt(len(errors[best]))
    means = {pair: e.mean() for pair, e in errors.items()}
    weights = {pair: np.exp(-(m - means[best]) / max(se, 1e-12)) for pair, m in means.items()}
    total = sum(weights.values())
    return {pair: w / total for pair, w in weights.items()}


def kinds_best(kinds):
    """The best weight of each of `kinds`, averaged with equal weights."""
    return lambda errors: {best_weight(errors, kind): 1 / len(kinds) for kind in kinds}


RULES = {
    "until 2026-12-06: AR at its best weight the incumbent": lambda e: one_se(e, best_weight(e, "ar")),
    "the lowest, no rule": lowest,
    "incumbent AR + Theta at its best weight": lambda e: one_se(e, best_weight(e, "ar+theta")),
    "incumbent AR + Theta at 1/2 (the prior)": lambda e: one_se(e, ("ar+theta", 0.5)),
    "AR + Theta, weight the lowest": lambda e: best_weight(e, "ar+theta"),
    "AR + Theta at 1/2, no choice": lambda e: ("ar+theta", 0.5),
    "AR, weight the lowest": lambda e: best_weight(e, "ar"),
    "soft: the pairs within one standard error of the lowest, averaged": near_best,
    "soft: every pair, softmin over its standard error": softmin,
    "soft: AR's and AR + Theta's best weights, averaged": kinds_best(("ar", "ar+theta")),
    "soft: each partner's best weight, averaged": kinds_best(("ar", "ar+theta", "theta")),
}
BASE_KINDS = ("ar", "ar+theta", "theta")
# rules offered the damped trend too (these partners more), over the errors of every partner
DAMPED_RULES = {
    "damped A: + damped, ar+damped, theta+damped": ("damped", "ar+damped", "theta+damped"),
    "damped B: + damped": ("damped",),
}
# rules offered the seasonal naive forecast too, alone or averaged with AR or the Theta line, besides the partners
# before it (measured on 2026-12-06, README); rule E is the library's since then
SNAIVE_RULES = {
    "snaive C: KINDS + snaive": ("snaive",),
    "snaive D: KINDS + snaive, ar+snaive, theta+snaive": ("snaive", "ar+snaive", "theta+snaive"),
}
BEFORE_SNAIVE = tuple(kind for kind in partner_module.KINDS if not partner_module.uses(kind, "snaive"))


def run(subset: str, nets, origin: int = 1, h: int | None = None) -> list[dict]:
    fit, scored, freq = accuracy.split(subset, "validation", h)
    h = h or accuracy.HORIZONS[subset]
    for _ in range(origin - 1):  # an earlier origin: the horizon before the scored one, and so on
        fit, scored = split_holdout(fit, h)
    truth = scored.groupby(ID)[TARGET]
    seen, choose = {}, partner_module.choose_partner

    def keep(*args, choose=choose):
        seen["inputs"] = args
        return choose(*args)

    rows = []
    for name in nets:
        partner_module.choose_partner = keep
        try:
            model = registry.create(name, diagnostics=False).fit(fit, freq, h)
        finally:
            partner_module.choose_partner = choose
        every = partner_module.pair_errors(*seen["inputs"])  # every partner the fit offered (partner.KINDS)
        before = {pair: e for pair, e in every.items() if pair[0] in BEFORE_SNAIVE}
        assert one_se(every, one_se(before, best_weight(before, "ar"))) == (model.partner_kind_, model.combine_weight_)
        errors = {pair: e for pair, e in every.items() if pair[0] in BASE_KINDS}  # the partners before the damped
        # the fitted model's own parts, forecasting the held-out horizon: the net alone, its AR, the Theta line,
        # the damped trend and the seasonal naive
        ids, series = model.ids_, model.series_
        transforms, scaled = model._transformed(series)
        stacked = Stacked(transforms)
        net = stacked.inverse(model._net_z(ids, scaled, h))
        ar = model.partner_._forecast(ids, series, h)
        parts = partner_module.statistical_parts(partner_module.KINDS, series, stacked, scaled, h, freq.season)
        partners = {k: partner_module.partner_forecast(k, ar, **parts) for k in partner_module.KINDS}
        actual = np.stack([truth.get_group(i).to_numpy(float)[:h] if i in truth.groups else np.full(h, np.nan)
                           for i in ids])
        scales = np.array([seasonal_scale(y, freq.season) for y in series])
        ok = np.isfinite(scales) & (scales > 0) & np.isfinite(actual).all(axis=1)  # series too short to score: out
        picks = {rule: pick(errors) for rule, pick in RULES.items()}
        for rule, extra in DAMPED_RULES.items():
            offered = {pair: e for pair, e in every.items() if pair[0] in (*BASE_KINDS, *extra)}
            picks[rule] = one_se(offered, best_weight(offered, "ar"))
        for rule, extra in SNAIVE_RULES.items():
            offered = {pair: e for pair, e in every.items() if pair[0] in (*BEFORE_SNAIVE, *extra)}
            picks[rule] = one_se(offered, best_weight(offered, "ar"))
        damped_a = picks["damped A: + damped, ar+damped, theta+damped"]
        picks["snaive E: D's partners, the pick of damped A the incumbent"] = one_se(every, damped_a)
        for rule, mixture in picks.items():  # a pair, or {pair: its share} (the soft rules)
            mixture = mixture if isinstance(mixture, dict) else {mixture: 1.0}
            forecast = sum(share * (w * net + (1 - w) * partners[kind]) for (kind, w), share in mixture.items())
            mase = float(np.mean(np.abs(actual - forecast).mean(axis=1)[ok] / scales[ok]))
            choice = "+".join(f"{kind} {w:g}" for kind, w in mixture) if len(mixture) < 4 else f"{len(mixture)} pairs"
            rows.append({"subset": subset, "horizon": h, "net": name, "rule": rule, "mase": mase, "choice": choice})
        print(f"{subset} h={h} {name}: " + ", ".join(f"{r['choice']} {r['mase']:.4f}" for r in rows[-len(picks):]),
              flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=list(accuracy.HORIZONS), choices=list(accuracy.HORIZONS))
    ap.add_argument("--models", nargs="+", default=list(accuracy.NETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--origin", type=int, default=1,
                    help="score the K-th horizon from the end of the training files (1: the last; 2: the one before)")
    ap.add_argument("--horizon", type=int, help="forecast and score this many points instead of the official horizon")
    ap.add_argument("--out", type=Path, help="also write every row here (CSV)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    table = pd.DataFrame([row for subset in args.subset
                          for row in run(subset, args.models, args.origin, args.horizon)])
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print("validation MASE, mean over the nets:")
        print(table.pivot_table(index="rule", columns="subset", values="mase", aggfunc="mean").round(4))


if __name__ == "__main__":
    main()
